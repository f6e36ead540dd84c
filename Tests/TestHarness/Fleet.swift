// TestHarness: starts the real things the tests talk to — sshd "hosts" on loopback addresses
// (Deploy/test-fleet.sh, DESIGN.md §8) and registries. It must not depend on the modules under test.
import Foundation

/// One sshd of a test fleet, as the fleet's inventory lists it.
public struct TestHost: Sendable, Equatable {
    /// `h1`, `h2`, … — also the inventory name and `$COORDINATOR_FLEET_HOST` in its sessions.
    public let name: String
    /// Its own loopback address.
    public let address: String
    /// SSH port.
    public let port: Int
    /// What `uname -m` prints there: `x86_64`, `aarch64` or `armv7l`.
    public let arch: String
    /// The inventory platform for `arch`: `linux/amd64`, `linux/arm64`, `linux/arm/v7`.
    public let platform: String
    /// The host's folder: sshd_config, keys, sshd.pid, sshd.log, home/, storage/.
    public let dir: String
    /// The inventory `workDir`.
    public let workDir: String
}

/// A test fleet could not be started or driven; the message carries test-fleet.sh's error output.
public struct FleetError: Error, Equatable, CustomStringConvertible {
    /// What failed.
    public let description: String
}

/// A fleet of sshd hosts for one test, on loopback addresses no other fleet of this process uses.
/// Stopped, with its folder removed, by `stop()` or when the last reference goes away.
public final class TestFleet: Sendable {
    /// The fleet's folder (a fresh temporary folder).
    public let dir: String
    /// The hosts, `h1` first.
    public let hosts: [TestHost]
    /// The client's private key (ed25519), authorised on every host.
    public var clientKey: String { dir + "/client/id_ed25519" }
    /// known_hosts with every host's ed25519 and ECDSA key, as `[address]:port`.
    public var knownHosts: String { dir + "/known_hosts" }
    /// The inventory (DESIGN.md §4) listing every host.
    public var inventoryPath: String { dir + "/inventory.json" }

    /// How many times `stop()` was called.
    private let stopCalls = Counter()

    private init(dir: String, hosts: [TestHost]) {
        self.dir = dir
        self.hosts = hosts
    }

    deinit { stop() }

    /// Starts `count` hosts; host N simulates `archs[(N-1) % archs.count]` and lists `engine` in the inventory.
    /// Throws (so a test fails, never skips) when sshd or ssh-keygen is missing or a host does not come up.
    public static func start(count: Int, archs: [String] = ["x86_64"], engine: String = "buildah") throws -> TestFleet {
        // 127.X.Y.N: X from a process-wide counter, Y from the pid, so that parallel tests of this process and
        // other test processes on the machine stay apart; an address found taken (exit 3) moves on to another Y.
        let slot = nextSlot.increment()
        let pid = Int(getpid())
        var lastError = ""
        for attempt in 0..<8 {
            let base = "127.\(20 + slot % 200).\((pid + attempt * 67) % 200 + 1)"
            let dir = try makeTemporaryFolder()
            let result = try runLocal(["bash", script, "start", dir, String(count), "--base", base,
                                       "--arch", archs.joined(separator: ","), "--engine", engine], timeout: 120)
            if result.status == 0 {
                return TestFleet(dir: dir, hosts: try readHosts(envFile: dir + "/fleet.env"))
            }
            _ = try? runLocal(["bash", script, "stop", dir, "--clean"], timeout: 30)
            lastError = result.stderr
            if result.status != 3 { break }
        }
        throw FleetError(description: "test-fleet.sh start \(count) failed: \(lastError)")
    }

    /// kill -9 the host's sshd and every session process: the host died.
    public func kill(_ host: TestHost) throws { try drive("kill", host) }

    /// kill -STOP the host's sshd and sessions: connections hang, TCP still connects.
    public func freeze(_ host: TestHost) throws { try drive("freeze", host) }

    /// kill -CONT what `freeze` stopped.
    public func thaw(_ host: TestHost) throws { try drive("thaw", host) }

    /// Stops the host and starts it again with the same address and keys; returns once it accepts TCP.
    public func restart(_ host: TestHost) throws { try drive("restart", host) }

    /// Stops every host (sessions included) and removes the folder. Safe to call more than once.
    public func stop() {
        guard stopCalls.increment() == 0 else { return }
        let result = try? runLocal(["bash", Self.script, "stop", dir, "--clean"], timeout: 60)
        if result?.status != 0 {
            FileHandle.standardError.write(Data("TestFleet: stopping \(dir) failed: \(result?.stderr ?? "")\n".utf8))
        }
    }

    /// The pid of the host's listening sshd, or nil when it is down.
    public func listenerPID(_ host: TestHost) -> Int32? {
        guard let text = try? String(contentsOfFile: host.dir + "/sshd.pid", encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), processIsRunning(pid)
        else { return nil }
        return pid
    }

    /// An OpenSSH client command line running `remoteCommand` on `host` with the fleet's key and known_hosts
    /// (strict host key checking, no user config, no agent, no prompts).
    public func sshCommand(_ host: TestHost, _ remoteCommand: String, connectTimeout: Int = 10) -> [String] {
        ["ssh", "-F", "/dev/null", "-i", clientKey, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
         "-o", "UserKnownHostsFile=\(knownHosts)", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=\(connectTimeout)", "-p", String(host.port), "root@\(host.address)", remoteCommand]
    }

    private func drive(_ command: String, _ host: TestHost) throws {
        let result = try runLocal(["bash", Self.script, command, dir, host.name], timeout: 60)
        guard result.status == 0 else {
            throw FleetError(description: "test-fleet.sh \(command) \(host.name) failed: \(result.stderr)")
        }
    }

    /// Deploy/test-fleet.sh of this package (Tests/TestHarness/Fleet.swift is three levels below the root).
    private static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Deploy/test-fleet.sh").path

    private static let nextSlot = Counter()

    private static func makeTemporaryFolder() throws -> String {
        var template = Array((NSTemporaryDirectory() + "/coordinator-fleet.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw FleetError(description: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        return URL(fileURLWithPath: String(cString: made)).standardizedFileURL.path
    }

    /// The hosts from fleet.env (`FLEET_HOSTS='h1 h2'`, `FLEET_H1_ADDRESS='127.20.5.1'`, …).
    private static func readHosts(envFile: String) throws -> [TestHost] {
        let text = try String(contentsOfFile: envFile, encoding: .utf8)
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
                .trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        }
        return try (values["FLEET_HOSTS"] ?? "").split(separator: " ").map { name in
            func field(_ key: String) throws -> String {
                guard let value = values["FLEET_\(name.uppercased())_\(key)"] else {
                    throw FleetError(description: "\(envFile): no \(key) for \(name)")
                }
                return value
            }
            guard let port = Int(try field("PORT")) else { throw FleetError(description: "\(envFile): bad port") }
            return TestHost(name: String(name), address: try field("ADDRESS"), port: port, arch: try field("ARCH"),
                            platform: try field("PLATFORM"), dir: try field("DIR"), workDir: try field("WORKDIR"))
        }
    }
}

/// A process-wide counter.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// The value before this call.
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}
