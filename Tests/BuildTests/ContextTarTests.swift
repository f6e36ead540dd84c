import Foundation
import Testing
@testable import Build

private func awkwardTree(_ d: TempDir) throws {
    try d.write("Dockerfile", "FROM scratch\n")
    try d.write("it's $(touch pwned) \"q\".txt", "quoted\n")
    try d.write("new\nline", "nl")
    try d.write(String(repeating: "long-folder-name/", count: 8) + "file.txt", "deep")
    try d.write("bin/run", "#!/bin/sh\n", mode: 0o4755)
    try d.write("big.bin", String(repeating: "0123456789", count: 100_000))
    try d.mkdir("empty", mode: 0o750)
    try d.mkdir("ro", mode: 0o555)
    try d.symlink("passwd", to: "/etc/passwd")
    try d.symlink("far", to: String(repeating: "../x", count: 40))
}

@Test func treeTarIsExtractedByGNUTarIntoTheSameTree() throws {
    let src = try TempDir(), out = try TempDir()
    defer { src.cleanup(); out.cleanup() }
    try awkwardTree(src)
    let ctx = try PreparedContext.prepare(ContextOptions(context: src.path))
    let r = try run(["tar", "-x", "-p", "-f", "-", "-C", out.path], feed: feed(TarStream(tree: ctx, chunkSize: 4096)))
    #expect(r.status == 0, "\(r.stderr)")
    #expect(try listing(out.path) == listing(src.path))
    #expect(!FileManager.default.fileExists(atPath: out.sub("pwned")))
    var st = stat()
    #expect(lstat(out.sub("bin/run"), &st) == 0 && st.st_mtim.tv_sec == Int(TarStream.modificationTime))
}

@Test func sameContextGivesByteIdenticalTars() throws {
    let a = try TempDir(), b = try TempDir()
    defer { a.cleanup(); b.cleanup() }
    try awkwardTree(a)
    try awkwardTree(b)
    func bytes(_ d: TempDir) throws -> [UInt8] {
        let s = TarStream(tree: try PreparedContext.prepare(ContextOptions(context: d.path)))
        var all: [UInt8] = []
        while let c = try s.nextChunk() { all += c }
        return all
    }
    #expect(try bytes(a) == bytes(b))
}

@Test func blobTarHoldsOnlyTheRequestedDigestsByName() throws {
    let src = try TempDir(), out = try TempDir()
    defer { src.cleanup(); out.cleanup() }
    try src.write("Dockerfile", "FROM scratch\n")
    try src.write("a", "one")
    try src.write("b", "one")
    try src.write("c", "two")
    let ctx = try PreparedContext.prepare(ContextOptions(context: src.path))
    let want = ctx.manifest.entries.first { $0.path == "a" }!.digestHex!
    let r = try run(["tar", "-x", "-f", "-", "-C", out.path], feed: feed(TarStream(blobs: [want], of: ctx)))
    #expect(r.status == 0, "\(r.stderr)")
    #expect(try FileManager.default.contentsOfDirectory(atPath: out.sub("blobs/sha256")) == [want])
    #expect(try String(contentsOfFile: out.sub("blobs/sha256/" + want), encoding: .utf8) == "one")
}

@Test func fileChangedAfterHashingFailsTheStreamInsteadOfSendingWrongContent() throws {
    let src = try TempDir()
    defer { src.cleanup() }
    try src.write("Dockerfile", "FROM scratch\n")
    try src.write("data", "aaaa")
    let ctx = try PreparedContext.prepare(ContextOptions(context: src.path))
    try src.write("data", "bbbb")
    let s = TarStream(tree: ctx)
    #expect(throws: ContextError.fileChanged(path: src.sub("data"))) { while try s.nextChunk() != nil {} }
    try src.write("data", "bbbbb")
    let grown = TarStream(tree: ctx)
    #expect(throws: ContextError.fileChanged(path: src.sub("data"))) { while try grown.nextChunk() != nil {} }
}

@Test func largeFileStreamsInBoundedChunks() throws {
    let src = try TempDir()
    defer { src.cleanup() }
    try src.write("Dockerfile", "FROM scratch\n")
    let size: Int64 = 200 << 20
    let fd = open(src.sub("sparse"), O_CREAT | O_WRONLY, 0o644)
    #expect(ftruncate(fd, off_t(size)) == 0)
    close(fd)
    let t0 = Date()
    let ctx = try PreparedContext.prepare(ContextOptions(context: src.path))
    let hashed = Date()
    let chunkSize = 1 << 20
    let s = TarStream(tree: ctx, chunkSize: chunkSize)
    var largest = 0, total = 0, chunks = 0
    while let c = try s.nextChunk() {
        largest = max(largest, c.count)
        total += c.count
        chunks += 1
    }
    let done = Date()
    #expect(largest == chunkSize)
    // Two headers, two files (the Dockerfile padded to 512), the end-of-archive blocks.
    #expect(total == 512 + 512 + 512 + Int(size) + 1024)
    #expect(chunks == (total + chunkSize - 1) / chunkSize)
    let mb = Double(size) / 1_048_576
    print("context 200 MiB: hash \(String(format: "%.0f", mb / hashed.timeIntervalSince(t0))) MiB/s, "
          + "tar+verify \(String(format: "%.0f", mb / done.timeIntervalSince(hashed))) MiB/s")
}

@Test("pax record length counts itself, across a digit boundary", arguments: [1, 90, 91, 92, 995, 996])
func paxRecordLengthCountsItself(valueLength: Int) {
    let record = TarHeader.paxRecord("path", String(repeating: "x", count: valueLength))
    let text = String(decoding: record, as: UTF8.self)
    #expect(Int(text.prefix { $0 != " " }) == record.count)
}
