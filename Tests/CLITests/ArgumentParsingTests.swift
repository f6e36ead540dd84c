import Foundation
@testable import CLI
import Support
import TestHarness
import Testing

/// The command line: help generated from the declarations (golden files), version, and usage errors → exit 2.
@Suite struct ArgumentParsingTests {
    static let commands = ["", "build", "plan", "hosts", "hosts check", "merge", "inspect", "runs", "runs list", "runs show"]
    static let golden = packageRoot + "/Tests/CLITests/Golden"

    @Test(arguments: commands) func helpMatchesItsGoldenFile(_ command: String) throws {
        let words = command.split(separator: " ").map(String.init)
        let r = try runLocal([try coordinatorBinary()] + words + ["--help"])
        #expect(r.status == 0)
        let name = (["help"] + words).joined(separator: "-")
        let expected = try String(contentsOfFile: Self.golden + "/\(name).txt", encoding: .utf8)
        #expect(r.stdout == expected, "help for '\(command)' drifted from Tests/CLITests/Golden/\(name).txt")
    }

    @Test func versionPrintsTheVersion() throws {
        let r = try runLocal([try coordinatorBinary(), "--version"])
        #expect(r.status == 0)
        #expect(r.stdout == "coordinator \(CoordinatorCLI.version)\n")
    }

    @Test(arguments: [
        (["--bogus"], "unknown option '--bogus'"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["hosts", "check", "--hosts"], "option --hosts needs a value"),
        (["hosts", "check", "--format", "yaml", "--hosts", "x"], "must be one of table, json"),
        (["hosts", "check"], "missing required option --hosts"),
        (["hosts", "check", "--hosts", "a", "--hosts", "b"], "given more than once"),
        (["build", "--hosts", "/nonexistent/inv.json", "."], "/nonexistent/inv.json"),
        (["inspect"], "missing argument REF"),
        (["runs", "show"], "missing argument RUN"),
    ]) func usageErrorsExit2WithAClearMessage(_ words: [String], _ message: String) throws {
        let r = try runLocal([try coordinatorBinary()] + words)
        #expect(r.status == 2, "\(words): \(r.stderr)")
        #expect(r.stderr.contains(message), "\(words): \(r.stderr)")
    }

    @Test func parserCollectsRepeatableOptionsAndPairs() throws {
        let outcome = try ArgumentParser.parse(["build", "--hosts", "i.json", "-t", "a", "--tag=b", "--build-arg", "K=V=W", "ctx"], root: CoordinatorCLI.root)
        guard case .run(_, let parsed) = outcome else { Issue.record("expected a command"); return }
        #expect(parsed.all("--tag") == ["a", "b"])
        #expect(try parsed.pairs("--build-arg").map { "\($0.0)|\($0.1)" } == ["K|V=W"])
        #expect(parsed.positionals == ["ctx"])
    }

    @Test func buildFlagErrorsExit2BeforeAnyConnection() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("args-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Hosts that do not exist: any contact attempt would show up as exit 4, not 2.
        let inv = #"{"defaults":{"knownHosts":"kh"},"hosts":[{"name":"a","address":"192.0.2.1","platforms":["amd64"]}]}"#
        try inv.write(toFile: dir + "/inv.json", atomically: true, encoding: .utf8)
        for (args, message) in [
            (["--platform", "linux/s390x"], "no host in"),
            (["--platform", "sparc"], "unknown platform"),
            ([], "-t REF is required"),
            (["-t", "reg/app:1", "--build-arg", "NOEQUALS"], "expects KEY=VALUE"),
            (["-t", "reg/app:1", "--output", "tarball"], "--output must be"),
            (["-t", "reg/app:1", "--timeout", "-3"], "--timeout expects"),
        ] {
            let r = try runLocal([try coordinatorBinary(), "build", "--hosts", dir + "/inv.json"] + args + [dir])
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }
}
