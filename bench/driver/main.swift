// coordinator-bench: drives library pieces for the benchmark scripts in bench/. Not shipped to users.
//   coordinator-bench upload --address A --port P --user U --key K --known-hosts F [--compression C] SRC DEST
import Foundation
import SSH
import Support

func option(_ name: String, _ args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let args = Array(CommandLine.arguments.dropFirst())
guard args.first == "upload", args.count >= 3 else {
    FileHandle.standardError.write(Data("usage: coordinator-bench upload --address A --port P --user U --key K --known-hosts F [--compression auto|zstd|gzip|none] SRC DEST\n".utf8))
    exit(2)
}
let target = SSHTarget(name: "bench", address: option("--address", args) ?? "127.0.0.1", port: Int(option("--port", args) ?? "22") ?? 22,
                       user: option("--user", args) ?? "root", identityFile: option("--key", args),
                       knownHosts: option("--known-hosts", args) ?? "~/.ssh/known_hosts")
let compression = UploadCompression(rawValue: option("--compression", args) ?? "auto") ?? .auto
let src = args[args.count - 2], dest = args[args.count - 1]
do {
    let c = try await SSHConnection.connect(target)
    let stats = try await c.upload(directory: src, to: dest, compression: compression)
    await c.close()
    print("{\"seconds\": \(stats.seconds), \"wireBytes\": \(stats.wireBytes), \"compression\": \"\(stats.compression.rawValue)\"}")
} catch {
    FileHandle.standardError.write(Data("coordinator-bench: \(error)\n".utf8))
    exit(4)
}
