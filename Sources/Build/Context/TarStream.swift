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
        /// A hard link to `target`, a path relative to the extraction folder (no `..`, no leading `/`: GNU tar
        /// strips those from hard-link targets unless `-P`); the target need not be in the archive.
        case hardLink(target: String)
        /// A regular file with these bytes (small, generated text such as a script).
        case data([UInt8])
        /// A regular file that is itself a tar of `members`, streamed (never held whole in memory).
        case archive([TarMember])
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

    /// Where the current member's content comes from.
    private enum Content {
        case none
        case file(Int32)
        case archive(TarStream)
    }

    private let members: [TarMember]
    private let chunkSize: Int
    private var index = 0
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var content = Content.none
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

    deinit { if case .file(let fd) = content { close(fd) } }

    /// The whole context tree (entries in manifest order, rooted at the archive root): for `tar -x -C DIR`.
    public convenience init(tree context: PreparedContext, chunkSize: Int = TarStream.defaultChunkSize) {
        let members = zip(context.manifest.entries, context.sources).map { entry, source in
            TarMember(name: entry.path, mode: entry.mode, body: Self.body(entry, source: source))
        }
        self.init(members: members, chunkSize: chunkSize)
    }

    /// Only the given blobs (hex digests), each once, as `blobs/sha256/<hex>` mode 0644: for a host cache.
    public convenience init(blobs hexDigests: Set<String>, of context: PreparedContext, chunkSize: Int = TarStream.defaultChunkSize) {
        self.init(members: Self.blobMembers(hexDigests, of: context), chunkSize: chunkSize)
    }

    static func blobMembers(_ hexDigests: Set<String>, of context: PreparedContext) -> [TarMember] {
        var seen = Set<String>()
        var members: [TarMember] = []
        for (entry, source) in zip(context.manifest.entries, context.sources) {
            guard let hex = entry.digestHex, hexDigests.contains(hex), seen.insert(hex).inserted else { continue }
            members.append(TarMember(name: "blobs/sha256/" + hex, mode: 0o644,
                                     body: .file(source: source, size: entry.size, digest: entry.digest)))
        }
        return members
    }

    private static func body(_ entry: ContextEntry, source: String) -> TarMember.Body {
        switch entry.kind {
        case .directory: return .directory
        case .symlink: return .symlink(target: entry.linkTarget ?? "")
        case .file: return .file(source: source, size: entry.size, digest: entry.digest)
        }
    }

    /// The exact byte count a stream of `members` produces (headers, contents, padding, end blocks),
    /// computed without reading any file or building any header.
    public static func archiveSize(_ members: [TarMember]) -> Int64 {
        var total: Int64 = 1024
        for m in members {
            let size = contentSize(m.body)
            let (name, link) = headerNames(m)
            total += Int64(TarHeader.byteCount(nameBytes: name.utf8.count, linkBytes: link.utf8.count, size: size))
            total += size + (512 - size % 512) % 512
        }
        return total
    }

    private static func contentSize(_ body: TarMember.Body) -> Int64 {
        switch body {
        case .directory, .symlink, .hardLink: return 0
        case .file(_, let size, _): return size
        case .data(let bytes): return Int64(bytes.count)
        case .archive(let members): return archiveSize(members)
        }
    }

    /// The name and link a member's header carries.
    private static func headerNames(_ m: TarMember) -> (name: String, link: String) {
        switch m.body {
        case .directory: return (m.name + "/", "")
        case .symlink(let target), .hardLink(let target): return (m.name, target)
        case .file, .data, .archive: return (m.name, "")
        }
    }

    private static func header(_ m: TarMember, size: Int64) -> [UInt8] {
        let (name, link) = headerNames(m)
        switch m.body {
        case .directory: return TarHeader.make(name: name, mode: m.mode, size: 0, type: "5", link: "")
        case .symlink: return TarHeader.make(name: name, mode: 0o777, size: 0, type: "2", link: link)
        case .hardLink: return TarHeader.make(name: name, mode: m.mode, size: 0, type: "1", link: link)
        case .file, .data, .archive: return TarHeader.make(name: name, mode: m.mode, size: size, type: "0", link: "")
        }
    }

    /// The next chunk (at most `chunkSize` bytes), or nil after the end-of-archive blocks.
    public func nextChunk() throws(ContextError) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        let n = try chunk.withUnsafeMutableBytes { readResult($0) }.get()
        if n == 0 { return nil }
        chunk.removeLast(chunkSize - n)
        return chunk
    }

    /// `nextChunk()` as `Data`, filled in place: what an SSH stdin producer hands on.
    public func nextData() throws(ContextError) -> Data? {
        var chunk = Data(count: chunkSize)
        let n = try chunk.withUnsafeMutableBytes { readResult($0) }.get()
        if n == 0 { return nil }
        chunk.count = n
        return chunk
    }

    private func readResult(_ buffer: UnsafeMutableRawBufferPointer) -> Result<Int, ContextError> {
        do throws(ContextError) { return .success(try read(into: buffer)) } catch { return .failure(error) }
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
            } else if case .file(let fd) = content {
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
                    try finishFile(fd)
                }
            } else if case .archive(let inner) = content {
                let want = Int(min(remaining, Int64(buffer.count - filled)))
                let n = want == 0 ? 0 : try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + want)]))
                precondition(n > 0 || remaining == 0, "nested tar shorter than archiveSize computed")
                remaining -= Int64(n)
                filled += n
                if remaining == 0 {
                    content = .none
                    queue([UInt8](repeating: 0, count: padding))
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

    private func finishFile(_ fd: Int32) throws(ContextError) {
        defer { close(fd); content = .none }
        try FileChunks.expectEnd(fd, path: current.path)
        if let hasher, let expected = current.digest, "sha256:" + Hashing.hex(hasher.finish()) != expected {
            throw .fileChanged(path: current.path)
        }
        hasher = nil
        queue([UInt8](repeating: 0, count: padding))
    }

    private func start(_ member: TarMember) throws(ContextError) {
        let size = Self.contentSize(member.body)
        padding = Int((512 - size % 512) % 512)
        var header = Self.header(member, size: size)
        switch member.body {
        case .directory, .symlink, .hardLink: break
        case .data(let bytes):
            header += bytes
            header += [UInt8](repeating: 0, count: padding)
        case .archive(let members):
            content = .archive(TarStream(members: members, chunkSize: chunkSize))
            remaining = size
        case .file(let source, let size, let digest):
            let fd = try FileChunks.open(source)
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                close(fd)
                throw .fileChanged(path: source)
            }
            content = .file(fd)
            remaining = size
            current = (source, digest)
            hasher = digest == nil ? nil : SHA256Stream()
        }
        queue(header)
    }
}

/// ustar headers, with a pax extended header in front when a name, link or size does not fit.
enum TarHeader {
    static let largestUstarSize: Int64 = 0o77777777777

    static func make(name: String, mode: UInt32, size: Int64, type: Character, link: String) -> [UInt8] {
        let nameBytes = Array(name.utf8), linkBytes = Array(link.utf8)
        let sizeFits = size <= largestUstarSize
        var data: [UInt8] = []
        if nameBytes.count > 100 { data += paxRecord("path", name) }
        if linkBytes.count > 100 { data += paxRecord("linkpath", link) }
        if !sizeFits { data += paxRecord("size", String(size)) }
        var out: [UInt8] = []
        out.reserveCapacity(data.isEmpty ? 512 : 1024 + data.count + 511)
        if !data.isEmpty {
            out += block(name: Array("././@PaxHeader".utf8)[...], mode: 0o644, size: Int64(data.count), type: "x", link: [])
            out += data
            out += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
        }
        out += block(name: nameBytes.prefix(100), mode: mode, size: sizeFits ? size : 0, type: type, link: linkBytes.prefix(100))
        return out
    }

    /// `make(…).count`, without building it.
    static func byteCount(nameBytes: Int, linkBytes: Int, size: Int64) -> Int {
        var data = 0
        if nameBytes > 100 { data += paxLength(key: 4, value: nameBytes) }
        if linkBytes > 100 { data += paxLength(key: 8, value: linkBytes) }
        if size > largestUstarSize { data += paxLength(key: 4, value: String(size).utf8.count) }
        return data == 0 ? 512 : 1024 + data + (512 - data % 512) % 512
    }

    /// `"%d key=value\n"` where the length counts itself.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        Array("\(paxLength(key: key.utf8.count, value: value.utf8.count)) \(key)=\(value)\n".utf8)
    }

    static func paxLength(key: Int, value: Int) -> Int {
        let body = key + value + 3
        var length = body + String(body).count
        if String(length).count != String(body).count { length = body + String(length).count }
        return length
    }

    private static func block(name: ArraySlice<UInt8>, mode: UInt32, size: Int64, type: Character, link: ArraySlice<UInt8>) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        h.withUnsafeMutableBufferPointer { p in
            func put<C: Collection<UInt8>>(_ bytes: C, at offset: Int) {
                var i = offset
                for b in bytes { p[i] = b; i += 1 }
            }
            /// Zero-padded octal in `width - 1` digits, then NUL.
            func octal(_ value: Int64, width: Int, at offset: Int) {
                var v = value
                for i in stride(from: offset + width - 2, through: offset, by: -1) {
                    p[i] = UInt8(ascii: "0") + UInt8(v & 7)
                    v >>= 3
                }
            }
            put(name, at: 0)
            octal(Int64(mode & 0o7777), width: 8, at: 100)
            octal(0, width: 8, at: 108)
            octal(0, width: 8, at: 116)
            octal(size, width: 12, at: 124)
            octal(TarStream.modificationTime, width: 12, at: 136)
            for i in 148..<156 { p[i] = UInt8(ascii: " ") }
            p[156] = type.asciiValue!
            put(link, at: 157)
            put("ustar\u{0}00".utf8, at: 257)
            var sum: Int64 = 0
            for b in p { sum += Int64(b) }
            octal(sum, width: 7, at: 148)
            p[154] = 0
            p[155] = UInt8(ascii: " ")
        }
        return h
    }
}
