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
    /// Keep the engine's layer cache (inventory `layerCache`).
    public var layerCache: Bool

    /// A script description.
    public init(engine: Engine, platform: Platform, runDir: String, contextDir: String, dockerfile: String,
                request: BuildRequest, hasAuthFile: Bool, insecureRegistry: Bool, layerCache: Bool = true) {
        self.engine = engine
        self.platform = platform
        self.runDir = runDir
        self.contextDir = contextDir
        self.dockerfile = dockerfile
        self.request = request
        self.hasAuthFile = hasAuthFile
        self.insecureRegistry = insecureRegistry
        self.layerCache = layerCache
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
    ///
    /// buildah and podman: build with `--platform`, `push --digestfile` into the OCI layout `RUN/oci`.
    /// docker: `docker buildx build` pushing by digest (digest from `--metadata-file`) when `docker buildx version`
    /// works on the host, else the classic builder (`DOCKER_BUILDKIT=0 docker build --platform`), `docker save`
    /// and `skopeo copy docker-archive:… oci:RUN/oci --digestfile`. In every case but buildx, the layout is then
    /// pushed by digest (`skopeo copy --preserve-digests`, no tag) when the output is a registry.
    public func render() -> String {
        let tool = engine.rawValue
        var lines = [
            "cd \(Shell.quote(runDir)) || exit \(Code.setupFailed)",
            "command -v \(tool) >/dev/null 2>&1 || { echo 'coordinator: \(tool) not found on PATH' >&2; exit \(Code.setupFailed); }",
        ]
        switch engine {
        case .buildah, .podman:
            lines.append("echo \"coordinator: building \(platform) with $(\(tool) --version 2>&1 | head -n 1)\" >&2")
            let layers = "--layers=\(layerCache)"
            lines += build(engine == .buildah ? ["buildah", "bud", layers] : ["podman", "build", layers])
            lines.append("\(tool) push -q --format oci --digestfile \(run)/digest \(Shell.quote(localName)) oci:\(run)/oci || exit \(Code.pushFailed)")
            lines += pushLayout()
        case .docker:
            lines += dockerConfig()
            lines.append("if docker buildx version >/dev/null 2>&1; then")
            lines.append("echo \"coordinator: building \(platform) with docker buildx $(docker buildx version 2>&1 | head -n 1)\" >&2")
            lines += buildx()
            lines.append("else")
            lines.append("echo \"coordinator: building \(platform) with docker $(docker version --format '{{.Server.Version}} (client {{.Client.Version}})' 2>&1 | grep -m 1 .), classic builder\" >&2")
            lines += build(["docker", "build", "--force-rm"], environment: "DOCKER_BUILDKIT=0 ")
            lines.append(skopeoCheck)
            lines.append("docker save \(Shell.quote(localName)) -o \(run)/image.tar || exit \(Code.pushFailed)")
            lines.append("skopeo copy -q --format oci --digestfile \(run)/digest docker-archive:\(run)/image.tar oci:\(run)/oci || exit \(Code.pushFailed)")
            lines.append("rm -f \(run)/image.tar")
            lines += pushLayout()
            lines.append("fi")
        }
        // Keep the layer cache: the result (and so its intermediate images) stays under `cacheName`, the
        // chain it replaces there is removed (its steps still shared with the new one survive), and then
        // `rmi` of the run's own name only untags. A plain `rmi` of the run's name would delete the whole
        // chain, and the next build of the same Dockerfile would start from scratch (measured by
        // bench/rebuild.sh: an unchanged 200 MiB rebuild re-ran every step).
        if layerCache {
            let c = Shell.quote(cacheName)
            lines.append("old=$(\(tool) images -q --no-trunc \(c) 2>/dev/null | head -n 1)")
            lines.append("\(tool) tag \(Shell.quote(localName)) \(c) >/dev/null 2>&1")
            lines.append("new=$(\(tool) images -q --no-trunc \(c) 2>/dev/null | head -n 1)")
            lines.append("if [ -n \"$old\" ] && [ \"$old\" != \"$new\" ]; then \(tool) rmi \"$old\" >/dev/null 2>&1; fi")
        }
        lines.append("\(tool) rmi \(Shell.quote(localName)) >/dev/null 2>&1")
        lines.append("exit 0")
        return lines.joined(separator: "\n")
    }

    /// The run folder, quoted.
    private var run: String { Shell.quote(runDir) }

    /// The options every engine's build takes the same way (the caller appends the context folder).
    private func commonOptions() -> [String] {
        var args = ["--platform", platform.description, "-f", contextDir + "/" + dockerfile]
        for a in request.buildArgs { args += ["--build-arg", "\(a.key)=\(a.value)"] }
        for l in request.labels { args += ["--label", "\(l.key)=\(l.value)"] }
        if let t = request.target { args += ["--target", t] }
        return args
    }

    /// A build into the engine's local store under `localName`; a failure is the Dockerfile's (exit 10)
    /// unless a signal ended it.
    private func build(_ command: [String], environment: String = "") -> [String] {
        var args = command + commonOptions() + ["-t", localName]
        // docker pulls through its daemon, which treats 127.0.0.0/8 as plain HTTP by itself.
        if insecureRegistry, engine != .docker { args.append("--tls-verify=false") }
        // Forwarded credentials serve the base-image pulls too (docker gets them through `dockerConfig()`).
        if hasAuthFile, engine != .docker { args += ["--authfile", runDir + "/auth.json"] }
        args.append(contextDir)
        return [environment + Shell.join(args), buildStatusCheck]
    }

    private var buildStatusCheck: String {
        "rc=$?; if [ $rc -ne 0 ]; then [ $rc -ge 128 ] && exit $rc; exit \(Code.buildFailed); fi"
    }

    /// `docker buildx build`: straight to the registry by digest, or to an OCI layout tar unpacked into `RUN/oci`.
    /// The digest is `containerimage.digest` of the metadata file. No provenance attestation: the result must be
    /// one image manifest, not an index.
    private func buildx() -> [String] {
        var args = ["docker", "buildx", "build", "--provenance=false"] + commonOptions()
        var after: [String] = []
        if case .registry = request.output, let repo = request.stagingRepository {
            var output = "type=image,name=\(repo.name),push-by-digest=true,name-canonical=true,push=true"
            if insecureRegistry { output += ",registry.insecure=true" }
            args += ["--output", output]
        } else {
            args += ["--output", "type=oci,dest=\(runDir)/oci.tar"]
            after = ["mkdir -p \(run)/oci && tar -xf \(run)/oci.tar -C \(run)/oci && rm -f \(run)/oci.tar || exit \(Code.pushFailed)"]
        }
        args += ["--metadata-file", runDir + "/buildx.json", contextDir]
        return [Shell.join(args), buildStatusCheck] + after + [
            #"sed -n 's/.*"containerimage\.digest" *: *"\(sha256:[0-9a-f]\{64\}\)".*/\1/p' "# + "\(run)/buildx.json | head -n 1 > \(run)/digest",
            "[ -s \(run)/digest ] || { echo 'coordinator: docker buildx wrote no containerimage.digest' >&2; exit \(Code.pushFailed); }",
        ]
    }

    /// docker with forwarded credentials: a per-run `DOCKER_CONFIG` whose config.json is the run's auth file
    /// (the same `auths` format), so the classic builder's base pulls and buildx's push use them. The host's own
    /// plugins, buildx builders and contexts are linked in and its current context is kept (`DOCKER_CONTEXT`);
    /// its other config.json settings (credsStore, credHelpers, proxies) do not apply to the build.
    private func dockerConfig() -> [String] {
        guard hasAuthFile else { return [] }
        let dir = Shell.quote(runDir + "/docker-config")
        return [
            "dc=${DOCKER_CONFIG:-$HOME/.docker}",
            "[ -n \"${DOCKER_CONTEXT:-}\" ] || { DOCKER_CONTEXT=$(docker context show 2>/dev/null) && export DOCKER_CONTEXT; }",
            "mkdir -p \(dir) && ln -s ../auth.json \(dir)/config.json || exit \(Code.setupFailed)",
            "for d in cli-plugins buildx contexts; do if [ -e \"$dc/$d\" ]; then ln -s \"$dc/$d\" \(dir)/\"$d\"; fi; done",
            "export DOCKER_CONFIG=\(dir)",
        ]
    }

    private var skopeoCheck: String {
        "command -v skopeo >/dev/null 2>&1 || { echo 'coordinator: skopeo not found on PATH (needed to export and push by digest)' >&2; exit \(Code.setupFailed); }"
    }

    /// Pushes `RUN/oci` by digest into the staging repository (registry output only).
    private func pushLayout() -> [String] {
        guard case .registry = request.output, let repo = request.stagingRepository else { return [] }
        var copy = ["skopeo", "copy", "-q", "--preserve-digests"]
        if insecureRegistry { copy.append("--dest-tls-verify=false") }
        if hasAuthFile { copy += ["--dest-authfile", runDir + "/auth.json"] }
        return [
            skopeoCheck,
            Shell.join(copy) + " oci:\(run)/oci \(Shell.quote("docker://" + repo.name))@$(cat \(run)/digest) || exit \(Code.pushFailed)",
        ]
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
