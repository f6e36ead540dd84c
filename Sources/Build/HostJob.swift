import Foundation
import Inventory
import OCI
import SSH
import Support

/// Remote clean-ups still running (run folders, context cache collection); the CLI drains them before exit.
public actor Cleanups {
    /// The process-wide list.
    public static let shared = Cleanups()
    private var tasks: [Task<Void, Never>] = []

    /// Tracks a clean-up.
    func add(_ task: Task<Void, Never>) { tasks.append(task) }

    /// Waits for every clean-up started so far (and any they start).
    public func drain() async {
        while !tasks.isEmpty { await tasks.removeFirst().value }
    }
}

/// What one attempt of one platform on one host produced.
enum JobOutcome: Sendable {
    /// Built and delivered: the manifest digest, and the context bytes that had to be sent.
    case built(digest: Digest, contextBytes: Int64, ociLayout: String?)
    /// The engine failed on the Dockerfile.
    case buildFailed(String)
    /// Anything else: try another host.
    case infrastructure(String)
}

/// Runs one platform's build on one host: run folder, context upload (content-addressed), auth file,
/// engine script, digest; removes the run folder whatever happens.
struct HostJob: Sendable {
    /// Cached context trees kept per host (most recently used first); older ones are collected after each job.
    static let cachedContextsKept = 8
    /// Cached trees unused this many days are collected.
    static let cachedContextDays = 7

    var host: HostSpec
    var platform: Platform
    var request: BuildRequest
    var context: PreparedContext
    var runID: String
    var log: BuildLog
    var authJSON: Data?
    var insecureRegistry: Bool
    /// Where to download the OCI layout when the output is a local layout.
    var downloadTo: String?

    var runDir: String {
        host.workDir + "/runs/" + runID + "-" + platform.description.replacingOccurrences(of: "/", with: "-")
    }

    func script(contextDir: String) -> EngineScript {
        EngineScript(engine: host.engine, platform: platform, runDir: runDir, contextDir: contextDir,
                     dockerfile: context.dockerfilePath, request: request, hasAuthFile: authJSON != nil,
                     insecureRegistry: insecureRegistry, layerCache: host.layerCache)
    }

    func run() async -> JobOutcome {
        let connection: SSHConnection
        do {
            connection = try await SSHConnection.connect(host.sshTarget)
        } catch {
            return .infrastructure("\(error)")
        }
        let outcome = await attempt(connection)
        // Clean up off the critical path (publishing need not wait for it), but even when the task was
        // cancelled (a detached task is not), and always before the process exits (`Cleanups.drain`).
        let c = connection, dir = runDir
        let gc = ContextCache(workDir: host.workDir).collectGarbageCommand(keep: HostJob.cachedContextsKept, days: HostJob.cachedContextDays,
                                                                            runs: host.workDir + "/runs")
        await Cleanups.shared.add(Task.detached {
            _ = try? await c.runPlain("rm -rf \(Shell.quote(dir)); " + gc, timeout: 60)
            await c.close()
        })
        return outcome
    }

    private func attempt(_ connection: SSHConnection) async -> JobOutcome {
        let p = platform.description
        do {
            // The run folder names its context tree before the tree is uploaded or reused, so another job's
            // garbage collection on this host never removes a tree this build is about to read.
            let inUse = ContextCache(workDir: host.workDir).inUseName(context.manifest)
            let mk = try await connection.runPlain(Self.sweepStaleRuns(workDir: host.workDir)
                + "\nmkdir -p \(Shell.quote(runDir)) && chmod 700 \(Shell.quote(runDir)) && printf '%s\\n' \(Shell.quote(inUse)) > \(Shell.quote(runDir + "/.context"))",
                timeout: 60)
            guard mk.status.succeeded else { return .infrastructure("cannot create run folder \(runDir): \(mk.stderrText)") }
            let (contextDir, sent) = try await uploadContext(connection)
            log.note(p, host.name, sent == 0 ? "context \(context.manifest.digestHex.prefix(12)) already on host: 0 bytes sent" : "context sent: \(sent) bytes")
            if let auth = authJSON {
                try await connection.upload(.data(auth), toFile: runDir + "/auth.json")
            }
            let engine = script(contextDir: contextDir)
            let logRef = log, name = host.name
            let status = try await connection.exec(engine.render(), timeout: request.timeout, pidFile: runDir + "/.pid",
                                                   stdout: { logRef.output(p, name, stream: "stdout", $0) },
                                                   stderr: { logRef.output(p, name, stream: "stderr", $0) })
            log.flush(p, host.name)
            guard status.succeeded else {
                let tail = log.tail(p).joined(separator: "\n")
                let what = status.signal.map { "engine killed by signal \($0)" } ?? "exit status \(status.exitStatus)"
                if EngineScript.isInfrastructure(exitStatus: status.exitStatus, signal: status.signal, logTail: tail) {
                    return .infrastructure("build script failed on \(host.name) (\(what))")
                }
                return .buildFailed("the build failed on \(host.name) (\(what))")
            }
            let digestText = try await connection.runPlain("cat \(Shell.quote(runDir + "/digest"))", timeout: 30).stdoutText
            let digest = try Digest(parsing: digestText.trimmingCharacters(in: .whitespacesAndNewlines))
            var layout: String?
            if let downloadTo {
                try await download(connection, to: downloadTo)
                layout = downloadTo
            }
            return .built(digest: digest, contextBytes: sent, ociLayout: layout)
        } catch is CancellationError {
            return .infrastructure("cancelled")
        } catch {
            return .infrastructure("\(error)")
        }
    }

    /// Removes run folders left by a coordinator that died: those whose build the watchdog killed when the
    /// connection vanished (`.pid.orphaned`), and those with no live build that are older than ten minutes (a
    /// run of another coordinator that is still uploading or reading its digest is younger). Auth files go too.
    static func sweepStaleRuns(workDir: String) -> String {
        """
        for d in \(Shell.quote(workDir + "/runs"))/*/; do
          [ -d "$d" ] || continue
          if [ -e "$d/.pid.orphaned" ]; then rm -rf "$d"; continue; fi
          p=$(cat "$d/.pid" 2>/dev/null)
          if [ -n "$p" ] && kill -0 "-$p" 2>/dev/null; then continue; fi
          [ -n "$(find "$d" -maxdepth 0 -mmin -10 2>/dev/null)" ] && continue
          rm -rf "$d"
        done
        """
    }

    /// Brings the context into the host's cache, sending only blobs it lacks (probe → missing blobs →
    /// materialise). Returns the tree path and the context bytes sent (0 when the host had it all).
    func uploadContext(_ connection: SSHConnection) async throws -> (String, Int64) {
        let plan = ContextUploadPlan(context: context, cache: ContextCache(workDir: host.workDir))
        // A blob collected by another run between probe and materialise: probe again (bounded).
        for _ in 0..<3 {
            let probe = try await connection.run(plan.probe.command, input: .producer(plan.probe.input()), timeout: 120)
            guard probe.status.succeeded, let steps = plan.steps(afterProbe: probe.stdoutText) else {
                throw SSHError(host: host.name, kind: .protocolError, message: "context cache probe failed: \(probe.stderrText)")
            }
            var sent: Int64 = 0
            var retry = false
            for step in steps {
                let out = try await connection.run(step.command, input: .producer(step.input()), timeout: nil)
                if case .sendBlobs = step.kind { sent += step.inputBytes }
                if out.status.exitStatus == ContextCache.missingBlobStatus, case .materialise = step.kind { retry = true; break }
                guard out.status.succeeded else {
                    throw SSHError(host: host.name, kind: .protocolError, message: "context upload failed: \(out.stderrText)")
                }
            }
            if !retry { return (plan.treePath, sent) }
        }
        throw SSHError(host: host.name, kind: .protocolError, message: "context cache kept losing blobs during upload")
    }

    /// Downloads the run folder's OCI layout into a local folder.
    func download(_ connection: SSHConnection, to local: String) async throws {
        try FileManager.default.createDirectory(atPath: local, withIntermediateDirectories: true)
        let untar = Process()
        untar.executableURL = URL(fileURLWithPath: "/bin/tar")
        untar.arguments = ["-x", "-f", "-", "-C", local]
        let pipe = Pipe()
        untar.standardInput = pipe
        try untar.run()
        let writer = pipe.fileHandleForWriting
        let status = try await connection.exec("tar -cf - -C \(Shell.quote(runDir + "/oci")) .", stdout: { writer.write($0) })
        try writer.close()
        untar.waitUntilExit()
        guard status.succeeded, untar.terminationStatus == 0 else {
            throw SSHError(host: host.name, kind: .protocolError, message: "downloading the OCI layout failed")
        }
    }
}
