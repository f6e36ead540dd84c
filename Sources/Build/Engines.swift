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
        switch engine {
        case .buildah: lines.append("buildah rmi \(q(localName)) >/dev/null 2>&1")
        case .podman: lines.append("podman rmi \(q(localName)) >/dev/null 2>&1")
        case .docker: lines.append("docker rmi \(q(localName)) >/dev/null 2>&1")
        }
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
