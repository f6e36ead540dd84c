// Valid inventories: defaults, overrides, path resolution, platform aliases, registries.
import Foundation
import OCI
import Support
import Testing
@testable import Inventory

@Suite struct LoaderTests {
    @Test func hostWithOnlyRequiredFieldsGetsTheDocumentedDefaults() throws {
        let host = try #require(try fleet(oneHost()).hosts.first)
        #expect(host.name == "a")
        #expect(host.address == "10.0.0.1")
        #expect(host.user == "builder")
        #expect(host.port == 22)
        #expect(host.identityFile == nil)
        #expect(host.knownHosts == home + "/.ssh/known_hosts")
        #expect(host.hostKeyPolicy == .yes)
        #expect(host.engine == .docker)
        #expect(host.workDir == "/var/tmp/coordinator")
        #expect(host.maxJobs == 1)
        #expect(host.connectTimeout == 10)
        #expect(host.keepaliveInterval == 5)
        #expect(host.keepaliveCountMax == 3)
        #expect(host.credentials == .forward)
        #expect(host.platforms == [Platform(architecture: "amd64")])
        #expect(host.labels == [:])
    }

    @Test func defaultsApplyToHostsThatLeaveAFieldOutAndHostFieldsWin() throws {
        let loaded = try fleet("""
            {"defaults": {"user": "ci", "port": 2200, "identityFile": "/keys/default", "knownHosts": "/kh/default",
                          "hostKeyPolicy": "accept-new", "engine": "podman", "workDir": "/srv/default", "maxJobs": 3,
                          "connectTimeout": 7, "keepaliveInterval": 2, "keepaliveCountMax": 9, "credentials": "host"},
             "hosts": [
               {"name": "inherits", "address": "h1", "platforms": ["amd64"]},
               {"name": "overrides", "address": "h2", "platforms": ["arm64"], "user": "root", "port": 22,
                "identityFile": "/keys/own", "knownHosts": "/kh/own", "hostKeyPolicy": "yes", "engine": "buildah",
                "workDir": "/srv/own", "maxJobs": 1, "connectTimeout": 0.5, "keepaliveInterval": 1,
                "keepaliveCountMax": 1, "credentials": "forward"}
             ]}
            """)
        let inherits = HostSpec(name: "inherits", address: "h1", port: 2200, user: "ci", identityFile: "/keys/default",
                                knownHosts: "/kh/default", hostKeyPolicy: .acceptNew, engine: .podman,
                                workDir: "/srv/default", maxJobs: 3, connectTimeout: 7, keepaliveInterval: 2,
                                keepaliveCountMax: 9, credentials: .host, platforms: [Platform(architecture: "amd64")])
        let overrides = HostSpec(name: "overrides", address: "h2", port: 22, user: "root", identityFile: "/keys/own",
                                 knownHosts: "/kh/own", hostKeyPolicy: .yes, engine: .buildah, workDir: "/srv/own",
                                 maxJobs: 1, connectTimeout: 0.5, keepaliveInterval: 1, keepaliveCountMax: 1,
                                 credentials: .forward, platforms: [Platform(architecture: "arm64")],
                                 hostFields: ["user", "port", "identityFile", "knownHosts", "hostKeyPolicy", "engine",
                                              "workDir", "maxJobs", "connectTimeout", "keepaliveInterval",
                                              "keepaliveCountMax", "credentials"])
        #expect(loaded.hosts == [inherits, overrides])
    }

    @Test func defaultsMayComeAfterHostsInTheFile() throws {
        let loaded = try fleet(#"{"hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}], "defaults": {"port": 2022}}"#)
        #expect(loaded.hosts.map(\.port) == [2022])
    }

    @Test func relativePathsResolveAgainstTheInventoryFolder() throws {
        let host = try #require(try fleet(oneHost(#""identityFile": "keys/id_ed25519", "knownHosts": "./known_hosts""#)).hosts.first)
        #expect(host.identityFile == "/etc/fleet/keys/id_ed25519")
        #expect(host.knownHosts == "/etc/fleet/known_hosts")
    }

    @Test func parentSegmentsAreKeptBecauseTheFolderMayBeASymlink() throws {
        let host = try #require(try fleet(oneHost(#""identityFile": "../keys//id""#)).hosts.first)
        #expect(host.identityFile == "/etc/fleet/../keys/id")
    }

    @Test func absolutePathsAreKept() throws {
        let host = try #require(try fleet(oneHost(#""identityFile": "/root/.ssh/id", "knownHosts": "/etc/kh""#)).hosts.first)
        #expect(host.identityFile == "/root/.ssh/id")
        #expect(host.knownHosts == "/etc/kh")
    }

    @Test func tildeExpandsToHomeInDefaultsAndHosts() throws {
        let loaded = try fleet("""
            {"defaults": {"knownHosts": "~/fleet/known_hosts"},
             "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"], "identityFile": "~/.ssh/id_ed25519"}]}
            """)
        #expect(loaded.hosts[0].identityFile == home + "/.ssh/id_ed25519")
        #expect(loaded.hosts[0].knownHosts == home + "/fleet/known_hosts")
    }

    @Test func relativeBaseDirectoryIsMadeAbsoluteAgainstTheCurrentDirectory() throws {
        let loaded = try Fleet(data: Data(oneHost(#""identityFile": "id""#).utf8), file: "x.json", baseDirectory: "conf")
        #expect(loaded.hosts[0].identityFile == FileManager.default.currentDirectoryPath + "/conf/id")
    }

    @Test func loadFromDiskResolvesAgainstTheFilesOwnFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("inventory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("fleet.json")
        try Data(oneHost(#""identityFile": "keys/id""#).utf8).write(to: file)
        let loaded = try Fleet.load(path: file.path)
        #expect(loaded.file == file.path)
        #expect(loaded.hosts[0].identityFile == folder.path + "/keys/id")
    }

    @Test func missingFileIsAnInventoryErrorNamingIt() {
        #expect(throws: InventoryError(file: "/nonexistent/inv.json", path: "", message: "no such file")) {
            try Fleet.load(path: "/nonexistent/inv.json")
        }
    }

    @Test func folderInsteadOfAFileIsRefused() {
        let error = #expect(throws: InventoryError.self) { try Fleet.load(path: "/tmp") }
        #expect(error?.file == "/tmp")
        #expect(error?.message.contains("folder") == true)
    }

    @Test(arguments: [
        ("x86_64", "linux/amd64"), ("x86-64", "linux/amd64"), ("amd64", "linux/amd64"), ("linux/amd64", "linux/amd64"),
        ("aarch64", "linux/arm64"), ("arm64", "linux/arm64"), ("arm64/v8", "linux/arm64"), ("linux/arm64/v8", "linux/arm64"),
        ("armhf", "linux/arm/v7"), ("armel", "linux/arm/v6"), ("linux/arm/v7", "linux/arm/v7"),
        ("LINUX/AMD64", "linux/amd64"),
    ])
    func platformAliasesNormaliseAsContainerdDoes(alias: String, expected: String) throws {
        let host = try #require(try fleet(oneHost(platforms: "[\"\(alias)\"]")).hosts.first)
        #expect(host.platforms.map(\.description) == [expected])
    }

    @Test func platformsKeepFileOrderAndFleetListsThemSorted() throws {
        let loaded = try fleet(oneHost(platforms: #"["arm64", "amd64", "armhf"]"#))
        #expect(loaded.hosts[0].platforms.map(\.description) == ["linux/arm64", "linux/amd64", "linux/arm/v7"])
        #expect(loaded.platforms.map(\.description) == ["linux/amd64", "linux/arm/v7", "linux/arm64"])
    }

    @Test func labelsAreKeptAsGiven() throws {
        let host = try #require(try fleet(oneHost(#""labels": {"pool": "nightly", "team-name": "", "zone": "eu"}"#)).hosts.first)
        #expect(host.labels == ["pool": "nightly", "team-name": "", "zone": "eu"])
    }

    @Test func registriesAreReadWithInsecureDefaultingToFalse() throws {
        let loaded = try fleet("""
            {"registries": {"127.0.0.1:5000": {"insecure": true}, "registry.internal": {"insecure": false}, "ghcr.io": {}},
             "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}
            """)
        #expect(loaded.registries == [
            "127.0.0.1:5000": RegistrySettings(insecure: true),
            "registry.internal": RegistrySettings(insecure: false),
            "ghcr.io": RegistrySettings(insecure: false),
        ])
    }

    @Test func noRegistriesKeyMeansNoRegistrySettings() throws {
        #expect(try fleet(oneHost()).registries.isEmpty)
    }

    @Test func integralNumbersCountAsIntegersAsInJSONSchema() throws {
        let host = try #require(try fleet(oneHost(#""maxJobs": 2.0, "port": 2.2e3"#)).hosts.first)
        #expect(host.maxJobs == 2)
        #expect(host.port == 2200)
    }

    @Test func portBoundsAreInclusive() throws {
        #expect(try fleet(oneHost(#""port": 1"#)).hosts[0].port == 1)
        #expect(try fleet(oneHost(#""port": 65535"#)).hosts[0].port == 65535)
    }

    @Test func sameAddressOnAnotherPortIsADifferentHost() throws {
        let loaded = try fleet("""
            {"hosts": [{"name": "a", "address": "127.0.1.1", "platforms": ["amd64"]},
                       {"name": "b", "address": "127.0.1.1", "port": 2222, "platforms": ["arm64"]}]}
            """)
        #expect(loaded.hosts.map(\.port) == [22, 2222])
    }

    @Test func byteOrderMarkIsTolerated() throws {
        let loaded = try Fleet(data: Data([0xEF, 0xBB, 0xBF] + Array(oneHost().utf8)), file: "inv.json", baseDirectory: "/")
        #expect(loaded.hosts.count == 1)
    }

    @Test func stringEscapesAreDecoded() throws {
        let host = try #require(try fleet(oneHost(#""labels": {"s": "caf\u00e9 \ud83d\ude80 \"q\" a\/b\tc"}"#)).hosts.first)
        #expect(host.labels["s"] == "café 🚀 \"q\" a/b\tc")
    }

    @Test func errorsSayFileLineColumnPathAndMessageAndExitWithUsage() {
        let error = InventoryError(file: "inv.json", path: "hosts[3].platforms[0]", line: 7, column: 21, message: "bad")
        #expect(error.description == "inv.json:7:21: hosts[3].platforms[0]: bad")
        #expect(InventoryError(file: "inv.json", path: "", message: "no such file").description == "inv.json: no such file")
        #expect(error.exitCode == .usage)
        #expect(error.exitCode.rawValue == 2)
    }
}
