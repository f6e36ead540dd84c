import Foundation

extension TestFleet {
    /// Adds a public key to the host's authorized_keys.
    public func authorize(publicKey: String, on host: TestHost) throws {
        let path = host.dir + "/authorized_keys"
        let old = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        try (old + publicKey + (publicKey.hasSuffix("\n") ? "" : "\n")).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Puts an executable script named `name` first on the host's PATH (a named fault-injection shim).
    public func installShim(_ name: String, on host: TestHost, script: String) throws {
        let path = host.dir + "/bin/" + name
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }
}

/// The package root (three levels above this file).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The `coordinator` executable `swift build` produced for these tests.
public func coordinatorBinary() throws -> String {
    for candidate in [ProcessInfo.processInfo.environment["COORDINATOR_BIN"], packageRoot + "/.build/debug/coordinator"].compactMap({ $0 })
    where FileManager.default.isExecutableFile(atPath: candidate) {
        return candidate
    }
    throw RegistryHarnessError("coordinator binary not found under \(packageRoot)/.build/debug (run swift build first)")
}

/// A coordinator run's stderr for a failed expectation, most telling part first: the lines that report a
/// failure (error, failed, lost, retry, exit), then the last 40 lines (the summary), then everything. A CI log
/// that keeps only the head of a long message still shows why the run failed.
public func diagnosis(_ stderr: String) -> String {
    let lines = stderr.split(separator: "\n", omittingEmptySubsequences: false)
    let words = ["error", "fail", "lost", "retry", "exit", "refused", "timed out", "timeout", "killed"]
    let notable = lines.filter { line in words.contains { line.localizedCaseInsensitiveContains($0) } }
    return "notable lines:\n" + notable.prefix(60).joined(separator: "\n")
        + "\n--- last 40 lines:\n" + lines.suffix(40).joined(separator: "\n")
        + "\n--- whole stderr:\n" + stderr
}
