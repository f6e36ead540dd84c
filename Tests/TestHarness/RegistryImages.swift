import Foundation

/// Makes small single-arch images with buildah in an isolated storage (vfs driver, chroot isolation)
/// and pushes them to a test registry by digest.
public final class RegistryImages: @unchecked Sendable {
    /// Shared by every test in the process: images are made once per (arch, variant, format, content).
    public static let shared: Result<RegistryImages, Error> = Result { try RegistryImages() }

    /// The storage folder.
    public let directory: URL
    private let lock = NSLock()
    private var built: [String: String] = [:]

    /// A fresh storage.
    public init() throws {
        _ = try RegistryTools.require("buildah")
        directory = try RegistryTools.temporaryDirectory("buildah")
        let conf = """
        [storage]
        driver = "vfs"
        graphroot = "\(directory.path)/graph"
        runroot = "\(directory.path)/run"
        """
        try Data(conf.utf8).write(to: directory.appendingPathComponent("storage.conf"))
        // An empty auth file of its own, so the user's logins never leak into (or out of) the tests.
        try Data(#"{"auths":{}}"#.utf8).write(to: directory.appendingPathComponent("auth.json"))
    }

    /// The environment buildah runs with.
    public var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_STORAGE_CONF"] = directory.appendingPathComponent("storage.conf").path
        env["BUILDAH_ISOLATION"] = "chroot"
        env["REGISTRY_AUTH_FILE"] = directory.appendingPathComponent("auth.json").path
        return env
    }

    /// A local image for `arch` (and `variant`) in `format` (`oci` or `docker`), holding one small file.
    public func image(arch: String, variant: String? = nil, format: String = "oci", content: String = "hello") throws -> String {
        let key = [arch, variant ?? "", format, content].joined(separator: "-")
        lock.lock()
        defer { lock.unlock() }
        if let name = built[key] { return name }
        let name = "localhost/harness-" + String(key.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) ? Character($0) : "-" }).lowercased()
        let file = directory.appendingPathComponent("file-\(key)")
        try Data("\(content) \(arch) \(variant ?? "")\n".utf8).write(to: file)
        let container = try buildah(["from", "scratch"]).text.trimmingCharacters(in: .whitespacesAndNewlines)
        try buildah(["copy", container, file.path, "/hello.txt"])
        var config = ["config", "--arch", arch, "--os", "linux"]
        if let variant { config += ["--variant", variant] }
        try buildah(config + [container])
        try buildah(["commit", "-q", "--format", format, container, name])
        try buildah(["rm", container])
        built[key] = name
        return name
    }

    /// Pushes local `image` to `destination` (`127.0.0.1:PORT/repo:tag`); returns the pushed manifest digest.
    @discardableResult
    public func push(_ image: String, to destination: String, credentials: String? = nil) throws -> String {
        let digestFile = directory.appendingPathComponent("digest-\(UUID().uuidString)")
        var args = ["push", "-q", "--tls-verify=false", "--digestfile", digestFile.path]
        if let credentials { args += ["--creds", credentials] }
        try buildah(args + [image, "docker://\(destination)"])
        defer { try? FileManager.default.removeItem(at: digestFile) }
        return try String(contentsOf: digestFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Makes and pushes an image in one go; returns its digest.
    @discardableResult
    public func pushImage(arch: String, variant: String? = nil, format: String = "oci", content: String = "hello",
                          to destination: String, credentials: String? = nil) throws -> String {
        try push(try image(arch: arch, variant: variant, format: format, content: content), to: destination, credentials: credentials)
    }

    /// Runs buildah with the isolated storage.
    @discardableResult
    public func buildah(_ args: [String]) throws -> RegistryTools.Output {
        try RegistryTools.run("buildah", args, environment: environment)
    }
}
