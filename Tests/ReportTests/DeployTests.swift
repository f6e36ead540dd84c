import Foundation
import TestHarness
import Testing

/// Deploy/ scripts and units, checked with the real tools: shellcheck, systemd-analyze, bash. (They live in
/// ReportTests because they ship the nightly run whose records and metrics this module writes.) In CI a
/// missing tool is a failure: shellcheck and systemd (for systemd-analyze) are in Deploy/packages.txt.
@Suite struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let deploy = root.appendingPathComponent("Deploy")
    static let bootstrap = deploy.appendingPathComponent("bootstrap-host.sh").path

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both before waiting: a full pipe would stall the child.
        let errData = DispatchQueue.global()
        nonisolated(unsafe) var errBytes = Data()
        let group = DispatchGroup()
        errData.async(group: group) { errBytes = err.fileHandleForReading.readDataToEndOfFile() }
        let outBytes = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outBytes, as: UTF8.self),
                      stderr: String(decoding: errBytes, as: UTF8.self))
    }

    static func tempDir() throws -> URL {
        try Scratch.directory("deploy")
    }

    static let osReleases = [
        "al2023": "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n",
        "debian": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        "ubuntu": "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n",
    ]

    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOAEhQydM/5mfNSyOQqh7qXjJe6+uDJwIlvE8THKEHKn coordinator@ci"

    /// Runs bootstrap-host.sh --dry-run against a fake os-release (and an empty binfmt_misc folder).
    static func dryRun(os: String, machine: String, extra: [String] = []) throws -> Result {
        let dir = try tempDir()
        let osRelease = dir.appendingPathComponent("os-release")
        try Data((osReleases[os] ?? os).utf8).write(to: osRelease)
        let binfmt = dir.appendingPathComponent("binfmt_misc")
        try FileManager.default.createDirectory(at: binfmt, withIntermediateDirectories: true)
        return try run("/bin/bash", [bootstrap, "--dry-run", "--os-release", osRelease.path, "--machine", machine,
                                     "--binfmt-dir", binfmt.path, "--user", "nbtest", "--name", "h1", "--address", "10.0.0.1",
                                     "--authorized-key", key] + extra)
    }

    @Test func scriptsPassShellcheck() throws {
        let scripts = try FileManager.default.contentsOfDirectory(atPath: Self.deploy.path).filter { $0.hasSuffix(".sh") }.sorted()
        #expect(scripts.contains("bootstrap-host.sh"))
        let r = try Self.run("/usr/bin/shellcheck", scripts.map { Self.deploy.appendingPathComponent($0).path })
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    }

    @Test(arguments: ["al2023", "debian", "ubuntu"], ["x86_64", "aarch64"])
    func dryRunPrintsThePlanAndTheInventoryEntry(os: String, machine: String) throws {
        for engine in ["podman", "buildah", "docker"] {
            let r = try Self.dryRun(os: os, machine: machine, extra: ["--engine", engine])
            #expect(r.status == 0, "\(os) \(machine) \(engine): \(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
            let entry = try #require(json as? [String: Any], "\(r.stdout)")
            #expect(entry["platforms"] as? [String] == [machine == "x86_64" ? "linux/amd64" : "linux/arm64"])
            #expect(entry["engine"] as? String == engine && entry["user"] as? String == "nbtest")
            #expect(entry["name"] as? String == "h1" && entry["address"] as? String == "10.0.0.1")
            #expect(entry["workDir"] as? String == "/var/tmp/coordinator" && entry["maxJobs"] as? Int == 1)
            #expect(r.stderr.contains(os == "al2023" ? "+ dnf install -y" : "apt-get install -y"))
            #expect(r.stderr.contains("+ useradd --create-home --shell /bin/bash nbtest"))
            #expect(r.stderr.contains("+ install -d -m 0750 -o nbtest -g nbtest /var/tmp/coordinator"))
            #expect(r.stderr.contains(Self.key))
            #expect(r.stderr.contains("storage.conf") == (engine != "docker"))
        }
        // A dry run changes nothing.
        #expect(try Self.run("/usr/bin/id", ["nbtest"]).status != 0)
    }

    @Test(arguments: [
        ("NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2\"\n", "x86_64", "Amazon Linux 2 is not supported"),
        ("ID=fedora\nVERSION_ID=40\n", "x86_64", "unsupported OS 'fedora'"),
        ("debian", "riscv64", "unsupported machine 'riscv64'"),
    ])
    func unsupportedHostsAreRefusedWithExitTwo(osRelease: String, machine: String, message: String) throws {
        let r = try Self.dryRun(os: osRelease, machine: machine)
        #expect(r.status == 2 && r.stdout.isEmpty)
        #expect(r.stderr.contains(message), "\(r.stderr)")
    }

    @Test func rsaKeysAndBadFlagsAreRefused() throws {
        let rsa = try Self.dryRun(os: "debian", machine: "x86_64", extra: ["--authorized-key", "ssh-rsa AAAAB3Nza x@y"])
        #expect(rsa.status == 2 && rsa.stderr.contains("RSA keys do not work"))
        let engine = try Self.dryRun(os: "debian", machine: "x86_64", extra: ["--engine", "lxc"])
        #expect(engine.status == 2 && engine.stderr.contains("--engine must be"))
    }

    @Test func qemuBinfmtHandlersAreWarnedAbout() throws {
        let dir = try Self.tempDir()
        let osRelease = dir.appendingPathComponent("os-release")
        try Data(Self.osReleases["debian"]!.utf8).write(to: osRelease)
        let binfmt = dir.appendingPathComponent("binfmt_misc")
        try FileManager.default.createDirectory(at: binfmt, withIntermediateDirectories: true)
        try Data("enabled\n".utf8).write(to: binfmt.appendingPathComponent("status"))
        try Data("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\n".utf8)
            .write(to: binfmt.appendingPathComponent("qemu-aarch64"))
        try Data("disabled\ninterpreter /usr/bin/qemu-arm-static\n".utf8).write(to: binfmt.appendingPathComponent("qemu-arm"))
        let r = try Self.run("/bin/bash", [Self.bootstrap, "--dry-run", "--os-release", osRelease.path, "--machine", "x86_64",
                                           "--binfmt-dir", binfmt.path, "--authorized-key", Self.key])
        #expect(r.status == 0)
        #expect(r.stderr.contains("QEMU binfmt_misc handlers are registered: qemu-aarch64\n"), "\(r.stderr)")
    }

    /// systemd-analyze verify checks that ExecStart exists: the copy under test points at a stand-in binary.
    @Test func unitsPassSystemdAnalyzeVerify() throws {
        let dir = try Self.tempDir()
        let binary = dir.appendingPathComponent("coordinator")
        try Data("#!/bin/sh\nexit 0\n".utf8).write(to: binary)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: binary.path)
        var units: [String] = []
        for name in ["coordinator-nightly.service", "coordinator-nightly.timer"] {
            let text = try String(contentsOf: Self.deploy.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
            let copy = dir.appendingPathComponent(name)
            try Data(text.replacingOccurrences(of: "/usr/local/bin/coordinator", with: binary.path).utf8).write(to: copy)
            units.append(copy.path)
        }
        let r = try Self.run("/usr/bin/systemd-analyze", ["verify"] + units)
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stdout)\(r.stderr)")
    }

    /// The crontab's command, as cron would run it (`\%` → `%`, SHELL=/bin/bash), against a stand-in
    /// coordinator that prints two lines and exits 4: the log gets timestamped lines, stdout (mail) the failure.
    @Test func crontabCommandLogsWithTimestampsAndReportsFailure() throws {
        let text = try String(contentsOf: Self.deploy.appendingPathComponent("cron/coordinator.crontab"), encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("0 2 * * * coordinator ") })
        let dir = try Self.tempDir()
        let log = dir.appendingPathComponent("nightly.log")
        var command = String(line.dropFirst("0 2 * * * coordinator ".count)).replacingOccurrences(of: "\\%", with: "%")
        command = command.replacingOccurrences(of: "/var/log/coordinator/nightly.log", with: log.path)
        let fake = dir.appendingPathComponent("coordinator")
        try Data("#!/bin/sh\necho \"args: $*\"\necho 'oops' >&2\nexit 4\n".utf8).write(to: fake)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake.path)
        let r = try Self.run("/bin/bash", ["-c", command], environment: ["PATH": "\(dir.path):/usr/bin:/bin"])
        #expect(r.stdout.contains("coordinator nightly run failed with exit 4"), "\(r.stdout)\(r.stderr)")
        let logged = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        #expect(logged.count == 2)
        let stamp = #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} /#
        #expect(logged.allSatisfy { $0.contains(stamp) }, "\(logged)")
        #expect(logged[0].contains("args: build --hosts /etc/coordinator/inventory.json --plan /etc/coordinator/nightly.json"))
        #expect(logged[0].contains("--lock /var/lib/coordinator/nightly.lock"))
        #expect(logged[1].hasSuffix(" oops"))
    }
}
