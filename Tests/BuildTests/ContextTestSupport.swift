import Foundation
@testable import Build

/// A fresh temporary folder, removed by `cleanup()`.
struct TempDir {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "ctx-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
    func sub(_ rel: String) -> String { path + "/" + rel }

    @discardableResult
    func write(_ rel: String, _ text: String, mode: Int = 0o644) throws -> String {
        let p = sub(rel)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        chmod(p, mode_t(mode))
        return p
    }
    func mkdir(_ rel: String, mode: Int = 0o755) throws {
        try FileManager.default.createDirectory(atPath: sub(rel), withIntermediateDirectories: true)
        chmod(sub(rel), mode_t(mode))
    }
    func symlink(_ rel: String, to target: String) throws {
        try FileManager.default.createSymbolicLink(atPath: sub(rel), withDestinationPath: target)
    }
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `args` with `stdin` fed from `feed` (chunk by chunk), capturing output.
func run(_ args: [String], cwd: String? = nil, feed: ((FileHandle) throws -> Void)? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let input = Pipe(), output = Pipe(), errors = Pipe()
    p.standardInput = input
    p.standardOutput = output
    p.standardError = errors
    try p.run()
    try feed?(input.fileHandleForWriting)
    try input.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = errors.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                     stderr: String(decoding: err, as: UTF8.self))
}

/// Feeds a whole tar stream into a handle.
func feed(_ stream: TarStream) -> (FileHandle) throws -> Void {
    { handle in while let chunk = try stream.nextChunk() { try handle.write(contentsOf: chunk) } }
}

/// Feeds a whole stdin producer into a handle.
func feed(_ producer: @escaping ChunkProducer) -> (FileHandle) throws -> Void {
    { handle in while let chunk = try producer() { try handle.write(contentsOf: chunk) } }
}

/// An independent listing of a tree (GNU find + sha256sum): type, mode, link target and content hash per path.
func listing(_ dir: String) throws -> String {
    let r = try run(["sh", "-c", "find . -mindepth 1 -printf '%P|%y|%m|%l\\n' | LC_ALL=C sort; "
                        + "find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2"], cwd: dir)
    return r.stdout
}
