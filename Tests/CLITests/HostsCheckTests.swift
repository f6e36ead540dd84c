import Foundation
import TestHarness
import Testing

/// `coordinator hosts check` against real sshd hosts: exit 0 when all are usable, 4 when any is not.
@Suite final class HostsCheckTests {
    func check(_ inventory: String) throws -> (status: Int32, hosts: [[String: Any]], stderr: String) {
        let r = try runLocal([try coordinatorBinary(), "hosts", "check", "--hosts", inventory, "--format", "json"], timeout: 120)
        let doc = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return (r.status, doc?["hosts"] as? [[String: Any]] ?? [], r.stderr)
    }

    func edited(_ fleet: TestFleet, _ change: (inout [String: Any], inout [[String: Any]]) -> Void) throws -> String {
        var inv = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fleet.inventoryPath))) as! [String: Any]
        var hosts = inv["hosts"] as! [[String: Any]]
        change(&inv, &hosts)
        inv["hosts"] = hosts
        let path = fleet.dir + "/inventory-\(UUID().uuidString.prefix(6)).json"
        try JSONSerialization.data(withJSONObject: inv).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func twentyHostsAreCheckedAtOnceAndAllUsable() throws {
        let fleet = try TestFleet.start(count: 20, archs: ["x86_64", "aarch64"])
        defer { fleet.stop() }
        let r = try check(fleet.inventoryPath)
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        #expect(r.hosts.count == 20)
        #expect(r.hosts.allSatisfy { $0["status"] as? String == "ok" })
        #expect(r.hosts.map { $0["machine"] as? String } == (0..<20).map { $0 % 2 == 0 ? "x86_64" : "aarch64" })
        #expect(r.hosts.allSatisfy { ($0["engineVersion"] as? String)?.contains("buildah") == true })
        #expect(r.hosts.allSatisfy { ($0["hostKey"] as? String)?.contains("SHA256:") == true })
        // The table form has one row per host plus the summary.
        let table = try runLocal([try coordinatorBinary(), "hosts", "check", "--hosts", fleet.inventoryPath])
        #expect(table.stdout.contains("20/20 hosts usable"))
    }

    @Test func hostWhoseUnameDisagreesWithTheInventoryIsFlagged() throws {
        let fleet = try TestFleet.start(count: 2, archs: ["x86_64", "aarch64"])
        defer { fleet.stop() }
        let inventory = try edited(fleet) { _, hosts in hosts[1]["platforms"] = ["linux/amd64"] }
        let r = try check(inventory)
        #expect(r.status == 4)
        #expect(r.hosts[0]["status"] as? String == "ok")
        #expect(r.hosts[1]["status"] as? String == "arch-mismatch")
        #expect((r.hosts[1]["reason"] as? String)?.contains("aarch64") == true)
    }

    @Test func downHostAndUnknownHostKeyAreReportedAndExit4() throws {
        let fleet = try TestFleet.start(count: 3, archs: ["x86_64"])
        defer { fleet.stop() }
        try fleet.kill(fleet.hosts[0])
        let empty = fleet.dir + "/empty_known_hosts"
        FileManager.default.createFile(atPath: empty, contents: Data())
        let inventory = try edited(fleet) { _, hosts in
            hosts[1]["knownHosts"] = empty
            hosts[0]["connectTimeout"] = 2
        }
        let started = Date()
        let r = try check(inventory)
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(r.status == 4)
        #expect(r.hosts.map { $0["status"] as? String } == ["unreachable", "host-key", "ok"])
        #expect((r.hosts[1]["reason"] as? String)?.contains("SHA256:") == true)
        #expect(try String(contentsOfFile: empty, encoding: .utf8).isEmpty)
    }

    @Test func inventoryErrorExits2() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hc-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"hosts":[{"name":"a","address":"x","platforms":[]}]}"#.write(toFile: dir + "/i.json", atomically: true, encoding: .utf8)
        let r = try runLocal([try coordinatorBinary(), "hosts", "check", "--hosts", dir + "/i.json"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("hosts[0].platforms"))
    }
}
