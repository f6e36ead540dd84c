// Build context packaging: which files of CONTEXT a build sees (ignore files), what they are (a manifest
// of per-file SHA-256 digests and one context digest), and the bytes that carry them to a host (a
// streaming tar of the tree, or of only the blobs a host's cache lacks) plus the POSIX sh that rebuilds
// the tree from that cache. Pure local work: no SSH, no engine, no network.
// It must not follow symlinks (a link is sent as a link, wherever it points), must not hold a file's
// contents in memory (everything is streamed in bounded chunks), and its digests must not depend on
// mtimes, owners or walk order.
import Foundation
import Support

/// What to package: the context folder, the Dockerfile, the ignore-file flavour and a size limit.
public struct ContextOptions: Sendable, Equatable {
    /// The CONTEXT folder as given on the command line.
    public var context: String
    /// `-f DOCKERFILE` as given (relative to the current folder); nil means `CONTEXT/Dockerfile`.
    public var dockerfile: String?
    /// True for podman and buildah, which also honour `.containerignore`.
    public var containerEngine: Bool
    /// The most bytes of regular-file content the context may hold; nil for no limit.
    public var sizeLimit: Int64?

    /// Options with docker's defaults.
    public init(context: String, dockerfile: String? = nil, containerEngine: Bool = false, sizeLimit: Int64? = nil) {
        self.context = context
        self.dockerfile = dockerfile
        self.containerEngine = containerEngine
        self.sizeLimit = sizeLimit
    }
}

/// A problem with the build context; each one stops the run before any host is contacted (exit 2).
public enum ContextError: UserFacingError, Equatable, Sendable {
    /// A path could not be read (missing, not a folder, permission).
    case unreadable(path: String, reason: String)
    /// A pattern in an ignore file is not valid Go `filepath.Match` syntax.
    case badIgnorePattern(file: String, line: Int, pattern: String, reason: String)
    /// The context holds more bytes than `--context-size-limit` allows.
    case tooLarge(context: String, limit: Int64, seen: Int64)
    /// A file changed size or content between scanning and sending.
    case fileChanged(path: String)
    /// The context itself uses the name reserved for a Dockerfile from outside it.
    case reservedName(context: String, name: String)
    /// A manifest text could not be parsed.
    case badManifest(line: Int, reason: String)

    /// Always a usage/configuration error: nothing was contacted.
    public var exitCode: ExitCode { .usage }

    /// The message for a user.
    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "build context: cannot read \(path): \(reason)"
        case .badIgnorePattern(let file, let line, let pattern, let reason):
            return "\(file):\(line): bad ignore pattern \(pattern.debugDescription): \(reason)"
        case .tooLarge(let context, let limit, let seen):
            return "build context \(context) is larger than the limit of \(ByteCount(limit)) "
                + "(\(ByteCount(seen)) seen before stopping); exclude files with .dockerignore or raise the limit"
        case .fileChanged(let path): return "build context: \(path) changed while it was being sent; run again"
        case .reservedName(let context, let name):
            return "build context \(context) contains \(name), a name reserved for a Dockerfile outside the context"
        case .badManifest(let line, let reason): return "context manifest line \(line): \(reason)"
        }
    }
}

/// Bytes written the way people read them (`1.5 MiB`).
struct ByteCount: CustomStringConvertible {
    let bytes: Int64
    init(_ bytes: Int64) { self.bytes = bytes }
    var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// A context ready to send: its manifest, where each entry's bytes come from, and the Dockerfile path the
/// engine must be given.
public struct PreparedContext: Sendable {
    /// What the context holds, with digests.
    public let manifest: ContextManifest
    /// The local file behind each manifest entry, index-aligned with `manifest.entries`.
    public let sources: [String]
    /// The path, relative to the context root on the host, to pass to the engine as `-f`.
    public let dockerfilePath: String
    /// The ignore file that was applied, if any.
    public let ignoreFile: String?
    /// Things skipped with a reason (sockets, fifos, devices, unreadable names).
    public let warnings: [String]

    /// The Dockerfile's text, read from its local file (nil if it cannot be read).
    public var dockerfileText: String? {
        guard let i = manifest.entries.firstIndex(where: { $0.path == dockerfilePath }) else { return nil }
        return try? String(contentsOfFile: sources[i], encoding: .utf8)
    }

    /// Walks and hashes the context described by `options`.
    public static func prepare(_ options: ContextOptions) throws(ContextError) -> PreparedContext {
        let walk = try ContextWalker(options).walk()
        let manifest = try ContextManifest(hashing: walk.entries, sources: walk.sources)
        return PreparedContext(manifest: manifest, sources: walk.sources, dockerfilePath: walk.dockerfilePath,
                               ignoreFile: walk.ignoreFile, warnings: walk.warnings)
    }
}
