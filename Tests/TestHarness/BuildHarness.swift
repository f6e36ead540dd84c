import Foundation

/// What build tests need besides hosts and a registry: a small multi-arch base image with a shell
/// (busybox) so Dockerfiles can `RUN`, pushed once per registry.
public enum BuildHarness {
    /// Pushes `REGISTRY/base/busybox:1` as an index for linux/amd64 and linux/arm64; returns the reference.
    /// `credentials` (`user:password`) for a registry that requires them.
    public static func pushBusyboxBase(to registry: String, credentials: String? = nil) throws -> String {
        let creds = credentials.map { ["--creds", $0] } ?? []
        let images = try RegistryImages.shared.get()
        guard FileManager.default.isExecutableFile(atPath: "/bin/busybox") else {
            throw RegistryHarnessError("/bin/busybox missing (Debian package busybox-static)")
        }
        let authFile = images.directory.appendingPathComponent("auth.json").path
        if !FileManager.default.fileExists(atPath: authFile) { FileManager.default.createFile(atPath: authFile, contents: Data("{}".utf8)) }
        let root = images.directory.appendingPathComponent("busybox-root-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/tmp", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root + "/bin/busybox")
        for tool in ["sh", "sleep", "printf", "cat", "echo", "ls", "touch", "uname", "env", "test", "["] {
            try FileManager.default.createSymbolicLink(atPath: root + "/bin/" + tool, withDestinationPath: "busybox")
        }
        let list = "localhost/busybox-list-\(UUID().uuidString.lowercased().prefix(8))"
        try images.buildah(["manifest", "create", list])
        for arch in ["amd64", "arm64"] {
            let c = try images.buildah(["from", "scratch"]).text.trimmingCharacters(in: .whitespacesAndNewlines)
            try images.buildah(["copy", c, root, "/"])
            try images.buildah(["config", "--arch", arch, "--os", "linux", "--env", "PATH=/bin", c])
            let name = "localhost/busybox-\(arch)-\(UUID().uuidString.lowercased().prefix(8))"
            try images.buildah(["commit", "-q", "--format", "oci", c, name])
            try images.buildah(["rm", c])
            try images.push(name, to: "\(registry)/base/busybox:\(arch)", credentials: credentials)
            try images.buildah(["manifest", "add", "--tls-verify=false"] + creds + [list, "docker://\(registry)/base/busybox:\(arch)"])
        }
        try images.buildah(["manifest", "push", "-q", "--all", "--tls-verify=false"] + creds + [list, "docker://\(registry)/base/busybox:1"])
        return "\(registry)/base/busybox:1"
    }
}
