import Foundation
import Testing
@testable import Build

@Test func walkRecordsFoldersFilesAndSymlinksInPathOrderWithModes() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    try d.write("Dockerfile", "FROM scratch\n")
    try d.write("b/run.sh", "#!/bin/sh\n", mode: 0o755)
    try d.write("a-c", "x")
    try d.mkdir("a/empty", mode: 0o700)
    try d.symlink("b/link", to: "run.sh")
    let ctx = try PreparedContext.prepare(ContextOptions(context: d.path))
    let e = ctx.manifest.entries
    #expect(e.map(\.path) == ["Dockerfile", "a", "a-c", "a/empty", "b", "b/link", "b/run.sh"])
    #expect(e.first { $0.path == "a/empty" }?.mode == 0o700)
    #expect(e.first { $0.path == "b/run.sh" }?.isExecutable == true)
    #expect(e.first { $0.path == "a-c" }?.isExecutable == false)
    #expect(e.first { $0.path == "b/link" } == ContextEntry(path: "b/link", kind: .symlink, mode: 0o777, linkTarget: "run.sh"))
    #expect(e.first { $0.path == "a-c" }?.digest == "sha256:" + "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
    #expect(ctx.dockerfilePath == "Dockerfile")
}

@Test func symlinkPointingOutsideTheContextIsSentAsALinkNotFollowed() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    try d.write("Dockerfile", "FROM scratch\n")
    try d.symlink("passwd", to: "/etc/passwd")
    try d.symlink("up", to: "../../..")
    let ctx = try PreparedContext.prepare(ContextOptions(context: d.path))
    let passwd = try #require(ctx.manifest.entries.first { $0.path == "passwd" })
    #expect(passwd.kind == .symlink && passwd.linkTarget == "/etc/passwd" && passwd.size == 0 && passwd.digest == nil)
    // A link to a folder is not descended into.
    #expect(!ctx.manifest.entries.contains { $0.path.hasPrefix("up/") })
    #expect(ctx.manifest.blobDigests.count == 1)
}

@Test func excludedFolderAppearsOnlyWhenAReincludedChildNeedsIt() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    try d.write("Dockerfile", "FROM scratch\n")
    try d.write(".dockerignore", "cache\nlogs\n!logs/keep.txt\n")
    try d.write("cache/big", "x")
    try d.write("logs/keep.txt", "k")
    try d.write("logs/drop.txt", "d")
    let paths = try PreparedContext.prepare(ContextOptions(context: d.path)).manifest.entries.map(\.path)
    #expect(paths == [".dockerignore", "Dockerfile", "logs", "logs/keep.txt"])
}

@Test func dockerfileAndIgnoreFileAreSentEvenWhenExcluded() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    try d.write("docker/app.Dockerfile", "FROM scratch\n")
    try d.write(".dockerignore", "*\n")
    try d.write("src/main.c", "int main;")
    let ctx = try PreparedContext.prepare(ContextOptions(context: d.path, dockerfile: d.sub("docker/app.Dockerfile")))
    #expect(ctx.manifest.entries.map(\.path) == [".dockerignore", "docker", "docker/app.Dockerfile"])
    #expect(ctx.dockerfilePath == "docker/app.Dockerfile")
}

@Test func dockerfileSpecificIgnoreWinsThenContainerignoreForPodmanThenDockerignore() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    let df = try d.write("Dockerfile", "FROM scratch\n")
    try d.write(".dockerignore", "a\n")
    try d.write(".containerignore", "b\n")
    #expect(IgnoreFile.locate(context: d.path, dockerfile: df, containerEngine: false) == d.sub(".dockerignore"))
    #expect(IgnoreFile.locate(context: d.path, dockerfile: df, containerEngine: true) == d.sub(".containerignore"))
    try d.write("Dockerfile.dockerignore", "c\n")
    #expect(IgnoreFile.locate(context: d.path, dockerfile: df, containerEngine: true) == d.sub("Dockerfile.dockerignore"))
    try d.write("a", "1")
    try d.write("c", "3")
    let paths = try PreparedContext.prepare(ContextOptions(context: d.path)).manifest.entries.map(\.path)
    #expect(paths.contains("a") && !paths.contains("c"))
}

@Test func dockerfileOutsideTheContextTravelsUnderTheReservedName() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    try d.write("ctx/app.txt", "app")
    let outside = try d.write("elsewhere/Build.Dockerfile", "FROM scratch\nCOPY app.txt /\n")
    let ctx = try PreparedContext.prepare(ContextOptions(context: d.sub("ctx"), dockerfile: outside))
    #expect(ctx.dockerfilePath == ".coordinator/Dockerfile")
    #expect(ctx.manifest.entries.map(\.path) == [".coordinator", ".coordinator/Dockerfile", "app.txt"])
    let i = try #require(ctx.manifest.entries.firstIndex { $0.path == ".coordinator/Dockerfile" })
    #expect(ctx.sources[i] == outside)
    // The reserved name must not already be taken by the context.
    try d.write("ctx/.coordinator/x", "clash")
    #expect(throws: ContextError.reservedName(context: d.sub("ctx"), name: ".coordinator")) {
        try PreparedContext.prepare(ContextOptions(context: d.sub("ctx"), dockerfile: outside))
    }
}

@Test func contextOverTheSizeLimitFailsNamingContextAndLimit() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    try d.write("Dockerfile", "FROM scratch\n")
    try d.write("blob", String(repeating: "x", count: 3000))
    #expect(throws: ContextError.self) { try PreparedContext.prepare(ContextOptions(context: d.path, sizeLimit: 2048)) }
    do {
        _ = try PreparedContext.prepare(ContextOptions(context: d.path, sizeLimit: 2048))
    } catch {
        #expect(error.description.contains(d.path) && error.description.contains("2.0 KiB"))
        #expect(error.exitCode == .usage)
    }
    #expect(try PreparedContext.prepare(ContextOptions(context: d.path, sizeLimit: 4096)).manifest.contentBytes == 3013)
}

@Test func fifoInTheContextIsSkippedWithAWarning() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    try d.write("Dockerfile", "FROM scratch\n")
    #expect(mkfifo(d.sub("pipe"), 0o644) == 0)
    let ctx = try PreparedContext.prepare(ContextOptions(context: d.path))
    #expect(ctx.manifest.entries.map(\.path) == ["Dockerfile"])
    #expect(ctx.warnings == ["skipped pipe: a fifo cannot be sent"])
}

@Test func missingContextOrDockerfileIsAUsageError() throws {
    let d = try TempDir()
    defer { d.cleanup() }
    #expect(throws: ContextError.self) { try PreparedContext.prepare(ContextOptions(context: d.sub("nope"))) }
    #expect(throws: ContextError.self) { try PreparedContext.prepare(ContextOptions(context: d.path)) }
}
