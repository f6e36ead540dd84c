// OCI: pure values for images — platforms, references, digests, descriptors, manifests, indexes.
// It must do no I/O (no network, no files): registries and layouts live in other modules.
import Foundation

/// An image platform (`linux/arm64`, `linux/arm/v7`), normalised as containerd does.
public struct Platform: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// Operating system, e.g. `linux`.
    public var os: String
    /// CPU architecture in GOARCH form, e.g. `amd64`, `arm64`.
    public var architecture: String
    /// CPU variant, e.g. `v7`; nil when the architecture has only one (`arm64` drops `v8`).
    public var variant: String?
    /// `os.version`, kept when an image config carries it.
    public var osVersion: String?

    enum CodingKeys: String, CodingKey {
        case os, architecture, variant
        case osVersion = "os.version"
    }

    /// A platform from parts, normalised.
    public init(os: String = "linux", architecture: String, variant: String? = nil, osVersion: String? = nil) {
        let (arch, v) = Platform.normalise(architecture: architecture.lowercased(), variant: variant?.lowercased())
        self.os = os.lowercased()
        self.architecture = arch
        self.variant = v
        self.osVersion = osVersion
    }

    /// Parses `os/arch[/variant]`, `arch[/variant]` or an alias (`x86_64`, `aarch64`, `armhf`, …).
    public init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var os = "linux"
        var rest = parts[...]
        if parts.count >= 2, Platform.knownOS.contains(parts[0]) {
            os = parts[0]
            rest = parts.dropFirst()
        }
        guard let arch = rest.first, !arch.isEmpty, rest.count <= 2,
              Platform.knownArchitectures.contains(arch) || Platform.aliases[arch] != nil
        else { throw PlatformError(name: text) }
        let variant = rest.count == 2 ? rest.last! : nil
        if let v = variant, v.isEmpty { throw PlatformError(name: text) }
        self.init(os: os, architecture: arch, variant: variant)
        if let v = self.variant, !(Platform.knownVariants[self.architecture]?.contains(v) ?? false) {
            throw PlatformError(name: text)
        }
    }

    /// `os/arch[/variant]`.
    public var description: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    public static func < (a: Platform, b: Platform) -> Bool { a.description < b.description }

    /// What `uname -m` prints on a host that runs this platform natively.
    public var unameMachines: [String] {
        switch (architecture, variant) {
        case ("amd64", _): return ["x86_64"]
        case ("arm64", _): return ["aarch64", "arm64"]
        case ("arm", "v7"): return ["armv7l", "armv8l"]
        case ("arm", "v6"): return ["armv6l"]
        case ("arm", _): return ["armv7l"]
        case ("386", _): return ["i386", "i686"]
        case ("ppc64le", _): return ["ppc64le"]
        case ("s390x", _): return ["s390x"]
        case ("riscv64", _): return ["riscv64"]
        default: return [architecture]
        }
    }

    /// The platform a host's `uname -m` says it runs natively, if known.
    public static func native(unameMachine: String) -> Platform? {
        switch unameMachine.trimmingCharacters(in: .whitespacesAndNewlines) {
        case "x86_64", "amd64": return Platform(architecture: "amd64")
        case "aarch64", "arm64": return Platform(architecture: "arm64")
        case "armv7l", "armv8l": return Platform(architecture: "arm", variant: "v7")
        case "armv6l": return Platform(architecture: "arm", variant: "v6")
        case "i386", "i686": return Platform(architecture: "386")
        case "ppc64le": return Platform(architecture: "ppc64le")
        case "s390x": return Platform(architecture: "s390x")
        case "riscv64": return Platform(architecture: "riscv64")
        default: return nil
        }
    }

    /// The names `init(parsing:)` accepts, for error messages.
    public static let acceptedNames = [
        "linux/amd64 (amd64, x86_64, x86-64)", "linux/arm64 (arm64, aarch64, arm64/v8)",
        "linux/arm/v7 (arm, armhf, armv7l)", "linux/arm/v6 (armel, armv6l)", "linux/386 (386, i386, i686)",
        "linux/ppc64le", "linux/s390x", "linux/riscv64",
    ]

    static let knownOS: Set<String> = ["linux", "windows", "darwin", "freebsd"]
    static let knownArchitectures: Set<String> = ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"]
    static let knownVariants: [String: Set<String>] = ["arm": ["v5", "v6", "v7", "v8"], "amd64": ["v2", "v3", "v4"]]
    static let aliases: [String: (String, String?)] = [
        "x86_64": ("amd64", nil), "x86-64": ("amd64", nil), "aarch64": ("arm64", nil),
        "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"),
        "armv6l": ("arm", "v6"), "armv6": ("arm", "v6"), "i386": ("386", nil), "i686": ("386", nil), "x86": ("386", nil),
    ]

    static func normalise(architecture: String, variant: String?) -> (String, String?) {
        var arch = architecture
        var v = variant
        if let (a, av) = aliases[arch] {
            arch = a
            if v == nil { v = av }
        }
        switch arch {
        case "arm64": if v == "v8" { v = nil }
        case "arm": if v == nil { v = "v7" }
        case "amd64": if v == "v1" { v = nil }
        default: break
        }
        return (arch, v)
    }
}

/// An unknown platform name; lists the accepted ones.
public struct PlatformError: Error, Equatable, CustomStringConvertible {
    /// The name given.
    public var name: String
    public var description: String {
        "unknown platform '\(name)'; accepted: \(Platform.acceptedNames.joined(separator: ", "))"
    }
}
