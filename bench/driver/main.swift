// coordinator-bench: drives library pieces for the benchmark scripts in bench/. Not shipped to users.
//   coordinator-bench upload --address A --port P --user U --key K --known-hosts F [--compression C]
//                            [--jump [user@]host[:port][,…]] SRC DEST
// --jump goes through those hops (same key and known_hosts), as an inventory `jump` would.
import Build
import Foundation
import SSH
import Support

func option(_ name: String, _ args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let args = Array(CommandLine.arguments.dropFirst())
guard args.first == "upload", args.count >= 3 else {
    FileHandle.standardError.write(Data("usage: coordinator-bench upload --address A --port P --user U --key K --known-hosts F [--compression auto|zstd|gzip|none] [--jump HOPS] SRC DEST\n".utf8))
    exit(2)
}
var target = SSHTarget(name: "bench", address: option("--address", args) ?? "127.0.0.1", port: Int(option("--port", args) ?? "22") ?? 22,
                       user: option("--user", args) ?? "root", identityFile: option("--key", args),
                       knownHosts: option("--known-hosts", args) ?? "~/.ssh/known_hosts")
if let hops = option("--jump", args) {
    target.jump = hops.split(separator: ",").map { text in
        guard let hop = JumpSpec(parsing: String(text)) else {
            FileHandle.standardError.write(Data("coordinator-bench: bad jump hop \(text)\n".utf8))
            exit(2)
        }
        var t = target
        t.name = hop.description
        t.address = hop.host
        t.port = hop.port ?? 22
        t.user = hop.user ?? target.user
        return t
    }
}
let compression = UploadCompression(rawValue: option("--compression", args) ?? "auto") ?? .auto
let src = args[args.count - 2], dest = args[args.count - 1]
do {
    let c = try await SSHConnection.connect(target)
    if let cache = option("--cache", args) {
        // As builds upload: hash the tree, send only the files the host's cache lacks, rebuild the tree there.
        let start = Date()
        // A tree without a Dockerfile: give it an empty one from outside (it travels as .coordinator/Dockerfile).
        let dockerfile = NSTemporaryDirectory() + "/coordinator-bench-\(getpid()).Dockerfile"
        FileManager.default.createFile(atPath: dockerfile, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: dockerfile) }
        let context = try PreparedContext.prepare(ContextOptions(context: src, dockerfile: FileManager.default.fileExists(atPath: src + "/Dockerfile") ? nil : dockerfile))
        let plan = ContextUploadPlan(context: context, cache: ContextCache(directory: cache))
        let probe = try await c.run(plan.probe.command, input: .producer(plan.probe.input()))
        var sent: Int64 = 0
        for step in plan.steps(afterProbe: probe.stdoutText) ?? [] {
            let out = try await c.run(step.command, input: .producer(step.input()))
            guard out.status.succeeded else { throw SSHError(host: "bench", kind: .protocolError, message: out.stderrText) }
            if case .sendBlobs = step.kind { sent += step.inputBytes }
        }
        await c.close()
        print("{\"seconds\": \(Date().timeIntervalSince(start)), \"wireBytes\": \(sent), \"compression\": \"cache\", \"tree\": \"\(plan.treePath)\"}")
        exit(0)
    }
    let stats = try await c.upload(directory: src, to: dest, compression: compression, streams: Int(option("--streams", args) ?? "0") ?? 0)
    await c.close()
    print("{\"seconds\": \(stats.seconds), \"wireBytes\": \(stats.wireBytes), \"compression\": \"\(stats.compression.rawValue)\"}")
} catch {
    FileHandle.standardError.write(Data("coordinator-bench: \(error)\n".utf8))
    exit(4)
}
