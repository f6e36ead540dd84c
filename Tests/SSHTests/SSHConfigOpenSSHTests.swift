import Foundation
import Testing
@testable import SSH

/// The same tricky file resolved by us and by OpenSSH itself (`ssh -G -F FILE alias` prints the effective
/// configuration without connecting): the values we honour must agree.
@Suite struct SSHConfigAgreesWithOpenSSH {
    static let aliases = ["web-1", "web-9", "web-12", "bastion", "db", "DB", "random"]

    /// ssh expands `~` with the passwd home directory, so ours must use the same one.
    static var environment: SSHConfigEnvironment {
        var env = SSHConfigEnvironment.current
        if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir { env.homeDirectory = String(cString: dir) }
        return env
    }

    static func fixture(in dir: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir + "/conf.d", withIntermediateDirectories: true)
        try "Host db\n  HostName DB.Example.NET\n  Port 5022\n".write(toFile: dir + "/conf.d/10-db.conf", atomically: true,
                                                                   encoding: .utf8)
        try "Host web-9\n\tUser legacy\n\tStrictHostKeyChecking yes\n".write(toFile: dir + "/conf.d/20-web9.conf",
                                                                          atomically: true, encoding: .utf8)
        let text = """
        # tricky on purpose: first value wins, negation, ?, =, quotes, Include glob, Match, Host * last
        Host web-? !web-9
          HostName %h.internal.example
          User "deploy"   # quoted
        Host=web-*
          Port=2201
          IdentityFile ~/.ssh/web_%r
        Include \(dir)/conf.d/*.conf \(dir)/missing.conf
        Host bastion
          ProxyJump none
          HostName 192.0.2.10
        Host * !bastion
          PROXYJUMP ops@bastion:2222,ssh://jump2:2200
        Match host *.internal.example
          IdentitiesOnly yes
          ServerAliveInterval 1m
        Match originalhost DB
          User dbadmin
        HOST *
          StrictHostKeyChecking accept-new
          ServerAliveCountMax 5
          ConnectTimeout 12
          IdentityFile "~/.ssh/id with space"
          UserKnownHostsFile ~/.ssh/fleet_known_hosts /etc/other
          ForwardAgent no
        """
        let file = dir + "/config"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// `ssh -G` output as key → values (keys lowercased; identityfile repeats).
    static func openSSH(file: String, alias: String) throws -> [String: [String]] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        p.arguments = ["-G", "-F", file, alias]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        var result: [String: [String]] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            result[line[..<space].lowercased(), default: []].append(String(line[line.index(after: space)...]))
        }
        return result
    }

    /// What our resolution says, in ssh -G's words, with OpenSSH's defaults where ssh_config is silent.
    static func ours(_ r: SSHConfigResolution) throws -> [String: [String]] {
        var v: [String: [String]] = [
            "hostname": [r.hostName?.value ?? r.alias.lowercased()],
            "user": [r.user?.value ?? r.environment.localUser],
            "port": [String(r.port?.value ?? 22)],
            "identitiesonly": [r.identitiesOnly?.value == true ? "yes" : "no"],
            "stricthostkeychecking": [r.strictHostKeyChecking.map { $0.value == .strict ? "true" : "accept-new" } ?? "ask"],
            "connecttimeout": [r.connectTimeout.map { String($0.value) } ?? "none"],
            "serveraliveinterval": [String(r.serverAliveInterval?.value ?? 0)],
            "serveralivecountmax": [String(r.serverAliveCountMax?.value ?? 3)],
        ]
        if let jump = r.proxyJump?.value, !jump.isEmpty {
            v["proxyjump"] = [jump.map(\.description).joined(separator: ",")]
        }
        if !r.identityFiles.isEmpty { v["identityfile"] = r.identityFiles.map(\.value) }
        if let kh = r.userKnownHostsFile {
            v["userknownhostsfile"] = [ConfigPath.expandTilde(kh.value, environment: r.environment)]
        }
        return v
    }

    @Test(arguments: aliases)
    func resolutionMatchesSshDashG(alias: String) throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh"), "openssh-client is needed")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sshconfig-G-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = try Self.fixture(in: dir)
        let config = try SSHConfig(file: file, environment: Self.environment)
        let mine = try Self.ours(try config.resolve(alias: alias))
        let theirs = try Self.openSSH(file: file, alias: alias)
        for (key, values) in mine {
            var expected = theirs[key] ?? []
            // ssh -G prints the whole UserKnownHostsFile list on one line; the coordinator uses its first file.
            if key == "userknownhostsfile" { expected = expected.first.map { [String($0.prefix { $0 != " " })] } ?? [] }
            #expect(values == expected, "\(alias): \(key)")
        }
        #expect((theirs["proxyjump"] == nil) == (mine["proxyjump"] == nil), "\(alias): proxyjump")
    }

    @Test func fixtureCoversTheInterestingCases() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sshconfig-G-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try SSHConfig(file: try Self.fixture(in: dir), environment: Self.environment)
        let web1 = try config.resolve(alias: "web-1")
        #expect(web1.hostName?.value == "web-1.internal.example")
        #expect(web1.identitiesOnly?.value == true)
        #expect(web1.identityFiles.map(\.value) == ["~/.ssh/web_%r", "~/.ssh/id with space"])
        let web9 = try config.resolve(alias: "web-9")
        #expect(web9.user?.value == "legacy")
        #expect(web9.strictHostKeyChecking?.value == .strict)
        #expect(try config.resolve(alias: "bastion").proxyJump?.value == [])
        #expect(try config.resolve(alias: "DB").user?.value == "dbadmin")
        #expect(try config.resolve(alias: "DB").hostName == nil)
    }
}
