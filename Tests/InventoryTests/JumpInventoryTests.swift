// The inventory's `sshConfig` and `jump` fields, and which settings a host set itself (they override
// ssh_config; `defaults` sit beneath it).
import Foundation
import Testing
@testable import Inventory

@Suite struct JumpInventoryTests {
    @Test func jumpAsStringAsArrayAndNone() throws {
        let loaded = try fleet("""
            {"defaults": {"jump": "ops@bastion:2022,gw"},
             "hosts": [
               {"name": "a", "address": "h1", "platforms": ["amd64"]},
               {"name": "b", "address": "h2", "platforms": ["amd64"], "jump": ["gw", "u@[fd00::1]:22"]},
               {"name": "c", "address": "h3", "platforms": ["amd64"], "jump": "none"},
               {"name": "d", "address": "h4", "platforms": ["amd64"], "jump": []}
             ]}
            """)
        #expect(loaded.hosts.map(\.jump) == [["ops@bastion:2022", "gw"], ["gw", "u@[fd00::1]:22"], [], []])
        #expect(loaded.hosts.map { $0.hostFields.contains("jump") } == [false, true, true, true])
    }

    @Test func noJumpAnywhereIsNil() throws {
        let host = try #require(try fleet(oneHost("")).hosts.first)
        #expect(host.jump == nil)
        #expect(host.sshConfig == nil)
        #expect(host.hostFields.isEmpty)
    }

    @Test func sshConfigResolvesLikeOtherLocalPaths() throws {
        let loaded = try fleet("""
            {"defaults": {"sshConfig": "ssh/config"},
             "hosts": [{"name": "a", "address": "h1", "platforms": ["amd64"]},
                       {"name": "b", "address": "h2", "platforms": ["amd64"], "sshConfig": "~/.ssh/other"}]}
            """)
        #expect(loaded.hosts.map(\.sshConfig) == ["/etc/fleet/ssh/config", home + "/.ssh/other"])
        #expect(loaded.hosts.map { $0.hostFields.contains("sshConfig") } == [false, true])
    }

    @Test func hostFieldsAreTheHostsOwnKeysOnly() throws {
        let loaded = try fleet("""
            {"defaults": {"user": "ci", "port": 2200},
             "hosts": [{"name": "a", "address": "h1", "platforms": ["amd64"], "port": 22, "identityFile": "/k"}]}
            """)
        #expect(loaded.hosts[0].hostFields == ["port", "identityFile"])
        #expect(loaded.hosts[0].user == "ci")
    }

    @Test(arguments: [
        (#""jump": "a b""#, "hosts[0].jump"), (#""jump": "a,,b""#, "hosts[0].jump"),
        (#""jump": "h:0""#, "hosts[0].jump"), (#""jump": "h:x""#, "hosts[0].jump"),
        (#""jump": "@h""#, "hosts[0].jump"), (#""jump": ["ok", "a,b"]"#, "hosts[0].jump[1]"),
        (#""jump": "[::1""#, "hosts[0].jump"), (#""jump": "a:1:2""#, "hosts[0].jump"),
    ])
    func badHopsAreRefusedWithTheirPath(field: String, path: String) throws {
        let error = try #require(loadError(oneHost(field)))
        #expect(error.path == path, "\(error)")
        #expect(error.message.contains("is not a jump hop"), "\(error)")
    }

    @Test func wrongTypesAreRefused() throws {
        #expect(try #require(loadError(oneHost(#""jump": 5"#))).message.contains("expected array"))
        #expect(try #require(loadError(oneHost(#""sshConfig": """#))).message.contains("must not be empty"))
    }
}
