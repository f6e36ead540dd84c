import Foundation
import Inventory
import OCI
import Registry
import Support

/// What one image of a run ended as.
public struct ImageOutcome: Sendable {
    /// The image's name (plan entry, or the first tag's repository).
    public var name: String
    /// What was asked.
    public var request: BuildRequest
    /// Per-platform results, in request order.
    public var results: [PlatformResult]
    /// The published (or written) index digest.
    public var indexDigest: String?
    /// Tags now pointing at it.
    public var tags: [String]
    /// This image's exit code.
    public var exitCode: ExitCode
    /// Why it did not succeed.
    public var error: String?
    /// Local folder of its per-platform logs.
    public var logDirectory: String
}

/// What every image of a run shares: the fleet, one host pool (so `maxJobs` holds across images), the
/// registry client and credentials, and the output style.
public struct RunContext: Sendable {
    /// The fleet.
    public var fleet: Fleet
    /// Shared host pool.
    public var pool: HostPool
    /// Run id (remote run folders are named after it).
    public var runID: String
    /// Output style.
    public var style: BuildLog.Style
    /// Registry settings (insecure registries, credentials, retries).
    public var registry: Registry.RegistrySettings

    /// A run context.
    public init(fleet: Fleet, pool: HostPool, runID: String, style: BuildLog.Style, registry: Registry.RegistrySettings) {
        self.fleet = fleet
        self.pool = pool
        self.runID = runID
        self.style = style
        self.registry = registry
    }
}

/// One image from request to published index: context, parallel native builds, verification, atomic publish.
public enum ImagePipeline {
    /// Builds and publishes one image. Never throws: every outcome is a value with its exit code.
    public static func run(name: String, request: BuildRequest, in run: RunContext, logDirectory: String,
                           logPrefix: String? = nil) async -> ImageOutcome {
        let log = BuildLog(style: run.style, directory: logDirectory, prefix: logPrefix)
        defer { log.close() }
        var outcome = ImageOutcome(name: name, request: request, results: [], indexDigest: nil, tags: [], exitCode: .success,
                                   error: nil, logDirectory: logDirectory)
        let context: PreparedContext
        do {
            context = try PreparedContext.prepare(ContextOptions(
                context: request.context, dockerfile: request.dockerfile,
                containerEngine: run.fleet.hosts.contains { $0.engine != .docker }, sizeLimit: request.contextSizeLimit))
        } catch {
            outcome.exitCode = .usage
            outcome.error = "\(error)"
            log.info("\(name): \(error)")
            return outcome
        }
        let registryHost = request.tags.first?.registry
        let plainHTTP = registryHost.map { run.registry.usesPlainHTTP($0) } ?? false
        // `credentials: forward`: the host gets a short-lived auth file with the credential resolved here for the
        // tags' registry and, in the same file, those for the registries of the Dockerfile's base images. Only
        // when the tags' registry has one: otherwise no file is made and the host's own logins apply as before
        // (an auth file replaces them for the build, so a base-image credential alone must not create one).
        let lookup = { (host: String) in (try? run.registry.credentials.credential(for: host)).flatMap { $0 } }
        var forwarded: [String: Credential] = [:]
        if let registryHost, let credential = lookup(registryHost) {
            forwarded[registryHost] = credential
            for base in BaseImages.registries(dockerfile: context.dockerfileText ?? "") where forwarded[base] == nil {
                if let credential = lookup(base) { forwarded[base] = credential }
            }
        }
        let authJSON = forwarded.isEmpty ? nil : try? Credential.authFile(forwarded)
        let publisher = Publisher(client: RegistryClient(run.registry))
        var layoutStaging: String?
        if case .ociLayout = request.output { layoutStaging = logDirectory + "/layouts" }
        let repo = request.stagingRepository
        let scheduler = Scheduler(fleet: run.fleet, request: request, context: context, runID: run.runID, log: log,
                                  authJSON: authJSON, insecureRegistry: plainHTTP, layoutStaging: layoutStaging,
                                  verify: { platform, digest, layout in
                                      if let layout { return OCILayoutWriter.verify(platform, layout: layout) }
                                      guard let repo else { return .rejected("no repository") }
                                      return await publisher.verify(platform, digest: digest, in: repo)
                                  })
        log.info("\(name): building \(request.platforms.map(\.description).joined(separator: ", ")) from \(request.context) (context \(context.manifest.digestHex.prefix(12)), \(context.manifest.entries.count) entries)")
        outcome.results = await scheduler.run(pool: run.pool)
        if Task.isCancelled || outcome.results.contains(where: { $0.status == .cancelled }) {
            outcome.exitCode = .interrupted
            outcome.error = "interrupted: remote builds killed, run folders removed, nothing pushed"
            return outcome
        }
        // A fresh client re-resolves credentials: a long night outlives bearer tokens (minutes) and ECR tokens (12 h).
        await publish(&outcome, context: context, publisher: Publisher(client: RegistryClient(run.registry)), log: log,
                      layoutStaging: layoutStaging)
        return outcome
    }

    static func publish(_ outcome: inout ImageOutcome, context: PreparedContext, publisher: Publisher, log: BuildLog,
                        layoutStaging: String?) async {
        let request = outcome.request
        let results = outcome.results
        let built = results.filter { $0.status == .built }
        let missing = results.filter { $0.status != .built }.map(\.platform)
        if !missing.isEmpty {
            outcome.exitCode = results.contains { $0.status == .buildFailed } ? .buildFailed : .infrastructure
            outcome.error = results.filter { $0.status != .built }.map { "\($0.platform): \($0.reason ?? $0.status.rawValue)" }.joined(separator: "\n")
            for r in results where r.status == .buildFailed {
                log.info("\(r.platform) failed; last lines of its log (\(r.log ?? "")):")
                for line in log.tail(r.platform, lines: 15) { log.info("  " + line) }
            }
        }
        guard missing.isEmpty || (request.allowPartial && !built.isEmpty) else {
            log.info("\(outcome.name): not publishing: \(missing.joined(separator: ", ")) missing; no tag moved (--allow-partial publishes the rest)")
            return
        }
        var annotations = Publisher.standardAnnotations(context: request.context)
        if !missing.isEmpty { annotations["dev.coordinator.missing-platforms"] = missing.joined(separator: ",") }
        for a in request.annotations { annotations[a.key] = a.value }
        do {
            switch request.output {
            case .registry:
                guard let repo = request.stagingRepository else { return }
                let published = try await publisher.publish(children: built.compactMap { $0.digest.flatMap { try? Digest(parsing: $0) } },
                                                            repository: repo, tags: request.tags, annotations: annotations)
                outcome.indexDigest = published.digest.description
                outcome.tags = (published.tags + published.unchanged).map(\.description)
            case .ociLayout(let dir):
                let layouts = built.compactMap { r -> (Platform, String)? in
                    guard let p = try? Platform(parsing: r.platform), let staging = layoutStaging else { return nil }
                    return (p, staging + "/" + r.platform.replacingOccurrences(of: "/", with: "-"))
                }
                let ref = request.tags.first?.tag ?? "latest"
                outcome.indexDigest = try OCILayoutWriter.write(layouts: layouts, to: dir, refName: ref, annotations: annotations).description
                outcome.tags = [dir + ":" + ref]
            }
            if !missing.isEmpty { outcome.exitCode = .partial }
            log.info("\(outcome.name): index \(outcome.indexDigest ?? "") published as \(outcome.tags.joined(separator: ", "))")
        } catch {
            outcome.exitCode = .infrastructure
            outcome.error = "publishing failed: \(error)"
            log.info("\(outcome.name): publishing failed: \(error)")
        }
    }

    /// The run's exit code from its images': the worst one (infrastructure > build failure > partial > success).
    public static func worst(_ codes: [ExitCode]) -> ExitCode {
        let rank: [ExitCode: Int] = [.success: 0, .partial: 1, .buildFailed: 2, .usage: 3, .infrastructure: 4, .interrupted: 5, .terminated: 5, .locked: 6]
        return codes.max { rank[$0, default: 0] < rank[$1, default: 0] } ?? .success
    }
}
