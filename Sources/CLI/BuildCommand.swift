import Build
import Foundation
import Inventory
import OCI
import Registry
import Report
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
    ]

    static let arguments = [ArgumentSpec("CONTEXT", help: "Build context folder.")]

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
        let fleet = try Fleet.load(path: try args.require("--hosts"))
        let request = try request(args, fleet: fleet)
        let usesContainersIgnore = fleet.hosts.contains { $0.engine != .docker }
        let context = try PreparedContext.prepare(ContextOptions(context: request.context, dockerfile: request.dockerfile,
                                                                 containerEngine: usesContainersIgnore, sizeLimit: request.contextSizeLimit))
        let registryHost = request.tags.first?.registry
        let insecure = Set(fleet.registries.filter { $0.value.insecure }.map(\.key))
        let plainHTTP = registryHost.map { insecure.contains($0) || Reference.isLoopback(registry: $0) } ?? false
        let runID = Self.runID()
        let style = BuildLog.style(for: args.value("--progress"))
        if dryRun {
            Console.shared.out(PlanRenderer.render(fleet: fleet, request: request, context: context, runID: runID, insecure: plainHTTP))
            return .success
        }
        var waitLock: Double = 0
        if let w = args.value("--wait-lock") {
            guard let v = Double(w), v >= 0 else { throw usage("--wait-lock expects seconds, got '\(w)'", args) }
            waitLock = v
        }
        let lock = try args.value("--lock").map { try RunLock.acquire(path: $0, wait: waitLock) }
        defer { lock?.release() }
        let logDir = Self.stateDirectory() + "/runs/" + runID + "/logs"
        let log = BuildLog(style: style, directory: logDir)
        defer { log.close() }
        let settings = Registry.RegistrySettings(insecureRegistries: insecure)
        let client = RegistryClient(settings)
        let authJSON = registryHost.flatMap { try? authFile(registry: $0, credentials: settings.credentials) }
        var layoutStaging: String?
        if case .ociLayout = request.output { layoutStaging = logDir + "/../layouts" }
        let publisher = Publisher(client: client)
        let repo = request.stagingRepository
        let scheduler = Scheduler(fleet: fleet, request: request, context: context, runID: runID, log: log, authJSON: authJSON,
                                  insecureRegistry: plainHTTP, layoutStaging: layoutStaging, verify: { platform, digest, layout in
                                      if let layout { return OCILayoutWriter.verify(platform, layout: layout) }
                                      guard let repo else { return .rejected("no repository") }
                                      return await publisher.verify(platform, digest: digest, in: repo)
                                  })
        log.info("run \(runID): building \(request.platforms.map(\.description).joined(separator: ", ")) from \(request.context) (context \(context.manifest.digestHex.prefix(12)), \(context.manifest.entries.count) entries)")
        let signals = SignalTrap()
        let work = Task { await scheduler.run() }
        signals.onSignal = { work.cancel() }
        let results = await work.value
        signals.disarm()
        if let sig = signals.received {
            log.info("interrupted by \(sig == SIGINT ? "SIGINT" : "SIGTERM"): remote builds killed, run folders removed, nothing pushed")
            let code: ExitCode = sig == SIGINT ? .interrupted : .terminated
            try writeReport(args, BuildReport(indexDigest: nil, tags: [], section: section(results, runID, logDir, request, [], code, "interrupted")))
            return code
        }
        return try await finish(args, request: request, results: results, runID: runID, logDir: logDir, publisher: publisher, log: log,
                                layoutStaging: layoutStaging)
    }

    static func finish(_ args: ParsedArguments, request: BuildRequest, results: [PlatformResult], runID: String, logDir: String,
                       publisher: Publisher, log: BuildLog, layoutStaging: String?) async throws -> ExitCode {
        let built = results.filter { $0.status == .built }
        let missing = results.filter { $0.status != .built }.map(\.platform)
        var code: ExitCode = .success
        var error: String?
        if !missing.isEmpty {
            code = results.contains { $0.status == .buildFailed } ? .buildFailed : .infrastructure
            let reasons = results.filter { $0.status != .built }.map { "\($0.platform): \($0.reason ?? $0.status.rawValue)" }
            error = reasons.joined(separator: "\n")
            for r in results where r.status == .buildFailed {
                log.info("\(r.platform) failed; last lines of its log (\(r.log ?? "")):")
                for line in log.tail(r.platform, lines: 15) { log.info("  " + line) }
            }
        }
        var indexDigest: String?
        var tags: [String] = []
        let shouldPublish = missing.isEmpty || (request.allowPartial && !built.isEmpty)
        if shouldPublish {
            var annotations = Publisher.standardAnnotations(context: request.context)
            if !missing.isEmpty { annotations["dev.coordinator.missing-platforms"] = missing.joined(separator: ",") }
            for a in request.annotations { annotations[a.key] = a.value }
            do {
                switch request.output {
                case .registry:
                    let outcome = try await publisher.publish(children: built.compactMap { $0.digest.flatMap { try? Digest(parsing: $0) } },
                                                              repository: request.stagingRepository!, tags: request.tags, annotations: annotations)
                    indexDigest = outcome.digest.description
                    tags = (outcome.tags + outcome.unchanged).map(\.description)
                case .ociLayout(let dir):
                    let layouts = built.compactMap { r -> (Platform, String)? in
                        guard let p = try? Platform(parsing: r.platform), let staging = layoutStaging else { return nil }
                        return (p, staging + "/" + r.platform.replacingOccurrences(of: "/", with: "-"))
                    }
                    let ref = request.tags.first?.tag ?? "latest"
                    indexDigest = try OCILayoutWriter.write(layouts: layouts, to: dir, refName: ref, annotations: annotations).description
                    tags = [dir + ":" + ref]
                }
                if !missing.isEmpty { code = .partial }
            } catch let failure {
                code = .infrastructure
                error = "publishing failed: \(failure)"
            }
        } else if !missing.isEmpty {
            log.info("not publishing: \(missing.joined(separator: ", ")) missing; no tag moved (use --allow-partial to publish the rest)")
        }
        let report = BuildReport(indexDigest: indexDigest, tags: tags, section: section(results, runID, logDir, request, tags, code, error))
        try writeReport(args, report)
        Console.shared.out(report.summary())
        if args.value("--progress") == "json" { Console.shared.out(try JSONOutput.string(report, compact: true)) }
        return code
    }

    static func section(_ results: [PlatformResult], _ runID: String, _ logDir: String, _ request: BuildRequest, _ tags: [String],
                        _ code: ExitCode, _ error: String?) -> BuildReport.Section {
        let output: String
        switch request.output {
        case .registry: output = "registry"
        case .ociLayout(let d): output = "oci:" + d
        }
        return BuildReport.Section(platforms: results, missingPlatforms: results.filter { $0.status != .built }.map(\.platform), tags: tags,
                                   exitCode: code.rawValue, runID: runID, logDirectory: logDir, output: output, error: error)
    }

    static func writeReport(_ args: ParsedArguments, _ report: BuildReport) throws {
        guard let file = args.value("--metadata-file") else { return }
        let data = try JSONOutput.encode(report)
        let tmp = file + ".tmp-\(getpid())"
        try data.write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, file) == 0 else { throw UsageError("cannot write metadata file \(file)", command: args.commandPath) }
    }

    /// A docker-style auth file for `credentials: forward` hosts, or nil for anonymous.
    static func authFile(registry: String, credentials: any CredentialSource) throws -> Data? {
        guard let cred = try credentials.credential(for: registry) else { return nil }
        return try Credential.authFile([registry: cred])
    }

    static func runID() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: Date()) + "-" + String(UUID().uuidString.lowercased().prefix(6))
    }

    /// Where run folders live: $XDG_STATE_HOME/coordinator, /var/lib/coordinator as root, else ~/.local/state/coordinator.
    static func stateDirectory() -> String {
        let env = ProcessInfo.processInfo.environment
        if let s = env["COORDINATOR_STATE_DIR"] { return s }
        if let x = env["XDG_STATE_HOME"] { return x + "/coordinator" }
        return getuid() == 0 ? "/var/lib/coordinator" : "~/.local/state/coordinator".expandingTilde
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
