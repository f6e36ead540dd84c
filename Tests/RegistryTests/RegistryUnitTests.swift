import Foundation
import Testing
import TestHarness
@testable import OCI
@testable import Registry

@Suite struct ChallengeAndRetryTests {
    @Test func bearerChallengeParsesQuotedParametersWithCommas() throws {
        let c = try #require(AuthChallenge(header: #"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#))
        #expect(c.scheme == "bearer")
        #expect(c.parameters["realm"] == "https://auth.example/token")
        #expect(c.parameters["service"] == "reg.example")
        #expect(c.parameters["scope"] == "repository:a/b:pull,push")
        #expect(AuthChallenge(header: #"Basic realm="x""#)?.scheme == "basic")
    }

    @Test func retryAfterIsReadAsSecondsOrDateAndBackoffStaysBounded() {
        #expect(RetryPolicy.parseRetryAfter("3") == 3)
        let now = Date(timeIntervalSince1970: 1_000_000)
        let later = RetryPolicy.parseRetryAfter("Mon, 12 Jan 1970 13:46:50 GMT", now: now)
        #expect(later.map { abs($0 - 10) < 1 } == true)
        #expect(RetryPolicy.parseRetryAfter(nil) == nil)
        let p = RetryPolicy(maxAttempts: 6, initialDelay: 0.1, maxDelay: 1, maxTotal: 5)
        for attempt in 1...10 {
            let d = p.delay(afterAttempt: attempt, retryAfter: nil)
            #expect(d > 0 && d <= 1)
        }
        #expect(p.delay(afterAttempt: 1, retryAfter: 100) == 1)
        #expect(p.delay(afterAttempt: 3, retryAfter: nil) >= 0.2)
    }

    @Test func loopbackAndInsecureRegistriesUsePlainHTTP() {
        let s = RegistrySettings(insecureRegistries: ["reg.lan:5000"], credentials: StaticCredentials())
        #expect(s.baseURL("127.0.0.1:5000") == "http://127.0.0.1:5000")
        #expect(s.baseURL("localhost:5000") == "http://localhost:5000")
        #expect(s.baseURL("[::1]:5000") == "http://[::1]:5000")
        #expect(s.baseURL("reg.lan:5000") == "http://reg.lan:5000")
        #expect(s.baseURL("ghcr.io") == "https://ghcr.io")
        #expect(s.baseURL("docker.io") == "https://registry-1.docker.io")
    }

    @Test func errorsNameRegistryAndRepositoryAndSpecCodes() {
        let body = Data(#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v1"}}]}"#.utf8)
        let e = RegistryError.from(status: 404, body: body, registry: "r.io", repository: "team/app", method: "GET",
                                   url: URL(string: "https://r.io/v2/team/app/manifests/v1?_state=SECRETSTATE")!)
        #expect(e.kind == .notFound)
        #expect(e.description.contains("registry r.io"))
        #expect(e.description.contains("repository team/app"))
        #expect(e.description.contains("MANIFEST_UNKNOWN"))
        #expect(!e.description.contains("SECRETSTATE"))
        #expect(e.exitCode == .infrastructure)
        #expect(!Credential.basic(username: "u", password: "hunter2").description.contains("hunter2"))
    }
}

@Suite struct CredentialFileTests {
    func folder() throws -> URL { try RegistryTools.temporaryDirectory("creds") }

    @Test func dockerConfigAuthsAreDecoded() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let auth = Data("alice:s3cret:with:colons".utf8).base64EncodedString()
        try Data(#"{"auths":{"https://reg.example:5000/v1/":{"auth":"\#(auth)"},"https://index.docker.io/v1/":{"identitytoken":"tok"}}}"#.utf8)
            .write(to: dir.appendingPathComponent("config.json"))
        let creds = DockerCredentials(environment: ["HOME": "/nonexistent", "DOCKER_CONFIG": dir.path])
        #expect(try creds.credential(for: "reg.example:5000") == .basic(username: "alice", password: "s3cret:with:colons"))
        #expect(try creds.credential(for: "docker.io") == .identityToken("tok"))
        #expect(try creds.credential(for: "other.example") == nil)
    }

    @Test func anAuthFileWrittenForHostsReadsBackTheSameCredentials() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let given: [String: Credential] = ["reg.example:5000": .basic(username: "u", password: "p:w"), "docker.io": .identityToken("t")]
        try Credential.authFile(given).write(to: dir.appendingPathComponent("auth.json"))
        let creds = DockerCredentials(environment: ["REGISTRY_AUTH_FILE": dir.appendingPathComponent("auth.json").path, "DOCKER_CONFIG": dir.path + "/none"])
        for (registry, credential) in given { #expect(try creds.credential(for: registry) == credential) }
    }

    @Test func registryAuthFileComesBeforeDockerConfig() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(#"{"auths":{"reg.example":{"username":"docker","password":"d"}}}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        let authFile = dir.appendingPathComponent("auth.json")
        try Data(#"{"auths":{"reg.example":{"auth":"\#(Data("podman:p".utf8).base64EncodedString())"}}}"#.utf8).write(to: authFile)
        let creds = DockerCredentials(environment: ["DOCKER_CONFIG": dir.path, "REGISTRY_AUTH_FILE": authFile.path])
        #expect(try creds.credential(for: "reg.example") == .basic(username: "podman", password: "p"))
    }

    @Test func credentialHelpersAndStoresSpeakTheDockerProtocol() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bin = dir.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let script = """
        #!/bin/sh
        [ "$1" = get ] || exit 3
        read -r server
        echo "$server" >> "\(dir.path)/asked"
        case "$server" in
          ecr.example) echo '{"ServerURL":"ecr.example","Username":"AWS","Secret":"ecr-pass"}' ;;
          store.example) echo '{"ServerURL":"store.example","Username":"<token>","Secret":"refresh"}' ;;
          *) echo "credentials not found in native keychain"; exit 1 ;;
        esac
        """
        for name in ["docker-credential-ecr-login", "docker-credential-desktop"] {
            let path = bin.appendingPathComponent(name).path
            try Data(script.utf8).write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        try Data(#"{"credsStore":"desktop","credHelpers":{"ecr.example":"ecr-login"}}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        let creds = DockerCredentials(environment: ["DOCKER_CONFIG": dir.path, "PATH": bin.path + ":/usr/bin:/bin"])
        #expect(try creds.credential(for: "ecr.example") == .basic(username: "AWS", password: "ecr-pass"))
        #expect(try creds.credential(for: "store.example") == .identityToken("refresh"))
        #expect(try creds.credential(for: "nothing.example") == nil)
        let asked = try String(contentsOf: dir.appendingPathComponent("asked"), encoding: .utf8)
        #expect(asked.split(separator: "\n") == ["ecr.example", "store.example", "nothing.example"])
        let missing = DockerCredentials(environment: ["DOCKER_CONFIG": dir.path, "PATH": "/nonexistent"])
        #expect(throws: CredentialError.self) { try missing.credential(for: "ecr.example") }
    }
}
