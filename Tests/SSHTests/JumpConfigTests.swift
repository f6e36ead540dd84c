// ssh_config aliases and ProxyJump end to end against a loopback test fleet, and how inventory jump settings
// layer over ProxyJump.
import Foundation
import TestHarness
import Testing
@testable import SSH

@Suite(.serialized) final class JumpConfigTests {
    let fleet: TestFleet
    let configFile: String

    init() throws {
        fleet = try TestFleet.start(count: 2)
        let (h1, h2) = (fleet.hosts[0], fleet.hosts[1])
        configFile = fleet.dir + "/ssh_config"
        try """
            Host builder-one
              HostName \(h1.address)
              Port \(h1.port)
              User root
              IdentityFile \(fleet.clientKey)
              UserKnownHostsFile \(fleet.knownHosts)

            Host via-one
              HostName \(h2.address)
              ProxyJump builder-one
              Port \(h2.port)

            Host *
              User root
              IdentityFile \(fleet.clientKey)
              UserKnownHostsFile \(fleet.knownHosts)

            """.write(toFile: configFile, atomically: true, encoding: .utf8)
    }

    deinit { fleet.stop() }

    /// A host as the inventory gives it: only the alias, every other value a built-in default.
    func base(_ alias: String) -> SSHTarget {
        SSHTarget(name: alias, address: alias, user: "builder", knownHosts: "/nonexistent/known_hosts")
    }

    func configured(_ alias: String, fields: Set<SSHTargetField> = [], hostJump: [JumpSpec]? = nil,
                    defaultsJump: [JumpSpec]? = nil, edit: (inout SSHTarget) -> Void = { _ in }) throws -> SSHConfiguredTarget {
        var b = base(alias)
        edit(&b)
        return try SSHConfig(file: configFile).configuredTarget(b, hostFields: fields, hostJump: hostJump, defaultsJump: defaultsJump)
    }

    @Test func hostReachedOnlyByItsAlias() async throws {
        let c = try configured("builder-one")
        #expect(c.target.address == fleet.hosts[0].address)
        #expect(c.target.port == fleet.hosts[0].port)
        #expect(c.target.user == "root")
        #expect(c.target.identityFile == fleet.clientKey)
        #expect(c.target.jump.isEmpty)
        let connection = try await SSHConnection.connect(c.target)
        #expect(try await connection.run("echo $COORDINATOR_FLEET_HOST").stdoutText == "h1\n")
        await connection.close()
    }

    @Test func proxyJumpFromSSHConfigGoesThroughTheHopsAlias() async throws {
        let c = try configured("via-one")
        #expect(c.target.jump.map(\.address) == [fleet.hosts[0].address])
        #expect(c.target.jump.map(\.port) == [fleet.hosts[0].port])
        #expect(c.target.jump.map(\.name) == ["builder-one"])
        let connection = try await SSHConnection.connect(c.target)
        #expect(try await connection.run("echo $COORDINATOR_FLEET_HOST").stdoutText == "h2\n")
        #expect(connection.jumpChain == "root@\(fleet.hosts[0].address):\(fleet.hosts[0].port)")
        await connection.close()
    }

    @Test func hostLevelInventoryFieldsWinDefaultsSitBeneath() throws {
        // The host set user itself: it wins. Its port came from defaults (not in fields): ssh_config wins.
        let c = try configured("builder-one", fields: [.user]) { $0.user = "ci"; $0.port = 2200 }
        #expect(c.target.user == "ci")
        #expect(c.target.port == fleet.hosts[0].port)
        #expect(c.provenance[.user] == .inventory)
        #expect(c.provenance[.port] == .sshConfig(file: configFile, line: 3))
    }

    @Test func inventoryJumpLayersOverProxyJump() throws {
        let gw = JumpSpec(user: "ops", host: "gw.example", port: 2022)
        // A host's own jump beats ProxyJump; "none" ([]) connects directly.
        #expect(try configured("via-one", hostJump: [gw]).target.jump.map(\.address) == ["gw.example"])
        #expect(try configured("via-one", hostJump: []).target.jump.isEmpty)
        // A defaults jump sits beneath ProxyJump, and applies where ssh_config says nothing.
        #expect(try configured("via-one", defaultsJump: [gw]).target.jump.map(\.name) == ["builder-one"])
        let hop = try #require(try configured("builder-one", defaultsJump: [gw]).target.jump.first)
        #expect(hop.user == "ops")
        #expect(hop.port == 2022)
        // The hop inherits what ssh_config's `Host *` says for it (its own alias resolution).
        #expect(hop.identityFile == fleet.clientKey)
    }

    @Test func proxyJumpLoopIsRefused() throws {
        let loop = fleet.dir + "/loop_config"
        try "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n".write(toFile: loop, atomically: true, encoding: .utf8)
        #expect(throws: SSHConfigError.self) {
            _ = try SSHConfig(file: loop).configuredTarget(self.base("a"), hostFields: [])
        }
    }

    @Test func jumpSpecParsing() {
        #expect(JumpSpec(parsing: "ops@gw:2022") == JumpSpec(user: "ops", host: "gw", port: 2022))
        #expect(JumpSpec(parsing: "[fd00::1]:22") == JumpSpec(host: "fd00::1", port: 22))
        #expect(JumpSpec(parsing: "gw:99999") == nil)
        #expect(JumpSpec(parsing: "a b") == nil)
    }
}
