import Foundation
import Testing
@testable import Build

/// Runs the upload plan's steps as the SSH layer will: probe, then whatever follows its answer.
func upload(_ ctx: PreparedContext, to cache: ContextCache) throws -> [String] {
    let plan = ContextUploadPlan(context: ctx, cache: cache, chunkSize: 4096)
    let probe = try run(["sh", "-c", plan.probe.command], feed: feed(plan.probe.input()))
    #expect(probe.status == 0, "\(probe.stderr)")
    guard case .missing(let missing) = try #require(ContextCache.parseProbe(probe.stdout)) else { return [] }
    for step in plan.steps(after: .missing(missing)) {
        let r = try run(["sh", "-c", step.command], feed: feed(step.input()))
        #expect(r.status == 0, "\(step.kind): \(r.stderr)")
    }
    return missing
}

private func tree(_ d: TempDir) throws {
    try d.write("Dockerfile", "FROM scratch\n")
    try d.write("it's $(touch pwned) \"q\" `x`.txt", "quoted\n")
    try d.write("new\nline", "nl")
    try d.write("-rf", "dash")
    try d.write("bin/run", "#!/bin/sh\n", mode: 0o755)
    try d.write("bin/setuid", "s", mode: 0o4755)
    try d.write("same1", "dup")
    try d.write("same2", "dup", mode: 0o600)
    try d.mkdir("empty/nested", mode: 0o700)
    try d.mkdir("ro", mode: 0o555)
    try d.write("ro-parent/child", "c")
    chmod(d.sub("ro-parent"), 0o555)
    try d.symlink("passwd", to: "/etc/passwd")
    try d.symlink("rel", to: "bin/run")
    try d.symlink("odd", to: "-> it's \"odd\"")
}

@Test func materialisedTreeFromTheCacheEqualsTheOriginal() throws {
    let src = try TempDir(), host = try TempDir()
    defer { src.cleanup(); host.cleanup() }
    try tree(src)
    let ctx = try PreparedContext.prepare(ContextOptions(context: src.path))
    let cache = ContextCache(workDir: host.path)
    let sent = try upload(ctx, to: cache)
    #expect(Set(sent) == Set(ctx.manifest.blobDigests))
    #expect(try listing(cache.treePath(ctx.manifest)) == listing(src.path))
    #expect(!FileManager.default.fileExists(atPath: host.sub("pwned")) && !FileManager.default.fileExists(atPath: "pwned"))
    var st = stat()
    #expect(stat(cache.treePath(ctx.manifest) + "/bin/run", &st) == 0 && st.st_mtim.tv_sec == Int(TarStream.modificationTime))
    #expect(stat(cache.treePath(ctx.manifest) + "/empty", &st) == 0 && st.st_mtim.tv_sec == Int(TarStream.modificationTime))
}

@Test func unchangedContextSendsNothingAndOneChangedFileSendsOneBlob() throws {
    let src = try TempDir(), host = try TempDir()
    defer { src.cleanup(); host.cleanup() }
    try tree(src)
    let cache = ContextCache(workDir: host.path)
    let first = try PreparedContext.prepare(ContextOptions(context: src.path))
    _ = try upload(first, to: cache)
    let again = try run(["sh", "-c", cache.probeCommand(first.manifest)]) { try $0.write(contentsOf: Data(cache.probeInput(first.manifest).utf8)) }
    #expect(ContextCache.parseProbe(again.stdout) == .treePresent)

    try src.write("bin/run", "#!/bin/sh\necho changed\n", mode: 0o755)
    let second = try PreparedContext.prepare(ContextOptions(context: src.path))
    let sent = try upload(second, to: cache)
    #expect(sent == [second.manifest.entries.first { $0.path == "bin/run" }!.digestHex!])
    #expect(try listing(cache.treePath(second.manifest)) == listing(src.path))
    // Unchanged files of the two trees share the cached blob.
    var a = stat(), b = stat()
    #expect(stat(cache.treePath(first.manifest) + "/Dockerfile", &a) == 0 && stat(cache.treePath(second.manifest) + "/Dockerfile", &b) == 0)
    #expect(a.st_ino == b.st_ino)
}

@Test func materialiseFailsBeforeBuildingWhenABlobIsMissing() throws {
    let src = try TempDir(), host = try TempDir()
    defer { src.cleanup(); host.cleanup() }
    try tree(src)
    let ctx = try PreparedContext.prepare(ContextOptions(context: src.path))
    let cache = ContextCache(workDir: host.path)
    let r = try run(["/bin/sh", "-c", cache.materialiseCommand()], feed: feed(cache.materialiseInput(ctx.manifest)))
    #expect(r.status == 3)
    #expect(r.stderr.contains("missing blob sha256:"))
    #expect(!FileManager.default.fileExists(atPath: cache.treePath(ctx.manifest)))
    #expect(try FileManager.default.contentsOfDirectory(atPath: host.sub("cache/contexts")).isEmpty)
}

@Test func cutOffProbeOutputIsNotMistakenForAnAnswer() {
    #expect(ContextCache.parseProbe("abc\n") == nil)
    #expect(ContextCache.parseProbe("abc\nend\n") == .missing(["abc"]))
    #expect(ContextCache.parseProbe("present\n") == .treePresent)
}

@Test func garbageCollectionKeepsTheNewestTreesAndDropsUnlinkedBlobs() throws {
    let a = try TempDir(), b = try TempDir(), host = try TempDir()
    defer { a.cleanup(); b.cleanup(); host.cleanup() }
    try a.write("Dockerfile", "one")
    try b.write("Dockerfile", "two")
    let cache = ContextCache(workDir: host.path)
    let old = try PreparedContext.prepare(ContextOptions(context: a.path))
    _ = try upload(old, to: cache)
    sleep(1)
    let new = try PreparedContext.prepare(ContextOptions(context: b.path))
    _ = try upload(new, to: cache)
    let r = try run(["sh", "-c", cache.collectGarbageCommand(keep: 1, days: 30)])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(!FileManager.default.fileExists(atPath: cache.treePath(old.manifest)))
    #expect(FileManager.default.fileExists(atPath: cache.treePath(new.manifest) + "/Dockerfile"))
    let dirs = try FileManager.default.contentsOfDirectory(atPath: host.sub("cache/contexts"))
    #expect(dirs.count == 2)  // the link and its folder
    // Blobs no tree links to any more are kept until unchanged for `days` days (their ctime is today).
    #expect(try FileManager.default.contentsOfDirectory(atPath: host.sub("cache/blobs/sha256")).count == 2)
}

@Test func garbageCollectionNeverRemovesATreeALiveRunNames() throws {
    let a = try TempDir(), b = try TempDir(), host = try TempDir()
    defer { a.cleanup(); b.cleanup(); host.cleanup() }
    try a.write("Dockerfile", "one")
    try b.write("Dockerfile", "two")
    let cache = ContextCache(workDir: host.path)
    let busy = try PreparedContext.prepare(ContextOptions(context: a.path))
    let idle = try PreparedContext.prepare(ContextOptions(context: b.path))
    _ = try upload(busy, to: cache)
    _ = try upload(idle, to: cache)
    // A build on this host (another job, maybe another coordinator) is reading `busy`.
    try host.write("runs/run-1/.context", cache.inUseName(busy.manifest) + "\n")
    let r = try run(["sh", "-c", cache.collectGarbageCommand(keep: 0, days: 30, runs: host.sub("runs"))])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(FileManager.default.fileExists(atPath: cache.treePath(busy.manifest) + "/Dockerfile"))
    #expect(!FileManager.default.fileExists(atPath: cache.treePath(idle.manifest)))
    // Once the run folder is gone, the tree is collected like any other.
    try FileManager.default.removeItem(atPath: host.sub("runs/run-1"))
    #expect(try run(["sh", "-c", cache.collectGarbageCommand(keep: 0, days: 30, runs: host.sub("runs"))]).status == 0)
    #expect(!FileManager.default.fileExists(atPath: cache.treePath(busy.manifest)))
}
