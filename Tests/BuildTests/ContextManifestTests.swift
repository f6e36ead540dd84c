import Foundation
import Testing
@testable import Build

private func makeTree(_ d: TempDir, mtime: TimeInterval) throws {
    try d.write("Dockerfile", "FROM scratch\n")
    try d.write("src/a.txt", "alpha")
    try d.write("src/b.txt", "beta")
    try d.write("bin/tool", "#!/bin/sh\n", mode: 0o755)
    try d.mkdir("empty")
    try d.symlink("src/link", to: "a.txt")
    let date = Date(timeIntervalSince1970: mtime)
    for p in ["Dockerfile", "src/a.txt", "src/b.txt", "bin/tool", "empty", "src", "bin"] {
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: d.sub(p))
    }
}

@Test func sameTreeInTwoPlacesWithDifferentMtimesHasTheSameDigest() throws {
    let a = try TempDir(), b = try TempDir()
    defer { a.cleanup(); b.cleanup() }
    try makeTree(a, mtime: 1_000_000)
    try makeTree(b, mtime: 1_700_000_000)
    let ma = try PreparedContext.prepare(ContextOptions(context: a.path)).manifest
    let mb = try PreparedContext.prepare(ContextOptions(context: b.path)).manifest
    #expect(ma == mb)
    #expect(ma.digest == mb.digest)
    #expect(ma.digest.hasPrefix("sha256:") && ma.digest.count == 71)
}

@Test func oneChangedByteChangesTheDigestAndLeavesExactlyOneBlobMissing() throws {
    let a = try TempDir(), b = try TempDir()
    defer { a.cleanup(); b.cleanup() }
    try makeTree(a, mtime: 1_000_000)
    try makeTree(b, mtime: 1_000_000)
    try b.write("src/b.txt", "betA")
    let ma = try PreparedContext.prepare(ContextOptions(context: a.path)).manifest
    let mb = try PreparedContext.prepare(ContextOptions(context: b.path)).manifest
    #expect(ma.digest != mb.digest)
    let missing = mb.missing(present: Set(ma.blobDigests))
    #expect(missing.map(\.path) == ["src/b.txt"])
    #expect(mb.missing(present: Set(mb.blobDigests)).isEmpty)
}

@Test func modeChangeChangesTheDigestButSendsNoBlob() throws {
    let a = try TempDir()
    defer { a.cleanup() }
    try makeTree(a, mtime: 1_000_000)
    let before = try PreparedContext.prepare(ContextOptions(context: a.path)).manifest
    chmod(a.sub("src/a.txt"), 0o600)
    let after = try PreparedContext.prepare(ContextOptions(context: a.path)).manifest
    #expect(before.digest != after.digest)
    #expect(after.missing(present: Set(before.blobDigests)).isEmpty)
}

@Test func identicalFilesAreOneBlob() throws {
    let a = try TempDir()
    defer { a.cleanup() }
    try a.write("Dockerfile", "same")
    try a.write("copy", "same")
    let m = try PreparedContext.prepare(ContextOptions(context: a.path)).manifest
    #expect(m.blobDigests.count == 1)
    #expect(m.missing(present: []).count == 1)
}

@Test func manifestTextRoundTripsAwkwardNames() throws {
    let entries = [
        ContextEntry(path: "dir with space", kind: .directory, mode: 0o755),
        ContextEntry(path: "dir with space/new\nline\ttab\\slash é", kind: .file, mode: 0o4755, size: 3,
                     digest: "sha256:" + String(repeating: "ab", count: 32)),
        ContextEntry(path: "l", kind: .symlink, mode: 0o777, linkTarget: "../it's \"quoted\"\u{1}"),
    ]
    let m = ContextManifest(entries: entries)
    let back = try ContextManifest(decoding: m.encoded())
    #expect(back == m)
    #expect(m.encoded().split(separator: "\n").count == 4)
    #expect(throws: ContextError.self) { try ContextManifest(decoding: "nonsense\n") }
}
