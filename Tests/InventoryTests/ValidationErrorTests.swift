// Well-formed JSON that is not a valid inventory: each refusal names the path and points at the value or key.
import Foundation
import Testing
@testable import Inventory

@Suite struct ValidationErrorTests {
    // MARK: Unknown and missing keys

    @Test func unknownTopLevelKeyIsRefusedListingTheAllowedOnes() {
        expectError(#"{"hosts": [], "host": []}"#, path: "host", at: #""host""#,
                    message: #"unknown key "host"; allowed: defaults, hosts, registries"#)
    }

    @Test func unknownKeyInDefaultsIsRefusedListingTheAllowedOnes() {
        let json = #"{"defaults": {"usr": "x"}, "hosts": []}"#
        expectError(json, path: "defaults.usr", at: #""usr""#,
                    message: "allowed: connectTimeout, credentials, engine, hostKeyPolicy, identityFile, jump, keepaliveCountMax, "
                        + "keepaliveInterval, knownHosts, layerCache, maxJobs, port, sshConfig, user, workDir")
    }

    @Test func unknownKeyInAHostIsRefusedWithItsIndex() {
        let json = #"{"hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}, {"name": "b", "address": "h2", "platforms": ["amd64"], "platfrom": "x"}]}"#
        expectError(json, path: "hosts[1].platfrom", at: #""platfrom""#, message: #"unknown key "platfrom"; allowed: address, "#)
    }

    @Test func unknownKeyInARegistryIsRefused() {
        let json = #"{"registries": {"r.io:5000": {"insecure": true, "tls": false}}, "hosts": []}"#
        expectError(json, path: #"registries["r.io:5000"].tls"#, at: #""tls""#, message: "allowed: insecure")
    }

    @Test func missingHostsIsRefused() {
        expectError(#"{"defaults": {}}"#, path: "", at: "{", message: #"missing required key "hosts""#)
    }

    @Test func emptyHostListIsRefused() {
        expectError(#"{"hosts": []}"#, path: "hosts", at: "[", message: "no hosts")
    }

    @Test(arguments: ["name", "address", "platforms"])
    func hostWithoutARequiredKeyIsRefused(key: String) {
        var fields = [#""name": "a""#, #""address": "h""#, #""platforms": ["amd64"]"#]
        fields.removeAll { $0.hasPrefix("\"\(key)\"") }
        let json = #"{"hosts": [{"# + fields.joined(separator: ", ") + "}]}"
        expectError(json, path: "hosts[0]", at: #"{""#, occurrence: 2, message: "missing required key \"\(key)\"")
    }

    // MARK: Types

    @Test func portAsAStringIsAWrongType() {
        let json = #"{"defaults": {"port": "22"}, "hosts": []}"#
        expectError(json, path: "defaults.port", at: #""22""#, message: "expected integer, got string")
    }

    @Test func fractionalMaxJobsIsNotAnInteger() {
        expectError(oneHost(#""maxJobs": 1.5"#), path: "hosts[0].maxJobs", at: "1.5", message: "expected integer, got 1.5")
    }

    @Test func booleanHostKeyPolicyIsAWrongType() {
        expectError(oneHost(#""hostKeyPolicy": false"#), path: "hosts[0].hostKeyPolicy", at: "false",
                    message: "expected string, got boolean")
    }

    @Test func nullNameIsAWrongType() {
        let json = #"{"hosts": [{"name": null, "address": "h", "platforms": ["amd64"]}]}"#
        expectError(json, path: "hosts[0].name", at: "null", message: "expected string, got null")
    }

    @Test func platformsAsAStringIsAWrongType() {
        expectError(oneHost(platforms: #""amd64""#), path: "hosts[0].platforms", at: #""amd64""#,
                    message: "expected array, got string")
    }

    @Test func numberAsAPlatformIsAWrongType() {
        expectError(oneHost(platforms: #"["amd64", 64]"#), path: "hosts[0].platforms[1]", at: "64]",
                    message: "expected string, got number")
    }

    @Test func hostsAsAnObjectIsAWrongType() {
        expectError(#"{"hosts": {"a": {}}}"#, path: "hosts", at: "{", occurrence: 2, message: "expected array, got object")
    }

    @Test func hostAsAStringIsAWrongType() {
        expectError(#"{"hosts": ["x86-a"]}"#, path: "hosts[0]", at: #""x86-a""#, message: "expected object, got string")
    }

    @Test func defaultsAsAnArrayIsAWrongType() {
        expectError(#"{"defaults": [], "hosts": []}"#, path: "defaults", at: "[", message: "expected object, got array")
    }

    @Test func documentThatIsNotAnObjectIsAWrongType() {
        expectError(#"  [1]"#, path: "", at: "[", message: "expected object, got array")
    }

    @Test func nonStringLabelValueIsAWrongType() {
        expectError(oneHost(#""labels": {"pool": "n", "cores": 64}"#), path: "hosts[0].labels.cores", at: "64}",
                    message: "expected string, got number")
    }

    @Test func labelKeysThatAreNotIdentifiersAreQuotedInThePath() {
        expectError(oneHost(#""labels": {"team.name": 1}"#), path: #"hosts[0].labels["team.name"]"#, at: "1}",
                    message: "expected string, got number")
    }

    @Test func nonBooleanInsecureIsAWrongType() {
        let json = #"{"registries": {"127.0.0.1:5000": {"insecure": "yes"}}, "hosts": []}"#
        expectError(json, path: #"registries["127.0.0.1:5000"].insecure"#, at: #""yes""#,
                    message: "expected boolean, got string")
    }

    @Test func stringConnectTimeoutIsAWrongType() {
        expectError(oneHost(#""connectTimeout": "10s""#), path: "hosts[0].connectTimeout", at: #""10s""#,
                    message: "expected number, got string")
    }

    // MARK: Values

    @Test func hostKeyPolicyNoIsRefusedExplainingKnownHosts() {
        guard let error = loadError(#"{"defaults": {"hostKeyPolicy": "no"}, "hosts": []}"#) else { return }
        #expect(error.path == "defaults.hostKeyPolicy")
        #expect(error.message.hasPrefix(#"there is no "no""#))
        #expect(error.message.contains("known_hosts"))
        #expect(error.message.contains("accept-new"))
    }

    @Test func unknownHostKeyPolicyListsTheAcceptedOnes() {
        expectError(oneHost(#""hostKeyPolicy": "ask""#), path: "hosts[0].hostKeyPolicy", at: #""ask""#,
                    message: #"unknown value "ask"; accepted: "yes", "accept-new""#)
    }

    @Test func unknownEngineListsTheAcceptedOnes() {
        expectError(oneHost(#""engine": "nerdctl""#), path: "hosts[0].engine", at: #""nerdctl""#,
                    message: #"accepted: "docker", "podman", "buildah""#)
    }

    @Test func unknownCredentialsModeListsTheAcceptedOnes() {
        expectError(oneHost(#""credentials": "env""#), path: "hosts[0].credentials", at: #""env""#,
                    message: #"accepted: "forward", "host""#)
    }

    @Test(arguments: ["0", "-1", "65536"])
    func portOutsideOneTo65535IsRefused(port: String) {
        let json = #"{"defaults": {"port": "# + port + "}, \"hosts\": []}"
        expectError(json, path: "defaults.port", at: port, message: "\(port) is out of range 1...65535")
    }

    @Test func maxJobsBelowOneIsRefusedInDefaults() {
        expectError(#"{"defaults": {"maxJobs": 0}, "hosts": []}"#, path: "defaults.maxJobs", at: "0",
                    message: "0 is out of range 1...")
    }

    @Test func maxJobsBelowOneIsRefusedInAHost() {
        expectError(oneHost(#""maxJobs": -3"#), path: "hosts[0].maxJobs", at: "-3", message: "-3 is out of range 1...")
    }

    @Test func hugeMaxJobsIsRefusedRatherThanOverflowing() {
        expectError(oneHost(#""maxJobs": 1e19"#), path: "hosts[0].maxJobs", at: "1e19", message: "out of range")
    }

    @Test func keepaliveCountMaxBelowOneIsRefused() {
        expectError(oneHost(#""keepaliveCountMax": 0"#), path: "hosts[0].keepaliveCountMax", at: "0}",
                    message: "out of range 1...")
    }

    @Test(arguments: ["connectTimeout", "keepaliveInterval"])
    func secondsMustBeGreaterThanZero(key: String) {
        expectError(oneHost("\"\(key)\": 0"), path: "hosts[0].\(key)", at: "0}", message: "must be greater than 0")
        expectError(oneHost("\"\(key)\": -0.5"), path: "hosts[0].\(key)", at: "-0.5", message: "must be greater than 0")
    }

    @Test func emptyNameIsRefused() {
        let json = #"{"hosts": [{"name": "", "address": "h", "platforms": ["amd64"]}]}"#
        expectError(json, path: "hosts[0].name", at: #""""#, message: "must not be empty")
    }

    @Test func emptyAddressIsRefused() {
        let json = #"{"hosts": [{"name": "a", "address": "", "platforms": ["amd64"]}]}"#
        expectError(json, path: "hosts[0].address", at: #""""#, message: "must not be empty")
    }

    @Test func emptyUserIsRefused() {
        expectError(#"{"defaults": {"user": ""}, "hosts": []}"#, path: "defaults.user", at: #""""#,
                    message: "must not be empty")
    }

    @Test func relativeWorkDirIsRefused() {
        expectError(#"{"defaults": {"workDir": "tmp/coordinator"}, "hosts": []}"#, path: "defaults.workDir",
                    at: #""tmp/"#, message: "absolute path")
    }

    @Test func tildeUserPathIsRefused() {
        expectError(oneHost(#""identityFile": "~bob/.ssh/id""#), path: "hosts[0].identityFile", at: #""~bob"#,
                    message: "~user")
    }

    @Test func registryKeyWithASchemeIsRefused() {
        let json = #"{"registries": {"https://r.io": {}}, "hosts": []}"#
        expectError(json, path: #"registries["https://r.io"]"#, at: "{}", message: "host[:port]")
    }

    // MARK: Platforms

    @Test func emptyPlatformListIsRefused() {
        expectError(oneHost(platforms: "[]"), path: "hosts[0].platforms", at: "[]", message: "empty platform list")
    }

    @Test func unknownPlatformIsRefusedListingTheAcceptedNames() {
        expectError(oneHost(platforms: #"["amd64", "sparc64"]"#), path: "hosts[0].platforms[1]", at: #""sparc64""#,
                    message: "unknown platform 'sparc64'; accepted: linux/amd64 (amd64, x86_64, x86-64), linux/arm64")
    }

    @Test func samePlatformTwiceAfterNormalisationIsRefused() {
        expectError(oneHost(platforms: #"["linux/arm64", "amd64", "aarch64"]"#), path: "hosts[0].platforms[2]",
                    at: #""aarch64""#, message: #""aarch64" is linux/arm64 again (as platforms[0])"#)
    }

    // MARK: Uniqueness across hosts

    @Test func duplicateHostNameIsRefusedAtTheSecondOne() {
        let json = #"{"hosts": [{"name": "a", "address": "h1", "platforms": ["amd64"]}, {"name": "b", "address": "h2", "platforms": ["amd64"]}, {"name": "a", "address": "h3", "platforms": ["arm64"]}]}"#
        expectError(json, path: "hosts[2].name", at: #""a""#, occurrence: 2, message: #"duplicate host name "a" (also hosts[0])"#)
    }

    @Test func duplicateAddressAndPortIsRefusedAfterTheDefaultPortApplies() {
        let json = #"{"hosts": [{"name": "a", "address": "10.0.0.1", "port": 22, "platforms": ["amd64"]}, {"name": "b", "address": "10.0.0.1", "platforms": ["arm64"]}]}"#
        expectError(json, path: "hosts[1].address", at: #""10.0.0.1""#, occurrence: 2,
                    message: #"address 10.0.0.1 port 22 is already host "a" (hosts[0])"#)
    }

    @Test func duplicateAddressAndPortIsRefusedWhenBothInheritThePortFromDefaults() {
        let json = #"{"defaults": {"port": 2222}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}, {"name": "b", "address": "h", "port": 2222, "platforms": ["arm64"]}]}"#
        expectError(json, path: "hosts[1].address", at: #""h""#, occurrence: 2, message: "port 2222 is already host")
    }

    @Test func addressesDifferingOnlyInCaseAreTheSameHost() {
        let json = #"{"hosts": [{"name": "a", "address": "Build.Internal", "platforms": ["amd64"]}, {"name": "b", "address": "build.internal", "platforms": ["arm64"]}]}"#
        expectError(json, path: "hosts[1].address", at: #""build.internal""#, message: "is already host \"a\"")
    }

    // MARK: Order

    @Test func theFirstProblemInTheFileIsTheOneReported() {
        let json = #"{"hosts": [{"name": "a", "address": "h", "platforms": ["amd64"], "port": 0}], "defaults": {"maxJobs": 0}}"#
        expectError(json, path: "hosts[0].port", at: "0}", message: "out of range")
    }
}
