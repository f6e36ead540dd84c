import Foundation
import Inventory
import OCI
import Support

/// The remote script that builds one platform with a host's engine and delivers the result.
/// Drivers as in buildx: one per engine; every user value is shell-quoted, no secret is on the command line
/// (the auth file is a 0600 file in the run folder).
public struct EngineScript: Sendable {
    /// Exit codes the script uses to say which step failed.
    public enum Code {
        /// The engine refused the Dockerfile (not retried elsewhere).
        public static let buildFailed: Int32 = 10
        /// Exporting or pushing failed (infrastructure: registry or disk).
        public static let pushFailed: Int32 = 11
        /// The run folder or tools were missing.
        public static let setupFailed: Int32 = 12
    }

    /// The host's engine.
    public var engine: Engine
    /// The platform to build.
    public var platform: Platform
    /// The remote run folder.
    public var runDir: String
    /// The context folder on the host.
    public var contextDir: String
    /// The Dockerfile path relative to the context.
    public var dockerfile: String
    /// The request.
    public var request: BuildRequest
    /// Whether a forwarded auth file is in the run folder.
    public var hasAuthFile: Bool
    /// Plain-HTTP (insecure) registry.
    public var insecureRegistry: Bool

    /// A script description.
    public init(engine: Engine, platform: Platform, runDir: String, contextDir: String, dockerfile: String,
                request: BuildRequest, hasAuthFile: Bool, insecureRegistry: Bool) {
        self.engine = engine
        self.platform = platform
        self.runDir = runDir
        self.contextDir = contextDir
        self.dockerfile = dockerfile
        self.request = request
        self.hasAuthFile = hasAuthFile
        self.insecureRegistry = insecureRegistry
    }

    /// The local image name used on the host for this run.
    public var localName: String { "localhost/coordinator-build:" + (runDir as NSString).lastPathComponent.lowercased() }

    /// The host-local name that keeps the last result of this repository, platform and target (and with it
    /// the engine's layer cache) between runs: one chain per key, the previous one is removed.
    public var cacheName: String {
        let key = [request.stagingRepository?.name ?? "local", platform.description, request.target ?? ""]
            .filter { !$0.isEmpty }.joined(separator: "-").lowercased()
        let tag = String(key.map { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "." ? $0 : "-" }.prefix(120))
        return "localhost/coordinator-cache:" + tag
    }

    /// The script (POSIX sh), run from the host's login shell.
    public func render() -> String {
        let q = Shell.quote
        let run = q(runDir)
        var build: [String]
        switch engine {
        case .buildah: build = ["buildah", "bud", "--layers"]
        case .podman: build = ["podman", "build", "--layers"]
        case .docker: build = ["docker", "build"]
        }
        build += ["--platform", platform.description, "-f", contextDir + "/" + dockerfile, "-t", localName]
        if insecureRegistry, engine != .docker { build.append("--tls-verify=false") }
        for a in request.buildArgs { build += ["--build-arg", "\(a.key)=\(a.value)"] }
        for l in request.labels { build += ["--label", "\(l.key)=\(l.value)"] }
        if let t = request.target { build += ["--target", t] }
        build.append(contextDir)
        let tool = engine == .docker ? "docker" : engine.rawValue
        var lines = [
            "cd \(run) || exit \(Code.setupFailed)",
            "command -v \(tool) >/dev/null 2>&1 || { echo 'coordinator: \(tool) not found on PATH' >&2; exit \(Code.setupFailed); }",
            "echo \"coordinator: building \(platform) with $(\(tool) --version 2>&1 | head -n 1)\" >&2",
            (engine == .docker ? "DOCKER_BUILDKIT=0 " : "") + Shell.join(build),
            "rc=$?; if [ $rc -ne 0 ]; then [ $rc -ge 128 ] && exit $rc; exit \(Code.buildFailed); fi",
        ]
        switch engine {
        case .buildah, .podman:
            lines.append("\(tool) push -q --format oci --digestfile \(run)/digest \(q(localName)) oci:\(run)/oci || exit \(Code.pushFailed)")
        case .docker:
            lines.append("docker save \(q(localName)) -o \(run)/image.tar || exit \(Code.pushFailed)")
            lines.append("skopeo copy -q --format oci --digestfile \(run)/digest docker-archive:\(run)/image.tar oci:\(run)/oci || exit \(Code.pushFailed)")
        }
        if case .registry = request.output, let repo = request.stagingRepository {
            var copy = ["skopeo", "copy", "-q", "--preserve-digests"]
            if insecureRegistry { copy.append("--dest-tls-verify=false") }
            if hasAuthFile { copy += ["--dest-authfile", runDir + "/auth.json"] }
            lines.append("command -v skopeo >/dev/null 2>&1 || { echo 'coordinator: skopeo not found on PATH (needed to push by digest)' >&2; exit \(Code.setupFailed); }")
            lines.append(Shell.join(copy) + " oci:\(run)/oci \(q("docker://" + repo.name))@$(cat \(run)/digest) || exit \(Code.pushFailed)")
        }
        // Keep the layer cache: the result (and so its intermediate images) stays under `cacheName`, the
        // chain it replaces there is removed (its steps still shared with the new one survive), and then
        // `rmi` of the run's own name only untags. A plain `rmi` of the run's name would delete the whole
        // chain, and the next build of the same Dockerfile would start from scratch (measured by
        // bench/rebuild.sh: an unchanged 200 MiB rebuild re-ran every step).
        let c = q(cacheName)
        lines.append("old=$(\(tool) images -q --no-trunc \(c) 2>/dev/null | head -n 1)")
        lines.append("\(tool) tag \(q(localName)) \(c) >/dev/null 2>&1")
        lines.append("new=$(\(tool) images -q --no-trunc \(c) 2>/dev/null | head -n 1)")
        lines.append("if [ -n \"$old\" ] && [ \"$old\" != \"$new\" ]; then \(tool) rmi \"$old\" >/dev/null 2>&1; fi")
        lines.append("\(tool) rmi \(q(localName)) >/dev/null 2>&1")
        lines.append("exit 0")
        return lines.joined(separator: "\n")
    }

    /// Whether a failed script's exit status means infrastructure (retry elsewhere) rather than the Dockerfile.
    public static func isInfrastructure(exitStatus: Int32, signal: String?, logTail: String) -> Bool {
        if signal != nil || exitStatus >= 128 { return true }
        if exitStatus == Code.buildFailed {
            return logTail.localizedCaseInsensitiveContains("no space left on device")
        }
        return true
    }
}
