import Foundation
import Testing
@testable import SSH

/// A scratch home with a `.ssh` folder; files written under it; removed at deinit.
final class ConfigHome {
    let root: String
    let environment: SSHConfigEnvironment

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sshconfig-\(UUID())").path
        try FileManager.default.createDirectory(atPath: root + "/.ssh", withIntermediateDirectories: true)
        environment = SSHConfigEnvironment(homeDirectory: root, localUser: "me", localUID: 1000,
                                           localHostName: "laptop.example.org", variables: ["KEYS": "/keys"])
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Writes `text` at `path` (relative to the home) and returns the absolute path.
    @discardableResult
    func write(_ path: String, _ text: String) throws -> String {
        let full = root + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
        return full
    }

    func config(_ text: String, file: String = ".ssh/config") throws -> SSHConfig {
        try SSHConfig(file: try write(file, text), environment: environment)
    }
}

func configError(_ body: () throws -> Void) -> SSHConfigError? {
    do { try body() } catch let e as SSHConfigError { return e } catch { Issue.record("unexpected \(error)") }
    return nil
}

@Suite struct SSHConfigMatching {
    @Test func firstValueWinsAcrossSeveralMatchingHostBlocks() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        Host web-1
          User first
        Host web-*
          User second
          Port 2201
        Host web-1
          Port 2202
          HostName 10.0.0.1
        """)
        let r = try c.resolve(alias: "web-1")
        #expect(r.user?.value == "first")
        #expect(r.user?.source == .sshConfig(file: c.file, line: 2))
        #expect(r.port == Sourced(2201, source: .sshConfig(file: c.file, line: 5)))
        #expect(r.hostName?.value == "10.0.0.1")
    }

    @Test func hostStarAtTheEndOnlyFillsWhatIsUnset() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        Host a
          User alice
        Host *
          User nobody
          Port 2222
        """)
        #expect(try c.resolve(alias: "a").user?.value == "alice")
        #expect(try c.resolve(alias: "a").port?.value == 2222)
        #expect(try c.resolve(alias: "b").user?.value == "nobody")
    }

    @Test func negatedPatternVetoesTheWholeHostLine() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        Host * !bastion
          ProxyJump bastion
        Host !only-negated
          User never
        """)
        #expect(try c.resolve(alias: "builder").proxyJump?.value == [JumpSpec(host: "bastion")])
        #expect(try c.resolve(alias: "bastion").proxyJump == nil)
        #expect(try c.resolve(alias: "x").user == nil)
    }

    @Test func questionMarkMatchesExactlyOneCharacter() throws {
        let home = try ConfigHome()
        let c = try home.config("Host arm?\n  User arm\n")
        #expect(try c.resolve(alias: "arm1").user?.value == "arm")
        #expect(try c.resolve(alias: "arm").user == nil)
        #expect(try c.resolve(alias: "arm12").user == nil)
    }

    @Test func severalPatternsOnOneLine() throws {
        let home = try ConfigHome()
        let c = try home.config("Host x86-a graviton-* # builders\n  User builder\n")
        #expect(try c.resolve(alias: "x86-a").user?.value == "builder")
        #expect(try c.resolve(alias: "graviton-7").user?.value == "builder")
        #expect(try c.resolve(alias: "x86-b").user == nil)
    }

    @Test func keywordsAreCaseInsensitiveButHostPatternsAreNot() throws {
        let home = try ConfigHome()
        let c = try home.config("HOST Web\n  hOsTnAmE Web.Example.ORG\n  USER=u\n")
        let r = try c.resolve(alias: "Web")
        #expect(r.hostName?.value == "web.example.org")  // ssh lowercases the name it connects to
        #expect(r.user?.value == "u")
        #expect(try c.resolve(alias: "web").hostName == nil)
    }

    @Test func hostNameExpandsPercentH() throws {
        let home = try ConfigHome()
        let c = try home.config("Host *.lab\n  HostName %h.example.com\nHost odd\n  HostName 100%%\n")
        #expect(try c.resolve(alias: "b1.lab").hostName?.value == "b1.lab.example.com")
        #expect(try c.resolve(alias: "odd").hostName?.value == "100%")
    }

    @Test func matchAllHostAndOriginalHost() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        Host short
          HostName long.example.com
        Match host long.example.com
          User viahost
        Match originalhost SHORT !host nothing
          Port 2200
        Match !host *.example.com
          IdentitiesOnly yes
        Match all
          ConnectTimeout 7
        """)
        let r = try c.resolve(alias: "short")
        #expect(r.user?.value == "viahost")
        #expect(r.port?.value == 2200)
        #expect(r.identitiesOnly == nil)
        #expect(r.connectTimeout?.value == 7)
        #expect(try c.resolve(alias: "other").identitiesOnly?.value == true)
    }

    @Test func matchHostPatternListWithNegation() throws {
        let home = try ConfigHome()
        let c = try home.config("Match host build-*,!build-9\n  User b\n")
        #expect(try c.resolve(alias: "build-1").user?.value == "b")
        #expect(try c.resolve(alias: "build-9").user == nil)
    }

    @Test func unsupportedMatchCriteriaSkipTheBlockWithAWarning() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        Match exec "test -f /etc/debian_version"
          User fromexec
        Match localnetwork 10.0.0.0/8
          User fromnet
        Host *
          User fallback
        """)
        #expect(c.warnings.count == 2)
        #expect(c.warnings[0].line == 1 && c.warnings[0].message.contains("exec"))
        let r = try c.resolve(alias: "x")
        #expect(r.user?.value == "fallback")
        #expect(r.warnings.map(\.line) == [1, 3])
    }

    @Test func matchUserSeesTheUserSetSoFarOrTheLocalOne() throws {
        let home = try ConfigHome()
        let c = try home.config("Host a\n  User deploy\nMatch user deploy\n  Port 2022\nMatch localuser me\n  ConnectTimeout 3\n")
        #expect(try c.resolve(alias: "a").port?.value == 2022)
        #expect(try c.resolve(alias: "b").port == nil)
        #expect(try c.resolve(alias: "b").connectTimeout?.value == 3)
    }
}

@Suite struct SSHConfigIncludes {
    @Test func relativeIncludeGlobsUnderDotSshInSortedOrder() throws {
        let home = try ConfigHome()
        try home.write(".ssh/conf.d/20-b.conf", "Host x\n  User from-b\n  Port 2002\n")
        try home.write(".ssh/conf.d/10-a.conf", "Host x\n  User from-a\n")
        try home.write(".ssh/conf.d/ignored.txt", "Host x\n  Port 9\n")
        let c = try home.config("Include conf.d/*.conf\nHost x\n  User main\n  Port 1\n")
        let r = try c.resolve(alias: "x")
        #expect(r.user == Sourced("from-a", source: .sshConfig(file: home.root + "/.ssh/conf.d/10-a.conf", line: 2)))
        #expect(r.port?.value == 2002)
    }

    @Test func tildeAndAbsoluteIncludes() throws {
        let home = try ConfigHome()
        let abs = try home.write("elsewhere/abs.conf", "Host y\n  Port 3\n")
        try home.write("tilde.conf", "Host y\n  User t\n")
        let c = try home.config("Include \(abs) ~/tilde.conf\n")
        #expect(try c.resolve(alias: "y").port?.value == 3)
        #expect(try c.resolve(alias: "y").user?.value == "t")
    }

    @Test func includeKeepsTheIncludersBlockState() throws {
        let home = try ConfigHome()
        try home.write(".ssh/inc1", "Host other\n  User wrong\n")
        try home.write(".ssh/inc2", "User top-of-inc2\n")
        try home.write(".ssh/inc3", "User never\nHost z\n  Port 5\n")
        let c = try home.config("""
        Host z
          Include inc1
          Include inc2
        Host nomatch
          Include inc3
        """)
        let r = try c.resolve(alias: "z")
        // inc1's Host line switched its block off, but the includer's block is active again for inc2.
        #expect(r.user?.value == "top-of-inc2")
        // inc3 is read inside an inactive block: even its `Host z` never matches (OpenSSH's NEVERMATCH).
        #expect(r.port == nil)
    }

    @Test func aMissingIncludeIsNotAnError() throws {
        let home = try ConfigHome()
        let c = try home.config("Include does-not-exist /nowhere/at/all/*.conf\nHost a\n  User u\n")
        #expect(try c.resolve(alias: "a").user?.value == "u")
    }

    @Test func includeRecursionStopsWithFileAndLine() throws {
        let home = try ConfigHome()
        let e = configError { _ = try home.config("User u\nInclude config\n") }
        #expect(e?.line == 2)
        #expect(e?.file == home.root + "/.ssh/config")
        #expect(e?.message.contains("too many nested includes") == true)
    }

    @Test func sixteenLevelsOfIncludeAreAllowed() throws {
        let home = try ConfigHome()
        for level in 1...16 {
            try home.write(".ssh/l\(level)", level == 16 ? "Port 16\n" : "Include l\(level + 1)\n")
        }
        #expect(try home.config("Include l1\n").resolve(alias: "a").port?.value == 16)
    }

    @Test func errorsInsideIncludedFilesNameThatFile() throws {
        let home = try ConfigHome()
        let inc = try home.write(".ssh/bad.conf", "\n\nHost q\n  Port none\n")
        let e = configError { _ = try home.config("Host elsewhere\n  Include bad.conf\n") }
        #expect(e == SSHConfigError(file: inc, line: 4, message: "Port: bad port 'none'"))
    }

    @Test func missingTopFileIsAnErrorUnlessOptional() throws {
        let home = try ConfigHome()
        let e = configError { _ = try SSHConfig(file: home.root + "/nope", environment: home.environment) }
        #expect(e?.file == home.root + "/nope")
        let empty = try SSHConfig(file: "~/nope", optional: true, environment: home.environment)
        #expect(try empty.resolve(alias: "a").user == nil)
    }
}

@Suite struct SSHConfigSyntax {
    @Test func quotesEqualsEscapesAndComments() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        # a comment line
           # an indented comment
        Host=q
          User = "build bot"   # trailing comment
          IdentityFile "/keys/with space/id"
          IdentityFile /keys/a"b c"d
          IdentityFile /keys/x\\ y
          HostName='single quoted'
          Port=2222
        """)
        let r = try c.resolve(alias: "q")
        #expect(r.user?.value == "build bot")
        #expect(r.identityFiles.map(\.value) == ["/keys/with space/id", "/keys/ab cd", "/keys/x y"])
        #expect(r.hostName?.value == "single quoted")
        #expect(r.port?.value == 2222)
    }

    @Test func crlfLineEndingsAreFine() throws {
        let home = try ConfigHome()
        let r = try home.config("Host a\r\n  User crlf\r\n  Port 23\r\n").resolve(alias: "a")
        #expect(r.user?.value == "crlf")
        #expect(r.port?.value == 23)
    }

    @Test func unknownKeywordsAreIgnoredButRecorded() throws {
        let home = try ConfigHome()
        let c = try home.config("Host a\n  ForwardAgent yes\n  ControlMaster auto\nHost b\n  Compression yes\n")
        let r = try c.resolve(alias: "a")
        #expect(r.ignored == [Sourced("forwardagent", source: .sshConfig(file: c.file, line: 2)),
                              Sourced("controlmaster", source: .sshConfig(file: c.file, line: 3))])
    }

    @Test(arguments: [
        ("Host a\n  Port 70000\n", 2, "Port: bad port '70000'"),
        ("Host a\n  User a b\n", 2, "user: extra arguments at end of line"),
        ("Host a\n  User \"unterminated\n", 2, "user: unbalanced quotes"),
        ("Host\n", 1, "no argument after keyword \"host\""),
        ("Host a\n  ConnectTimeout soon\n", 2, "connecttimeout: invalid time value 'soon'"),
        ("Host a\n  StrictHostKeyChecking maybe\n", 2,
         "StrictHostKeyChecking: unknown value 'maybe' (the coordinator accepts yes or accept-new)"),
        ("Host a\n  ProxyJump a@:22\n", 2, "ProxyJump: invalid hop 'a@:22' in 'a@:22'"),
        ("Match host\n", 1, "Match: missing criteria for host"),
        ("Match all host x\n", 1, "Match: 'all' cannot be combined with other Match attributes"),
        ("Host a\n  IdentitiesOnly maybe\n", 2, "IdentitiesOnly: 'maybe' is not yes or no"),
    ])
    func invalidValuesAreErrorsWithFileAndLine(text: String, line: Int, message: String) throws {
        let home = try ConfigHome()
        // Like OpenSSH, a broken line is an error even in a block that does not apply to the alias.
        let e = configError { _ = try home.config(text) }
        #expect(e == SSHConfigError(file: home.root + "/.ssh/config", line: line, message: message))
        #expect(e?.exitCode == .usage)
    }

    @Test func timeValuesUseOpenSSHUnits() throws {
        let home = try ConfigHome()
        let r = try home.config("ConnectTimeout 1m30s\nServerAliveInterval 2H\nServerAliveCountMax 6\n").resolve(alias: "a")
        #expect(r.connectTimeout?.value == 90)
        #expect(r.serverAliveInterval?.value == 7200)
        #expect(r.serverAliveCountMax?.value == 6)
    }
}

@Suite struct SSHConfigValues {
    @Test func identityFilesAccumulateWithoutDuplicates() throws {
        let home = try ConfigHome()
        let c = try home.config("Host a\n  IdentityFile ~/.ssh/a\nHost *\n  IdentityFile ~/.ssh/a\n  IdentityFile ~/.ssh/b\n")
        let r = try c.resolve(alias: "a")
        #expect(r.identityFiles == [Sourced("~/.ssh/a", source: .sshConfig(file: c.file, line: 2)),
                                    Sourced("~/.ssh/b", source: .sshConfig(file: c.file, line: 5))])
    }

    @Test func tokensInIdentityFileExpandWithTheFinalValues() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        Host b1
          HostName B1.Lab
          User cfg
          Port 2200
          IdentityFile ~/.ssh/%h-%r-%u-%p
          IdentityFile %d/k/%n_%%_%i_%l_%L
          IdentityFile ${KEYS}/%h
        """)
        let base = SSHTarget(name: "b1", address: "b1", user: "builder", knownHosts: "/kh")
        let applied = try c.resolve(alias: "b1").applying(to: base, inventoryFields: [], fileExists: { _ in false })
        #expect(applied.identityFiles == [
            home.root + "/.ssh/b1.lab-cfg-me-2200",
            home.root + "/k/b1_%_1000_laptop.example.org_laptop",
            "/keys/b1.lab",
        ])
        // An inventory user changes %r: tokens expand after the merge.
        let overridden = base.with { $0.user = "inv" }
        let o = try c.resolve(alias: "b1").applying(to: overridden, inventoryFields: [.user], fileExists: { _ in false })
        #expect(o.identityFiles[0] == home.root + "/.ssh/b1.lab-inv-me-2200")
    }

    @Test func theFirstExistingIdentityFileIsTheTargetsKey() throws {
        let home = try ConfigHome()
        let c = try home.config("IdentityFile /k/missing\nIdentityFile /k/present\n")
        let a = try c.resolve(alias: "x").applying(to: SSHTarget(name: "x", address: "x", user: "u", knownHosts: "/kh"),
                                                   inventoryFields: [], fileExists: { $0 == "/k/present" })
        #expect(a.target.identityFile == "/k/present")
        #expect(a.provenance[.identityFile] == .sshConfig(file: c.file, line: 2))
    }

    @Test(arguments: ["%C", "%j", "%z", "${UNSET}", "trailing%"])
    func unsupportedTokensAreErrorsAtTheirLine(token: String) throws {
        let home = try ConfigHome()
        let c = try home.config("Host a\n  IdentityFile /k/\(token)\n")
        let e = configError {
            _ = try c.resolve(alias: "a").applying(to: SSHTarget(name: "a", address: "a", user: "u", knownHosts: "/kh"),
                                                   inventoryFields: [])
        }
        #expect(e?.line == 2)
        #expect(e?.message.hasPrefix("IdentityFile:") == true)
    }

    @Test func proxyJumpChainsUrisAndIPv6() throws {
        let home = try ConfigHome()
        let c = try home.config("Host t\n  ProxyJump ops@bastion:2222,ssh://inner,[fd00::1]:22,j@[::1] # hops\n")
        let hops = try c.resolve(alias: "t").proxyJump?.value
        #expect(hops == [JumpSpec(user: "ops", host: "bastion", port: 2222), JumpSpec(host: "inner"),
                         JumpSpec(host: "fd00::1", port: 22), JumpSpec(user: "j", host: "::1")])
        #expect(hops?.map(\.description).joined(separator: ",") == "ops@bastion:2222,inner,[fd00::1]:22,j@[::1]")
    }

    @Test func proxyJumpNoneWinsWhenItComesFirst() throws {
        let home = try ConfigHome()
        let c = try home.config("Host bastion\n  ProxyJump none\nHost *\n  ProxyJump bastion\n")
        #expect(try c.resolve(alias: "bastion").proxyJump?.value == [])
        #expect(try c.resolve(alias: "other").proxyJump?.value == [JumpSpec(host: "bastion")])
    }

    @Test func proxyCommandIsRefusedOnlyWhereItApplies() throws {
        let home = try ConfigHome()
        let c = try home.config("Host legacy\n  ProxyCommand nc %h %p\nHost quiet\n  ProxyCommand none\n  ProxyJump j\n")
        let e = configError { _ = try c.resolve(alias: "legacy") }
        #expect(e?.line == 2)
        #expect(e?.message.contains("ProxyJump") == true)
        // OpenSSH: ProxyCommand and ProxyJump share one slot, so `ProxyCommand none` also disables a later jump.
        #expect(try c.resolve(alias: "quiet").proxyJump?.value == [])
        #expect(try c.resolve(alias: "fine").proxyJump == nil)
    }

    @Test(arguments: ["no", "off", "ask", "false", "NO"])
    func strictHostKeyCheckingOtherThanYesOrAcceptNewIsRefused(value: String) throws {
        let home = try ConfigHome()
        let c = try home.config("Host legacy\n  StrictHostKeyChecking \(value)\nHost *\n  StrictHostKeyChecking accept-new\n")
        let e = configError { _ = try c.resolve(alias: "legacy") }
        #expect(e?.file == c.file)
        #expect(e?.line == 2)
        #expect(e?.message.contains("there is no \"no\"") == true)
        #expect(e?.description.hasPrefix("\(c.file):2: StrictHostKeyChecking \(value)") == true)
        // Hosts the refused block does not cover are fine.
        #expect(try c.resolve(alias: "other").strictHostKeyChecking?.value == .acceptNew)
    }

    @Test func strictHostKeyCheckingYesIsStrict() throws {
        let home = try ConfigHome()
        let c = try home.config("StrictHostKeyChecking yes\n")
        #expect(try c.resolve(alias: "a").strictHostKeyChecking?.value == .strict)
    }

    @Test func userKnownHostsFileTakesTheFirstAndRefusesNone() throws {
        let home = try ConfigHome()
        let c = try home.config("Host a\n  UserKnownHostsFile ~/kh/%h /other\nHost n\n  UserKnownHostsFile none\n")
        let t = try c.resolve(alias: "a").applying(to: SSHTarget(name: "a", address: "a", user: "u", knownHosts: "/kh"),
                                                   inventoryFields: [])
        #expect(t.target.knownHosts == home.root + "/kh/a")
        let e = configError { _ = try c.resolve(alias: "n") }
        #expect(e?.line == 4)
    }
}

@Suite struct SSHConfigApplying {
    let base = SSHTarget(name: "graviton-a", address: "graviton-a", port: 22, user: "builder",
                         identityFile: "/inv/key", knownHosts: "/inv/known_hosts", hostKeyPolicy: .strict,
                         connectTimeout: 10, keepaliveInterval: 5, keepaliveCountMax: 3)

    @Test func inventoryOverridesSshConfigWhichOverridesDefaults() throws {
        let home = try ConfigHome()
        let c = try home.config("""
        Host graviton-*
          HostName 10.0.2.20
          User ec2-user
          Port 2222
          IdentityFile ~/.ssh/graviton
          StrictHostKeyChecking accept-new
          ServerAliveInterval 15
          ProxyJump bastion
        """)
        let a = try c.resolve(alias: "graviton-a").applying(to: base, inventoryFields: [.port, .identityFile],
                                                           fileExists: { _ in true })
        #expect(a.target.address == "10.0.2.20")
        #expect(a.target.user == "ec2-user")
        #expect(a.target.port == 22)
        #expect(a.target.identityFile == "/inv/key")
        #expect(a.target.hostKeyPolicy == .acceptNew)
        #expect(a.target.keepaliveInterval == 15)
        #expect(a.target.connectTimeout == 10)
        #expect(a.proxyJump == [JumpSpec(host: "bastion")])
        #expect(a.provenance[.port] == .inventory)
        #expect(a.provenance[.user] == .sshConfig(file: c.file, line: 3))
        #expect(a.provenance[.connectTimeout] == .builtInDefault)
        #expect(a.provenanceLines.first == "address = 10.0.2.20 (ssh_config \(c.file):2)")
        #expect(a.provenanceLines.contains("port = 22 (inventory)"))
        #expect(a.provenanceLines.contains("connectTimeout = 10.0 (inventory defaults or built-in)"))
        #expect(a.provenanceLines.contains("proxyJump = bastion (ssh_config \(c.file):8)"))
    }

    @Test func anAliasUnknownToSshConfigKeepsTheTarget() throws {
        let home = try ConfigHome()
        let a = try home.config("Host other\n  User x\n").resolve(alias: "graviton-a")
            .applying(to: base, inventoryFields: [])
        #expect(a.target == base)
        #expect(a.provenance[.address] == .inventory)
        #expect(a.provenance[.user] == .builtInDefault)
        #expect(a.proxyJump.isEmpty)
    }

    @Test func inventoryJumpWinsOverProxyJump() throws {
        let home = try ConfigHome()
        let a = try home.config("ProxyJump cfg-bastion\n").resolve(alias: "graviton-a")
            .applying(to: base, inventoryFields: [], inventoryJump: [JumpSpec(host: "inv-bastion")])
        #expect(a.proxyJump == [JumpSpec(host: "inv-bastion")])
        #expect(a.provenance[.proxyJump] == .inventory)
    }

    @Test func zeroTimeoutsKeepTheDefaultWithAWarning() throws {
        let home = try ConfigHome()
        let a = try home.config("ConnectTimeout 0\nServerAliveInterval 0\n").resolve(alias: "graviton-a")
            .applying(to: base, inventoryFields: [])
        #expect(a.target.connectTimeout == 10)
        #expect(a.target.keepaliveInterval == 5)
        #expect(a.warnings.count == 2)
        #expect(a.provenance[.connectTimeout] == .builtInDefault)
    }
}

extension SSHTarget {
    func with(_ change: (inout SSHTarget) -> Void) -> SSHTarget {
        var copy = self
        change(&copy)
        return copy
    }
}
