import Foundation
import Inventory
import OCI
import Support

/// Keeps track of which hosts are busy, down, or vetted, so each platform goes to the least-loaded healthy
/// host that natively offers it. Preflight runs once per host per run.
public actor HostPool {
    private let hosts: [HostSpec]
    private var running: [String: Int] = [:]
    private var down: [String: String] = [:]
    private var checks: [String: Task<HostCheck, Never>] = [:]

    /// A pool over the fleet's hosts; share one across images so `maxJobs` holds for the whole run.
    public init(_ hosts: [HostSpec]) { self.hosts = hosts }

    /// The most builds each host ran at once so far.
    public func peaks() -> [String: Int] { peak }

    private var peak: [String: Int] = [:]

    /// Candidates for a platform, in inventory order.
    nonisolated func candidates(for platform: Platform) -> [HostSpec] { hosts.filter { $0.platforms.contains(platform) } }

    /// Vets a host once; later callers share the result.
    func vet(_ host: HostSpec) async -> HostCheck {
        if let t = checks[host.name] { return await t.value }
        let t = Task { await Preflight.check(host, measureRoundTrip: false) }
        checks[host.name] = t
        return await t.value
    }

    /// Marks a host down for the rest of the run.
    func markDown(_ host: HostSpec, _ why: String) { down[host.name] = why }

    /// Why a host is down, if it is.
    func downReason(_ host: HostSpec) -> String? { down[host.name] }

    /// Takes a slot on the least-loaded live host among `hosts` (nil when none has a free slot now).
    func acquire(among hosts: [HostSpec]) -> HostSpec? {
        let live = hosts.filter { down[$0.name] == nil && running[$0.name, default: 0] < $0.maxJobs }
        guard let best = live.min(by: { load($0) < load($1) }) else { return nil }
        running[best.name, default: 0] += 1
        peak[best.name] = max(peak[best.name] ?? 0, running[best.name]!)
        return best
    }

    /// Gives a slot back.
    func release(_ host: HostSpec) { running[host.name, default: 1] -= 1 }

    private func load(_ h: HostSpec) -> Double { Double(running[h.name, default: 0]) / Double(max(1, h.maxJobs)) }
}

/// Builds every requested platform in parallel, each on a native host, failing over on infrastructure
/// errors (bounded by the number of candidate hosts), never retrying a Dockerfile error.
public struct Scheduler: Sendable {
    /// The fleet.
    public var fleet: Fleet
    /// The request.
    public var request: BuildRequest
    /// The prepared context.
    public var context: PreparedContext
    /// Run id (names remote run folders).
    public var runID: String
    /// Output.
    public var log: BuildLog
    /// Auth file contents for `credentials: forward` hosts, if any credentials resolved.
    public var authJSON: Data?
    /// Whether the target registry is plain HTTP.
    public var insecureRegistry: Bool
    /// Local folder for downloaded per-platform OCI layouts (`--output oci:`).
    public var layoutStaging: String?
    /// Checks each delivered result before it is accepted (e.g. its config's platform); returns a reason to reject.
    public var verify: @Sendable (Platform, Digest, String?) async -> VerifiedChild

    /// The outcome of a verification.
    public enum VerifiedChild: Sendable {
        /// Accepted, with the manifest's media type and size.
        case accepted(mediaType: String, size: Int64)
        /// Rejected as mislabelled or unreadable.
        case rejected(String)
    }

    /// A scheduler.
    public init(fleet: Fleet, request: BuildRequest, context: PreparedContext, runID: String, log: BuildLog,
                authJSON: Data?, insecureRegistry: Bool, layoutStaging: String?,
                verify: @escaping @Sendable (Platform, Digest, String?) async -> VerifiedChild) {
        self.fleet = fleet
        self.request = request
        self.context = context
        self.runID = runID
        self.log = log
        self.authJSON = authJSON
        self.insecureRegistry = insecureRegistry
        self.layoutStaging = layoutStaging
        self.verify = verify
    }

    /// Builds all platforms (on `pool`, shared with other images of the run); results in request order.
    public func run(pool shared: HostPool? = nil) async -> [PlatformResult] {
        let pool = shared ?? HostPool(fleet.hosts)
        return await withTaskGroup(of: (Int, PlatformResult).self) { group in
            for (i, platform) in request.platforms.enumerated() {
                group.addTask { (i, await build(platform, pool: pool)) }
            }
            var results = [PlatformResult?](repeating: nil, count: request.platforms.count)
            for await (i, r) in group { results[i] = r }
            return results.map { $0! }
        }
    }

    func build(_ platform: Platform, pool: HostPool) async -> PlatformResult {
        let p = platform.description
        let start = Date()
        var result = PlatformResult(platform: p, host: nil, digest: nil, status: .infrastructureFailed,
                                    durationSeconds: 0, attempts: 0, log: log.file(for: p), reason: nil, tried: [],
                                    contextBytesSent: 0)
        var untried = pool.candidates(for: platform)
        if untried.isEmpty { result.reason = "no host in the inventory offers \(p)" }
        var reasons: [String] = []
        while !untried.isEmpty {
            if Task.isCancelled { result.status = .cancelled; result.reason = "cancelled"; break }
            // Vet candidates (in parallel, once per host per run) and drop the unusable ones.
            var usable: [HostSpec] = []
            for host in untried {
                if let why = await pool.downReason(host) { reasons.append("\(host.name): \(why)"); continue }
                let check = await pool.vet(host)
                if check.usable { usable.append(host) } else {
                    let why = "\(check.status.rawValue): \(check.reason ?? "")"
                    await pool.markDown(host, why)
                    log.note(p, host.name, "host refused: \(why)")
                    reasons.append("\(host.name): \(why)")
                }
            }
            untried = usable
            guard !untried.isEmpty else { break }
            guard let host = await pool.acquire(among: untried) else {
                try? await Task.sleep(nanoseconds: 100_000_000)
                continue
            }
            untried.removeAll { $0.name == host.name }
            result.attempts += 1
            result.host = host.name
            log.note(p, host.name, "building natively (\(host.engine.rawValue), attempt \(result.attempts))")
            let attemptStart = Date()
            let job = HostJob(host: host, platform: platform, request: request, context: context, runID: runID, log: log,
                              authJSON: host.credentials == .forward ? authJSON : nil, insecureRegistry: insecureRegistry,
                              downloadTo: layoutStaging.map { $0 + "/" + p.replacingOccurrences(of: "/", with: "-") })
            let outcome = await job.run()
            await pool.release(host)
            let took = Date().timeIntervalSince(attemptStart)
            switch outcome {
            case .built(let digest, let bytes, let layout):
                result.contextBytesSent += bytes
                switch await verify(platform, digest, layout) {
                case .accepted(let mediaType, let size):
                    result.status = .built
                    result.digest = digest.description
                    result.mediaType = mediaType
                    result.size = size
                    result.reason = nil
                    result.tried.append(Attempt(host: host.name, outcome: "built", durationSeconds: took))
                    log.note(p, host.name, "built \(digest) in \(String(format: "%.1f", took)) s")
                    result.durationSeconds = Date().timeIntervalSince(start)
                    return result
                case .rejected(let why):
                    log.note(p, host.name, "result rejected: \(why)")
                    reasons.append("\(host.name): \(why)")
                    result.tried.append(Attempt(host: host.name, outcome: "rejected: \(why)", durationSeconds: took))
                    await pool.markDown(host, why)
                }
            case .buildFailed(let why):
                result.status = .buildFailed
                result.reason = why
                result.tried.append(Attempt(host: host.name, outcome: "build failed", durationSeconds: took))
                log.note(p, host.name, "\(why); not retried elsewhere (a Dockerfile error fails everywhere)")
                result.durationSeconds = Date().timeIntervalSince(start)
                return result
            case .infrastructure(let why):
                if Task.isCancelled { result.status = .cancelled; result.reason = "cancelled"; break }
                log.note(p, host.name, "infrastructure failure: \(why)" + (untried.isEmpty ? "" : "; trying another host"))
                reasons.append("\(host.name): \(why)")
                result.tried.append(Attempt(host: host.name, outcome: "infrastructure: \(why)", durationSeconds: took))
                await pool.markDown(host, why)
            }
        }
        if result.status != .cancelled {
            result.status = .infrastructureFailed
            result.reason = result.reason ?? ("no usable host for \(p)" + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; ")))
        }
        result.durationSeconds = Date().timeIntervalSince(start)
        return result
    }
}
