import Foundation
import Support

/// One member of a tar stream.
public struct TarMember: Sendable, Equatable {
    /// What the member carries.
    public enum Body: Sendable, Equatable {
        /// A folder.
        case directory
        /// A symbolic link to `target`.
        case symlink(target: String)
        /// A regular file read from `source`, which must still have `size` bytes (and `digest`, when given).
        case file(source: String, size: Int64, digest: String?)
    }

    /// The path inside the archive (relative, `/`-separated).
    public var name: String
    /// Permission bits.
    public var mode: UInt32
    /// The content.
    public var body: Body

    /// A member.
    public init(name: String, mode: UInt32, body: Body) {
        self.name = name
        self.mode = mode
        self.body = body
    }
}

/// A pull-based ustar/pax writer: each `read(into:)` fills the caller's buffer from headers and file
/// reads, so memory stays at one buffer however large the files. Owners are 0, every mtime is
/// `modificationTime`, so equal contexts give byte-identical archives. Used by one thread at a time.
public final class TarStream {
    /// The mtime of every member (2000-01-01T00:00:00Z): fixed so archives and materialised trees are
    /// reproducible, and late enough for tools that refuse pre-1980 times (zip).
    public static let modificationTime: Int64 = 946_684_800

    /// Default size of a `nextChunk()` chunk.
    public static let defaultChunkSize = 1 << 20

    private let members: [TarMember]
    private let chunkSize: Int
    private var index = 0
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var fd: Int32 = -1
    private var remaining: Int64 = 0
    private var padding = 0
    private var hasher: SHA256Stream?
    private var current: (path: String, digest: String?) = ("", nil)
    private var trailerQueued = false

    /// Bytes produced so far.
    public private(set) var bytesProduced: Int64 = 0

    /// A stream of `members`, in order; `chunkSize` bounds `nextChunk()`.
    public init(members: [TarMember], chunkSize: Int = TarStream.defaultChunkSize) {
        self.members = members
        self.chunkSize = max(512, chunkSize)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The whole context tree (entries in manifest order, rooted at the archive root): for `tar -x -C DIR`.
    public convenience init(tree context: PreparedContext, chunkSize: Int = TarStream.defaultChunkSize) {
        let members = zip(context.manifest.entries, context.sources).map { entry, source in
            TarMember(name: entry.path, mode: entry.mode, body: Self.body(entry, source: source))
        }
        self.init(members: members, chunkSize: chunkSize)
    }

    /// Only the given blobs (hex digests), each once, as `blobs/sha256/<hex>` mode 0644: for a host cache.
    public convenience init(blobs hexDigests: Set<String>, of context: PreparedContext, chunkSize: Int = TarStream.defaultChunkSize) {
        var seen = Set<String>()
        var members: [TarMember] = []
        for (entry, source) in zip(context.manifest.entries, context.sources) {
            guard let hex = entry.digestHex, hexDigests.contains(hex), seen.insert(hex).inserted else { continue }
            members.append(TarMember(name: "blobs/sha256/" + hex, mode: 0o644,
                                     body: .file(source: source, size: entry.size, digest: entry.digest)))
        }
        self.init(members: members, chunkSize: chunkSize)
    }

    private static func body(_ entry: ContextEntry, source: String) -> TarMember.Body {
        switch entry.kind {
        case .directory: return .directory
        case .symlink: return .symlink(target: entry.linkTarget ?? "")
        case .file: return .file(source: source, size: entry.size, digest: entry.digest)
        }
    }

    /// The next chunk (at most `chunkSize` bytes), or nil after the end-of-archive blocks.
    public func nextChunk() throws(ContextError) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var result: Result<Int, ContextError> = .success(0)
        chunk.withUnsafeMutableBytes { buf in
            do throws(ContextError) { result = .success(try read(into: buf)) } catch { result = .failure(error) }
        }
        let n = try result.get()
        if n == 0 { return nil }
        chunk.removeLast(chunkSize - n)
        return chunk
    }

    /// Fills `buffer` as far as the archive goes; returns the byte count, 0 at the end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ContextError) -> Int {
        var filled = 0
        while filled < buffer.count {
            if pendingOffset < pending.count {
                let n = min(pending.count - pendingOffset, buffer.count - filled)
                pending.withUnsafeBytes { src in
                    buffer.baseAddress!.advanced(by: filled).copyMemory(from: src.baseAddress!.advanced(by: pendingOffset), byteCount: n)
                }
                pendingOffset += n
                filled += n
            } else if fd >= 0 {
                if remaining > 0 {
                    let want = Int(min(remaining, Int64(buffer.count - filled)))
                    let n = Glibc.read(fd, buffer.baseAddress!.advanced(by: filled), want)
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 { throw .unreadable(path: current.path, reason: ContextWalker.errnoText()) }
                    if n == 0 { throw .fileChanged(path: current.path) }
                    hasher?.update(UnsafeRawBufferPointer(start: buffer.baseAddress!.advanced(by: filled), count: n))
                    remaining -= Int64(n)
                    filled += n
                } else {
                    try finishFile()
                }
            } else if index < members.count {
                try start(members[index])
                index += 1
            } else if !trailerQueued {
                queue([UInt8](repeating: 0, count: 1024))
                trailerQueued = true
            } else {
                break
            }
        }
        bytesProduced += Int64(filled)
        return filled
    }

    private func queue(_ bytes: [UInt8]) {
        pending = bytes
        pendingOffset = 0
    }

    private func finishFile() throws(ContextError) {
        defer { close(fd); fd = -1 }
        try FileChunks.expectEnd(fd, path: current.path)
        if let hasher, let expected = current.digest, "sha256:" + Hashing.hex(hasher.finish()) != expected {
            throw .fileChanged(path: current.path)
        }
        hasher = nil
        queue([UInt8](repeating: 0, count: padding))
    }

    private func start(_ member: TarMember) throws(ContextError) {
        var header: [UInt8]
        switch member.body {
        case .directory:
            header = TarHeader.make(name: member.name + "/", mode: member.mode, size: 0, type: "5", link: "")
        case .symlink(let target):
            header = TarHeader.make(name: member.name, mode: 0o777, size: 0, type: "2", link: target)
        case .file(let source, let size, let digest):
            fd = try FileChunks.open(source)
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                close(fd); fd = -1
                throw .fileChanged(path: source)
            }
            remaining = size
            padding = Int((512 - size % 512) % 512)
            current = (source, digest)
            hasher = digest == nil ? nil : SHA256Stream()
            header = TarHeader.make(name: member.name, mode: member.mode, size: size, type: "0", link: "")
        }
        queue(header)
    }
}

/// ustar headers, with a pax extended header in front when a name, link or size does not fit.
enum TarHeader {
    static func make(name: String, mode: UInt32, size: Int64, type: Character, link: String) -> [UInt8] {
        var records: [(String, String)] = []
        let nameBytes = Array(name.utf8), linkBytes = Array(link.utf8)
        if nameBytes.count > 100 { records.append(("path", name)) }
        if linkBytes.count > 100 { records.append(("linkpath", link)) }
        let sizeFits = size <= 0o77777777777
        if !sizeFits { records.append(("size", String(size))) }
        var out: [UInt8] = []
        if !records.isEmpty {
            var data: [UInt8] = []
            for (key, value) in records { data += paxRecord(key, value) }
            out += block(name: Array("././@PaxHeader".utf8), mode: 0o644, size: Int64(data.count), type: "x", link: [])
            out += data
            out += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
        }
        out += block(name: Array(nameBytes.prefix(100)), mode: mode, size: sizeFits ? size : 0, type: type,
                     link: Array(linkBytes.prefix(100)))
        return out
    }

    /// `"%d key=value\n"` where the length counts itself.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = key.utf8.count + value.utf8.count + 3
        var length = body + String(body).count
        if String(length).count != String(body).count { length = body + String(length).count }
        return Array("\(length) \(key)=\(value)\n".utf8)
    }

    private static func block(name: [UInt8], mode: UInt32, size: Int64, type: Character, link: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int) { for (i, b) in bytes.enumerated() { h[offset + i] = b } }
        func octal(_ value: Int64, width: Int, at offset: Int) {
            let digits = String(value, radix: 8)
            put(Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8), at: offset)
        }
        put(name, at: 0)
        octal(Int64(mode & 0o7777), width: 8, at: 100)
        octal(0, width: 8, at: 108)
        octal(0, width: 8, at: 116)
        octal(size, width: 12, at: 124)
        octal(TarStream.modificationTime, width: 12, at: 136)
        put(Array(repeating: UInt8(ascii: " "), count: 8), at: 148)
        h[156] = type.asciiValue!
        put(link, at: 157)
        put(Array("ustar\u{0}00".utf8), at: 257)
        let sum = h.reduce(0) { $0 + Int64($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8) + [0, UInt8(ascii: " ")], at: 148)
        return h
    }
}
