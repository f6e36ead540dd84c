// The test fleet itself, checked with the OpenSSH client: what every SSH, build and CLI test stands on.
import Foundation
import TestHarness
import Testing

@Suite struct FleetHarnessTests {
    @Test func eachHostAnswersUnameWithItsSimulatedArchAndStopLeavesNoSshd() throws {
        let fleet = try TestFleet.start(count: 3, archs: ["x86_64", "aarch64"])
        #expect(fleet.hosts.map(\.arch) == ["x86_64", "aarch64", "x86_64"])
        #expect(fleet.hosts.map(\.platform) == ["linux/amd64", "linux/arm64", "linux/amd64"])
        #expect(Set(fleet.hosts.map(\.address)).count == 3)

        for host in fleet.hosts {
            let result = try runLocal(fleet.sshCommand(host, "uname -m; echo $COORDINATOR_FLEET_HOST"), timeout: 30)
            #expect(result.status == 0, "\(host.name): \(result.stderr)")
            #expect(result.stdout == "\(host.arch)\n\(host.name)\n")
        }

        let inventory = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fleet.inventoryPath)))
        let listed = (inventory as? [String: Any])?["hosts"] as? [[String: Any]]
        #expect(listed?.map { $0["name"] as? String } == ["h1", "h2", "h3"])

        let pids = fleet.hosts.compactMap(fleet.listenerPID)
        #expect(pids.count == 3)
        fleet.stop()
        for pid in pids { #expect(!processIsRunning(pid), "sshd \(pid) still runs after stop()") }
        #expect(!FileManager.default.fileExists(atPath: fleet.dir))
        fleet.stop()
    }

    @Test func stopKillsSessionProcessesEvenWhenTheyLeftTheirSession() throws {
        let fleet = try TestFleet.start(count: 1)
        let host = fleet.hosts[0]
        let result = try runLocal(fleet.sshCommand(host, "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!"),
                                  timeout: 30)
        let pid = try #require(Int32(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(result)")
        #expect(processIsRunning(pid))
        fleet.stop()
        #expect(!processIsRunning(pid), "sleep \(pid) left behind by stop()")
    }

    @Test func killedHostRefusesWhileOthersAnswerAndRestartBringsItBackWithTheSameKey() throws {
        let fleet = try TestFleet.start(count: 2)
        defer { fleet.stop() }
        let (dead, alive) = (fleet.hosts[0], fleet.hosts[1])

        try fleet.kill(dead)
        #expect(fleet.listenerPID(dead) == nil)
        let refused = try runLocal(fleet.sshCommand(dead, "true"), timeout: 30)
        #expect(refused.status == 255)
        #expect(refused.stderr.contains("Connection refused"), "\(refused.stderr)")
        #expect(try runLocal(fleet.sshCommand(alive, "true"), timeout: 30).status == 0)

        try fleet.restart(dead)
        let back = try runLocal(fleet.sshCommand(dead, "uname -m"), timeout: 30)
        #expect(back.status == 0, "\(back.stderr)")
    }

    @Test func frozenHostHangsUntilThawed() throws {
        let fleet = try TestFleet.start(count: 1)
        defer { fleet.stop() }
        let host = fleet.hosts[0]

        try fleet.freeze(host)
        let started = Date()
        let hung = try runLocal(fleet.sshCommand(host, "true", connectTimeout: 2), timeout: 30)
        #expect(hung.status == 255)
        #expect(Date().timeIntervalSince(started) >= 1.5)
        #expect(hung.stderr.contains("timed out"), "\(hung.stderr)")

        try fleet.thaw(host)
        #expect(try runLocal(fleet.sshCommand(host, "true"), timeout: 30).status == 0)
    }

    @Test func hostKeysAreOwnPerHostAndKnownInBothTypes() throws {
        let fleet = try TestFleet.start(count: 2)
        defer { fleet.stop() }
        let lines = try String(contentsOfFile: fleet.knownHosts, encoding: .utf8).split(separator: "\n")
        let keys = lines.map { $0.split(separator: " ") }
        #expect(keys.map { String($0[0]) } == fleet.hosts.flatMap { ["[\($0.address)]:\($0.port)", "[\($0.address)]:\($0.port)"] })
        #expect(keys.map { String($0[1]) } == ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-ed25519", "ecdsa-sha2-nistp256"])
        #expect(Set(keys.map { $0[2] }).count == 4)

        // Each type alone is accepted, so a client may match either.
        for type in ["ssh-ed25519", "ecdsa-sha2-nistp256"] {
            var argv = fleet.sshCommand(fleet.hosts[1], "true")
            argv.insert(contentsOf: ["-o", "HostKeyAlgorithms=\(type)"], at: 1)
            let result = try runLocal(argv, timeout: 30)
            #expect(result.status == 0, "\(type): \(result.stderr)")
        }
    }
}
