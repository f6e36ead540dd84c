import Foundation
import Support

/// One thing in a context: a folder, a regular file or a symlink, with what the digest covers.
public struct ContextEntry: Sendable, Equatable, Codable {
    /// The three kinds a context carries; everything else is skipped.
    public enum Kind: String, Sendable, Codable {
        /// A folder.
        case directory = "d"
        /// A regular file.
        case file = "f"
        /// A symbolic link (never followed).
        case symlink = "l"
    }

    /// Relative, `/`-separated path inside the context (no `./`, no trailing `/`).
    public var path: String
    /// What it is.
    public var kind: Kind
    /// Permission bits (`0o7777`); symlinks are always `0o777`.
    public var mode: UInt32
    /// Content size in bytes (0 for folders and links).
    public var size: Int64
    /// `sha256:<hex>` of the content, for files once hashed.
    public var digest: String?
    /// The link's target exactly as stored, for symlinks.
    public var linkTarget: String?

    /// An entry.
    public init(path: String, kind: Kind, mode: UInt32, size: Int64 = 0, digest: String? = nil, linkTarget: String? = nil) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.size = size
        self.digest = digest
        self.linkTarget = linkTarget
    }

    /// True for a regular file with any execute bit.
    public var isExecutable: Bool { kind == .file && mode & 0o111 != 0 }

    /// The hex part of `digest`.
    public var digestHex: String? { digest.map { String($0.dropFirst("sha256:".count)) } }
}

/// The result of walking a context: entries (digests not yet filled) in path order, and their sources.
struct ContextWalk {
    var entries: [ContextEntry]
    var sources: [String]
    var dockerfilePath: String
    var ignoreFile: String?
    var warnings: [String]
}

/// Walks CONTEXT in sorted order, applying the ignore rules; never follows a symlink.
struct ContextWalker {
    /// Where a Dockerfile from outside the context travels, relative to the context root.
    static let outsideDockerfileName = ".coordinator/Dockerfile"

    let options: ContextOptions

    init(_ options: ContextOptions) { self.options = options }

    func walk() throws(ContextError) -> ContextWalk {
        let root = try Self.realDirectory(options.context)
        let dockerfile = try Self.locateDockerfile(options, root: root)
        let ignorePath = IgnoreFile.locate(context: root, dockerfile: dockerfile.local, containerEngine: options.containerEngine)
        let rules = try ignorePath.map { p throws(ContextError) in try IgnoreFile.load(p) } ?? .none

        // docker always sends the Dockerfile and the ignore file, whatever the patterns say.
        var forced: [String] = []
        if let inside = dockerfile.inside { forced.append(inside) }
        if let ignorePath, let rel = Self.relative(ignorePath, to: root) { forced.append(rel) }

        var state = WalkState(root: root, rules: rules, forced: forced, limit: options.sizeLimit, contextName: options.context)
        try state.walkDirectory(rel: "", abs: root)

        var dockerfilePath = dockerfile.inside ?? Self.outsideDockerfileName
        if dockerfile.inside == nil {
            if state.items.contains(where: { $0.entry.path == ".coordinator" || $0.entry.path.hasPrefix(".coordinator/") }) {
                throw .reservedName(context: options.context, name: ".coordinator")
            }
            let st = try Self.lstat(dockerfile.local, follow: true)
            try state.account(Int64(st.st_size))
            state.items.append(Item(entry: ContextEntry(path: ".coordinator", kind: .directory, mode: 0o755), source: root))
            state.items.append(Item(entry: ContextEntry(path: Self.outsideDockerfileName, kind: .file,
                                                        mode: UInt32(st.st_mode) & 0o7777, size: Int64(st.st_size)),
                                    source: dockerfile.local))
            dockerfilePath = Self.outsideDockerfileName
        }
        state.items.sort { $0.entry.path.utf8.lexicographicallyPrecedes($1.entry.path.utf8) }
        return ContextWalk(entries: state.items.map(\.entry), sources: state.items.map(\.source),
                           dockerfilePath: dockerfilePath, ignoreFile: ignorePath, warnings: state.warnings)
    }

    // MARK: Paths

    static func realDirectory(_ path: String) throws(ContextError) -> String {
        guard let real = realpath(path, nil) else { throw .unreadable(path: path, reason: errnoText()) }
        defer { free(real) }
        let s = String(cString: real)
        var st = stat()
        guard stat(s, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { throw .unreadable(path: path, reason: "not a folder") }
        return s
    }

    /// The Dockerfile's local path and, when it lies inside the context, its path relative to the root.
    static func locateDockerfile(_ options: ContextOptions, root: String) throws(ContextError) -> (local: String, inside: String?) {
        var local: String
        if let given = options.dockerfile {
            local = given
        } else {
            local = (root as NSString).appendingPathComponent("Dockerfile")
            let lower = (root as NSString).appendingPathComponent("dockerfile")
            if !FileManager.default.fileExists(atPath: local), FileManager.default.fileExists(atPath: lower) { local = lower }
        }
        let st = try lstat(local, follow: true)
        guard st.st_mode & S_IFMT == S_IFREG else { throw .unreadable(path: local, reason: "the Dockerfile is not a regular file") }
        guard let real = realpath(local, nil) else { throw .unreadable(path: local, reason: errnoText()) }
        defer { free(real) }
        return (local, relative(String(cString: real), to: root))
    }

    /// `path` relative to `root` when it lies strictly inside it.
    static func relative(_ path: String, to root: String) -> String? {
        let prefix = root.hasSuffix("/") ? root : root + "/"
        guard path.hasPrefix(prefix), path.utf8.count > prefix.utf8.count else { return nil }
        return String(path.dropFirst(prefix.count))
    }

    static func lstat(_ path: String, follow: Bool = false) throws(ContextError) -> stat {
        var st = stat()
        let rc = follow ? stat(path, &st) : Glibc.lstat(path, &st)
        guard rc == 0 else { throw .unreadable(path: path, reason: errnoText()) }
        return st
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

private struct Item {
    var entry: ContextEntry
    var source: String
}

/// The mutable part of one walk.
private struct WalkState {
    let root: String
    let rules: IgnoreRules
    let forced: [String]
    let limit: Int64?
    let contextName: String
    var items: [Item] = []
    var warnings: [String] = []
    var total: Int64 = 0
    /// Excluded folders entered because something below may be re-included; emitted only if it is.
    var pending: [Item] = []

    init(root: String, rules: IgnoreRules, forced: [String], limit: Int64?, contextName: String) {
        self.root = root
        self.rules = rules
        self.forced = forced
        self.limit = limit
        self.contextName = contextName
    }

    mutating func account(_ bytes: Int64) throws(ContextError) {
        total += bytes
        if let limit, total > limit { throw .tooLarge(context: contextName, limit: limit, seen: total) }
    }

    mutating func emit(_ item: Item) {
        items.append(contentsOf: pending)
        pending.removeAll()
        items.append(item)
    }

    mutating func walkDirectory(rel: String, abs: String) throws(ContextError) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: abs)
        } catch {
            throw .unreadable(path: abs, reason: ContextWalker.errnoText())
        }
        for name in names.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let childRel = rel.isEmpty ? name : rel + "/" + name
            let childAbs = abs + "/" + name
            let st = try ContextWalker.lstat(childAbs)
            let isForced = forced.contains(childRel)
            let excluded = !isForced && rules.excludes(childRel)
            let mode = UInt32(st.st_mode) & 0o7777
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                let item = Item(entry: ContextEntry(path: childRel, kind: .directory, mode: mode), source: childAbs)
                if excluded {
                    let forcedBelow = forced.contains { $0.hasPrefix(childRel + "/") }
                    guard forcedBelow || rules.mayReinclude(below: childRel) else { continue }
                    pending.append(item)
                    let depth = pending.count
                    try walkDirectory(rel: childRel, abs: childAbs)
                    if pending.count == depth { pending.removeLast() }
                } else {
                    emit(item)
                    try walkDirectory(rel: childRel, abs: childAbs)
                }
            case S_IFREG:
                guard !excluded else { continue }
                try account(Int64(st.st_size))
                emit(Item(entry: ContextEntry(path: childRel, kind: .file, mode: mode, size: Int64(st.st_size)), source: childAbs))
            case S_IFLNK:
                guard !excluded else { continue }
                let target = try Self.readLink(childAbs)
                emit(Item(entry: ContextEntry(path: childRel, kind: .symlink, mode: 0o777, linkTarget: target), source: childAbs))
            default:
                if !excluded { warnings.append("skipped \(childRel): \(Self.kindName(st.st_mode)) cannot be sent") }
            }
        }
    }

    static func readLink(_ path: String) throws(ContextError) -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        guard n >= 0 else { throw .unreadable(path: path, reason: ContextWalker.errnoText()) }
        return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFSOCK: return "a socket"
        case S_IFIFO: return "a fifo"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        default: return "an unknown file type"
        }
    }
}
