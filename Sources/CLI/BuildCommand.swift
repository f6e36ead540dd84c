import Build
import Foundation
import Inventory
import OCI
import Registry
import Report
import SSH
import Support

/// `coordinator build` and `coordinator plan`.
enum BuildCommand {
    static let options: [OptionSpec] = [
        OptionSpec(["--hosts"], value: "FILE", help: "Inventory file (JSON)."),
        OptionSpec(["-t", "--tag"], value: "REF", help: "Tag to publish the index under.", repeatable: true),
        OptionSpec(["--platform"], value: "P[,P...]", help: "Platforms to build (default: every platform the inventory offers).", repeatable: true),
        OptionSpec(["-f", "--file"], value: "DOCKERFILE", help: "Dockerfile (default CONTEXT/Dockerfile; may be outside the context)."),
        OptionSpec(["--build-arg"], value: "K=V", help: "Build argument, passed literally.", repeatable: true),
        OptionSpec(["--target"], value: "NAME", help: "Build stage to stop at."),
        OptionSpec(["--label"], value: "K=V", help: "Image label.", repeatable: true),
        OptionSpec(["--annotation"], value: "K=V", help: "Index annotation.", repeatable: true),
        OptionSpec(["--output"], value: "registry|oci:DIR", help: "Push to the registry (default) or write one OCI layout locally."),
        OptionSpec(["--allow-partial"], help: "Publish what succeeded when a platform is lost (exit 3)."),
        OptionSpec(["--metadata-file"], value: "FILE", help: "Write the JSON report here."),
        OptionSpec(["--progress"], value: "MODE", help: "Output style.", choices: ["auto", "plain", "tty", "json"]),
        OptionSpec(["--lock"], value: "FILE", help: "Hold this lock file (flock) for the run: a second run exits 5 at once, naming the holder's pid."),
        OptionSpec(["--wait-lock"], value: "SECONDS", help: "With --lock: wait this long for the lock instead of exiting 5."),
        OptionSpec(["--timeout"], value: "SECONDS", help: "Time limit per platform build."),
        OptionSpec(["--context-limit"], value: "SIZE", help: "Refuse a context larger than SIZE (bytes, or with K/M/G suffix)."),
        OptionSpec(["--dry-run"], help: "Print the plan and the remote commands; build and push nothing."),
        OptionSpec(["--plan"], value: "PLAN.json", help: "Build every image of a nightly plan as one queue over the fleet (instead of CONTEXT)."),
        OptionSpec(["--fail-fast"], help: "With --plan: stop the remaining images after the first failure."),
        OptionSpec(["--metrics-file"], value: "FILE", help: "Write Prometheus textfile metrics (atomically)."),
        OptionSpec(["--keep-runs"], value: "N", help: "Run records kept under the state dir (default 50)."),
    ]

    static let arguments = [ArgumentSpec("CONTEXT", help: "Build context folder (omit with --plan).", optional: true)]

    static var build: CommandSpec {
        CommandSpec(name: "build", summary: "Build every platform natively on the fleet, in parallel, and publish one index.",
                    discussion: """
                    Exit status: 0 all platforms built and the index pushed under every tag; 1 a build failed on its
                    host (Dockerfile error); 2 usage or configuration error; 3 --allow-partial published without some
                    platforms; 4 infrastructure (no usable host, hosts lost, registry refusing); 5 lock held;
                    130/143 interrupted (remote builds killed, run folders removed). No tag moves unless the index is complete.
                    """,
                    options: options, arguments: arguments, run: { try await run($0, dryRun: $0.flag("--dry-run")) })
    }

    static var plan: CommandSpec {
        CommandSpec(name: "plan", summary: "Print what build would do (hosts, fallbacks, remote commands, tags); touch nothing.",
                    options: options, arguments: arguments, run: { try await run($0, dryRun: true) })
    }

    static func usage(_ message: String, _ args: ParsedArguments) -> UsageError { UsageError(message, command: args.commandPath) }

    /// Validates flags into a request; every problem here is exit 2 and nothing was contacted.
    static func request(_ args: ParsedArguments, fleet: Fleet) throws -> BuildRequest {
        let context = args.positionals[0]
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: context, isDirectory: &isDir), isDir.boolValue else {
            throw usage("build context \(context) is not a readable folder", args)
        }
        var platforms: [Platform] = []
        for item in args.all("--platform").flatMap({ $0.split(separator: ",").map(String.init) }) {
            do { platforms.append(try Platform(parsing: item.trimmingCharacters(in: .whitespaces))) } catch let e as PlatformError {
                throw usage("--platform: \(e.description)", args)
            }
        }
        if platforms.isEmpty { platforms = fleet.platforms }
        platforms = platforms.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
        for p in platforms where !fleet.platforms.contains(p) {
            throw usage("--platform \(p): no host in \(fleet.file) offers it (offered: \(fleet.platforms.map(\.description).joined(separator: ", ")))", args)
        }
        var output = BuildRequest.Output.registry
        if let o = args.value("--output"), o != "registry" {
            guard o.hasPrefix("oci:"), o.count > 4 else { throw usage("--output must be registry or oci:DIR, got '\(o)'", args) }
            output = .ociLayout(String(o.dropFirst(4)))
        }
        var tags: [Reference] = []
        for t in args.all("--tag") {
            do {
                let ref = try Reference(parsing: t)
                guard ref.digest == nil else { throw usage("-t \(t): a tag, not a digest, is needed", args) }
                tags.append(ref)
            } catch let e as UsageError { throw e } catch { throw usage("-t \(t): \(error)", args) }
        }
        if output == .registry {
            guard !tags.isEmpty else { throw usage("-t REF is required with --output registry", args) }
            guard Set(tags.map(\.registry)).count == 1 else { throw usage("every -t must be on one registry", args) }
        }
        var timeout: Double?
        if let t = args.value("--timeout") {
            guard let v = Double(t), v > 0 else { throw usage("--timeout expects seconds > 0, got '\(t)'", args) }
            timeout = v
        }
        var contextLimit: Int64?
        if let l = args.value("--context-limit") {
            guard let v = parseSize(l) else { throw usage("--context-limit expects a size like 500M or 2G, got '\(l)'", args) }
            contextLimit = v
        }
        let kv = { (key: String) throws -> [KeyValue] in try args.pairs(key).map { KeyValue($0.0, $0.1) } }
        return BuildRequest(context: context, dockerfile: args.value("--file"), tags: tags, platforms: platforms,
                            buildArgs: try kv("--build-arg"), target: args.value("--target"), labels: try kv("--label"),
                            annotations: try kv("--annotation"), output: output, allowPartial: args.flag("--allow-partial"),
                            timeout: timeout, contextSizeLimit: contextLimit)
    }

    /// `123`, `500K`, `20M`, `2G` → bytes.
    static func parseSize(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = text.uppercased()
        var factor: Int64 = 1
        if digits.hasSuffix("B") { digits.removeLast() }
        if let last = digits.last, let u = units[last] { factor = u; digits.removeLast() }
        guard let n = Int64(digits), n > 0 else { return nil }
        return n * factor
    }

    static func run(_ args: ParsedArguments, dryRun: Bool) async throws -> ExitCode {
        limitMallocArenas()
        let fleet = try Fleet.load(path: try args.require("--hosts"))
        // ssh_config problems are configuration errors: found here, before any connection (exit 2).
        for host in fleet.hosts { _ = try host.sshConfigured() }
        // One image from the flags, or every image of a --plan: validated before anything is contacted.
        let images: [BuildPlan.Image]
        let planFile = args.value("--plan")
        if let planFile {
            guard args.positionals.isEmpty else { throw usage("give either CONTEXT or --plan, not both", args) }
            for flag in ["--tag", "--file", "--build-arg", "--target", "--label", "--platform", "--output"] where args.values[flag] != nil {
                throw usage("\(flag) is set per image in the plan, not on the command line with --plan", args)
            }
            images = try BuildPlan.load(path: planFile, fleet: fleet).images
        } else {
            guard args.positionals.count == 1 else { throw usage("missing argument CONTEXT (or --plan FILE)", args) }
            let request = try request(args, fleet: fleet)
            images = [BuildPlan.Image(name: request.tags.first.map { $0.repository } ?? (request.context as NSString).lastPathComponent,
                                      request: request)]
        }
        let insecure = Set(fleet.registries.filter { $0.value.insecure }.map(\.key))
        let settings = Registry.RegistrySettings(insecureRegistries: insecure)
        if dryRun {
            for image in images {
                let request = image.request
                let context = try PreparedContext.prepare(ContextOptions(context: request.context, dockerfile: request.dockerfile,
                                                                         containerEngine: fleet.hosts.contains { $0.engine != .docker },
                                                                         sizeLimit: request.contextSizeLimit))
                if images.count > 1 { Console.shared.out("== image \(image.name)") }
                Console.shared.out(PlanRenderer.render(fleet: fleet, request: request, context: context, runID: "RUNID",
                                                       insecure: request.tags.first.map { settings.usesPlainHTTP($0.registry) } ?? false))
            }
            return .success
        }
        var waitLock: Double = 0
        if let w = args.value("--wait-lock") {
            guard let v = Double(w), v >= 0 else { throw usage("--wait-lock expects seconds, got '\(w)'", args) }
            waitLock = v
        }
        // Nightly plans always lock (default path); a single build locks when --lock is given.
        let lockPath = args.value("--lock") ?? (planFile != nil ? RunLock.defaultPath() : nil)
        let lock = try lockPath.map { try RunLock.acquire(path: $0, wait: waitLock) }
        defer { lock?.release() }
        let keepRuns = try args.integer("--keep-runs") ?? 50
        let records = RunRecords(stateDir: Self.recordsDirectory())
        let folder = try records.create()
        defer { folder.finish() }
        if let planFile, let data = FileManager.default.contents(atPath: planFile) { try? folder.writePlan(data) }
        let started = Date()
        var style = BuildLog.style(for: args.value("--progress"))
        if images.count > 1, style == .tty { style = .plain }
        let run = RunContext(fleet: fleet, pool: HostPool(fleet.hosts), runID: folder.id, style: style, registry: settings)
        let failFast = args.flag("--fail-fast")
        let signals = SignalTrap()
        let work = Task { () -> [ImageOutcome] in
            await withTaskGroup(of: (Int, ImageOutcome).self) { group in
                for (i, image) in images.enumerated() {
                    let logs = (try? folder.logURL(image: image.name, platform: "x").deletingLastPathComponent().path) ?? folder.logsURL.path
                    group.addTask {
                        let runID = images.count > 1 ? "\(run.runID)-\(i)" : run.runID
                        var perImage = run
                        perImage.runID = runID
                        return (i, await ImagePipeline.run(name: image.name, request: image.request, in: perImage, logDirectory: logs,
                                                           logPrefix: images.count > 1 ? image.name : nil))
                    }
                }
                var outcomes = [ImageOutcome?](repeating: nil, count: images.count)
                for await (i, outcome) in group {
                    outcomes[i] = outcome
                    if failFast, outcome.exitCode != .success { group.cancelAll() }
                }
                return outcomes.compactMap { $0 }
            }
        }
        signals.onSignal = { work.cancel() }
        let outcomes = await work.value
        // Remote run folders (and their auth files) are gone before we report or exit, also after a signal.
        await Cleanups.shared.drain()
        await JumpHosts.drain()
        signals.disarm()
        var code = ImagePipeline.worst(outcomes.map(\.exitCode))
        if let sig = signals.received { code = sig == SIGINT ? .interrupted : .terminated }
        // Reports: one per image (buildx keys), and for a plan one document holding them all.
        let reports = outcomes.map { report($0, runID: folder.id) }
        let document: Data
        if planFile == nil, let only = reports.first {
            document = try JSONOutput.encode(only)
        } else {
            document = try JSONOutput.encode(PlanReport(runID: folder.id, exitCode: code.rawValue,
                                                        images: zip(outcomes, reports).map { PlanReport.Entry(name: $0.name, report: $1) }))
        }
        try? folder.writeReport(document)
        if let file = args.value("--metadata-file") { try AtomicFile.write(document, to: file) }
        if let file = args.value("--metrics-file") {
            let builds = outcomes.flatMap { o in
                o.results.map { BuildMetric(image: o.name, platform: $0.platform, durationSeconds: $0.durationSeconds,
                                            succeeded: $0.status == .built && o.indexDigest != nil, attempts: $0.attempts, finishedAt: Date()) }
            }
            try MetricsFile.write(RunMetrics(runStart: started, duration: Date().timeIntervalSince(started), exitCode: code, builds: builds), to: file)
        }
        _ = try? records.prune(keep: keepRuns)
        for r in reports {
            if images.count > 1 { Console.shared.out("== \(r.imageName.isEmpty ? "(not published)" : r.imageName)") }
            Console.shared.out(r.summary())
        }
        if images.count > 1 { Console.shared.out("run \(folder.id): exit \(code.rawValue) (\(outcomes.filter { $0.exitCode == .success }.count)/\(outcomes.count) images published completely)") }
        if args.value("--progress") == "json", let object = try? JSONSerialization.jsonObject(with: document),
           let compact = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            Console.shared.out(String(decoding: compact, as: UTF8.self))
        }
        return code
    }

    static func report(_ o: ImageOutcome, runID: String) -> BuildReport {
        let output: String
        switch o.request.output {
        case .registry: output = "registry"
        case .ociLayout(let d): output = "oci:" + d
        }
        return BuildReport(indexDigest: o.indexDigest, tags: o.tags, section: BuildReport.Section(
            platforms: o.results, missingPlatforms: o.results.filter { $0.status != .built }.map(\.platform), tags: o.tags,
            exitCode: o.exitCode.rawValue, runID: runID, logDirectory: o.logDirectory, output: output, error: o.error))
    }

    /// Where run records live: `$COORDINATOR_STATE_DIR/runs`, else RunRecords' default
    /// (`$XDG_STATE_HOME/coordinator/runs`, `/var/lib/coordinator/runs` as root, `~/.local/state/coordinator/runs`).
    static func recordsDirectory() -> URL {
        if let s = ProcessInfo.processInfo.environment["COORDINATOR_STATE_DIR"] { return URL(fileURLWithPath: s).appendingPathComponent("runs") }
        return RunRecords.defaultStateDir()
    }
}

/// Turns SIGINT/SIGTERM into a cancellation of the run; a second signal exits at once.
final class SignalTrap: @unchecked Sendable {
    private let lock = NSLock()
    private var sources: [DispatchSourceSignal] = []
    private var _received: Int32?
    private var handler: (@Sendable () -> Void)?

    var onSignal: (@Sendable () -> Void)? {
        get { lock.lock(); defer { lock.unlock() }; return handler }
        set { lock.lock(); handler = newValue; lock.unlock() }
    }

    var received: Int32? { lock.lock(); defer { lock.unlock() }; return _received }

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in self?.fire(sig) }
            s.resume()
            sources.append(s)
        }
    }

    private func fire(_ sig: Int32) {
        lock.lock()
        let first = _received == nil
        if first { _received = sig }
        let h = handler
        lock.unlock()
        if first {
            Console.shared.err("[coordinator] \(sig == SIGINT ? "SIGINT" : "SIGTERM"): stopping remote builds and cleaning up (signal again to exit at once)")
            h?()
        } else {
            exit(sig == SIGINT ? 130 : 143)
        }
    }

    func disarm() {
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// The report of a `--plan` run: every image's buildx-style report, and the run's exit code.
struct PlanReport: Encodable {
    struct Entry: Encodable {
        var name: String
        var report: BuildReport
    }

    var runID: String
    var exitCode: Int32
    var images: [Entry]
}

#if canImport(Glibc)
import Glibc

/// glibc gives every thread that contends for the heap its own malloc arena (up to 8 per core) and keeps
/// freed memory in them: with one session thread per host that alone cost ~26 MiB of peak RSS on 32 hosts
/// (bench/nightly.sh: 77 MiB -> 51 MiB with MALLOC_ARENA_MAX=1). Cap the arenas before any session thread
/// starts, unless the user set MALLOC_ARENA_MAX. `mallopt` is not exported by the Glibc module: look it up.
func limitMallocArenas() {
    guard getenv("MALLOC_ARENA_MAX") == nil, let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    let mARENA_MAX: Int32 = -8 // M_ARENA_MAX in <malloc.h>
    _ = unsafeBitCast(sym, to: Mallopt.self)(mARENA_MAX, 2)
}
#else
func limitMallocArenas() {}
#endif
