import Foundation
import Support

/// What a context holds — every entry with its mode, size and content digest — and one digest over all
/// of it. Independent of mtimes, owners and walk order; the host's cache is keyed by `digest`.
public struct ContextManifest: Sendable, Equatable {
    /// Entries in path order (byte order of the UTF-8 path), parents before children.
    public let entries: [ContextEntry]
    /// `sha256:<hex>` over `encoded()`: equal manifests, equal digests.
    public let digest: String

    /// A manifest of already-hashed entries (sorted here).
    public init(entries: [ContextEntry]) {
        self.entries = entries.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        digest = "sha256:" + Hashing.sha256Hex(Array(Self.encode(self.entries).utf8))
    }

    /// Hashes each file entry from its source (streamed in 1 MiB reads) and builds the manifest.
    init(hashing entries: [ContextEntry], sources: [String]) throws(ContextError) {
        var hashed = entries
        var buffer = [UInt8](repeating: 0, count: FileChunks.defaultChunk)
        for i in hashed.indices where hashed[i].kind == .file {
            let hasher = SHA256Stream()
            try FileChunks.read(sources[i], size: hashed[i].size, buffer: &buffer) { hasher.update($0) }
            hashed[i].digest = "sha256:" + Hashing.hex(hasher.finish())
        }
        self.init(entries: hashed)
    }

    /// The hex part of `digest` (the name of the cached tree on a host).
    public var digestHex: String { String(digest.dropFirst("sha256:".count)) }

    /// Total bytes of file content.
    public var contentBytes: Int64 { entries.reduce(0) { $0 + $1.size } }

    /// The distinct file digests (hex), sorted: what a host's blob cache must hold.
    public var blobDigests: [String] { Array(Set(entries.compactMap(\.digestHex))).sorted() }

    /// One file entry per digest the host lacks (`present` holds hex digests): the blobs to send.
    public func missing(present: Set<String>) -> [ContextEntry] {
        var seen = Set<String>()
        return entries.filter { e in
            guard let hex = e.digestHex, !present.contains(hex) else { return false }
            return seen.insert(hex).inserted
        }
    }

    // MARK: Text form

    /// The canonical text form, one line per entry: `KIND MODE SIZE DIGEST PATH[\tTARGET]`, with `-` for no
    /// digest and `\\`, `\n`, `\t` and other control bytes in paths escaped. The context digest hashes it.
    public func encoded() -> String { Self.encode(entries) }

    /// Parses `encoded()` back (host-side tools and tests); `digest` is recomputed from the entries.
    public init(decoding text: String) throws(ContextError) {
        var entries: [ContextEntry] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == Substring(Self.header) else { throw .badManifest(line: 1, reason: "missing \(Self.header) header") }
        for (n, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            let fields = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
            guard fields.count == 5, let kind = ContextEntry.Kind(rawValue: String(fields[0])),
                  let mode = UInt32(fields[1], radix: 8), let size = Int64(fields[2]) else {
                throw .badManifest(line: n + 1, reason: "expected KIND MODE SIZE DIGEST PATH")
            }
            let rest = fields[4].split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            let digest = fields[3] == "-" ? nil : String(fields[3])
            entries.append(ContextEntry(path: try Self.unescape(rest[0], line: n + 1), kind: kind, mode: mode, size: size,
                                        digest: digest,
                                        linkTarget: rest.count > 1 ? try Self.unescape(rest[1], line: n + 1) : nil))
        }
        self.init(entries: entries)
    }

    static let header = "coordinator-context-manifest v1"

    private static func encode(_ entries: [ContextEntry]) -> String {
        var out = header + "\n"
        for e in entries {
            let mode = String(e.mode, radix: 8)
            out += "\(e.kind.rawValue) \(String(repeating: "0", count: max(0, 4 - mode.count)))\(mode) \(e.size) \(e.digest ?? "-") "
            out += escape(e.path)
            if let target = e.linkTarget { out += "\t" + escape(target) }
            out += "\n"
        }
        return out
    }

    private static func escape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where u.value < 0x20 || u.value == 0x7F: out += "\\x" + String(format: "%02x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    private static func unescape(_ s: Substring, line: Int) throws(ContextError) -> String {
        var out = String.UnicodeScalarView()
        var it = s.unicodeScalars.makeIterator()
        while let u = it.next() {
            guard u == "\\" else { out.append(u); continue }
            switch it.next() {
            case "\\": out.append("\\")
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "x":
                guard let a = it.next(), let b = it.next(), let v = UInt32(String([Character(a), Character(b)]), radix: 16),
                      let scalar = Unicode.Scalar(v) else { throw .badManifest(line: line, reason: "bad \\x escape") }
                out.append(scalar)
            default: throw .badManifest(line: line, reason: "bad escape")
            }
        }
        return String(out)
    }
}

/// Reads a file in bounded chunks, never following a symlink, and insists it still has the size the walk saw.
enum FileChunks {
    static let defaultChunk = 1 << 20

    static func read(_ path: String, size: Int64, buffer: inout [UInt8], _ body: (UnsafeRawBufferPointer) throws(ContextError) -> Void) throws(ContextError) {
        let fd = try open(path)
        defer { close(fd) }
        var remaining = size
        while remaining > 0 {
            let n = try readSome(fd, path: path, into: &buffer, max: Int(min(Int64(buffer.count), remaining)))
            var failure: ContextError?
            buffer.withUnsafeBytes { raw in
                do throws(ContextError) { try body(UnsafeRawBufferPointer(rebasing: raw[..<n])) } catch { failure = error }
            }
            if let failure { throw failure }
            remaining -= Int64(n)
        }
        try expectEnd(fd, path: path)
    }

    static func open(_ path: String) throws(ContextError) -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: path, reason: ContextWalker.errnoText()) }
        return fd
    }

    /// Reads up to `max` bytes into the start of `buffer`; a premature end of file means the file shrank.
    static func readSome(_ fd: Int32, path: String, into buffer: inout [UInt8], max: Int) throws(ContextError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, max) }
            if n > 0 { return n }
            if n == 0 { throw .fileChanged(path: path) }
            if errno != EINTR { throw .unreadable(path: path, reason: ContextWalker.errnoText()) }
        }
    }

    /// After the expected bytes the file must be at its end (it did not grow).
    static func expectEnd(_ fd: Int32, path: String) throws(ContextError) {
        var one: UInt8 = 0
        if Glibc.read(fd, &one, 1) > 0 { throw .fileChanged(path: path) }
    }
}
