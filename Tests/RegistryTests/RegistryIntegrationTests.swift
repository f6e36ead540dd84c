import Foundation
import Testing
import TestHarness
@testable import OCI
@testable import Registry

/// Shared helpers for the tests that run against a real docker-registry.
enum Live {
    static let fastRetry = RetryPolicy(maxAttempts: 5, initialDelay: 0.05, maxDelay: 2, maxTotal: 15)

    static func images() throws -> RegistryImages { try RegistryImages.shared.get() }

    static func client(_ credentials: any CredentialSource = StaticCredentials(), retry: RetryPolicy = fastRetry) -> RegistryClient {
        RegistryClient(RegistrySettings(credentials: credentials, retry: retry, requestTimeout: 20))
    }

    static func ref(_ s: String) throws -> Reference { try Reference(parsing: s) }

    static func skopeo(_ args: [String], check: Bool = true) throws -> RegistryTools.Output {
        try RegistryTools.run(try RegistryTools.require("skopeo"), args, check: check)
    }

    /// The `coordinator` executable built beside the test bundle.
    static func coordinator(_ args: [String], environment: [String: String] = [:]) throws -> RegistryTools.Output {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("coordinator").path
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw RegistryHarnessError("coordinator not built at \(exe)") }
        var env = ProcessInfo.processInfo.environment
        env["DOCKER_CONFIG"] = "/nonexistent-docker-config"
        env["REGISTRY_AUTH_FILE"] = "/nonexistent-auth.json"
        for (k, v) in environment { env[k] = v }
        return try RegistryTools.run(exe, args, environment: env, check: false)
    }

    /// A docker config folder whose config.json is `json`.
    static func dockerConfig(_ json: String) throws -> URL {
        let dir = try RegistryTools.temporaryDirectory("docker-config")
        try Data(json.utf8).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    static func sha256(_ data: Data) -> String { Digest.sha256(of: data).description }
}

@Suite(.serialized) struct MergeAgainstRealRegistryTests {
    @Test func twoArchesMergeIntoAnIndexThatSkopeoReadsWithTheSameDigest() async throws {
        let registry = try RegistryServer()
        defer { registry.stop() }
        let images = try Live.images()
        let amd = try images.pushImage(arch: "amd64", to: "\(registry.host)/src/amd:1")
        _ = try images.pushImage(arch: "arm64", to: "\(registry.host)/src/arm:1")
        let client = Live.client()
        let merger = Merger(client: client)
        let plan = try await merger.plan(sources: [try Live.ref("\(registry.host)/src/amd@\(amd)"), try Live.ref("\(registry.host)/src/arm:1")],
                                         targets: [try Live.ref("\(registry.host)/team/app:v1"), try Live.ref("\(registry.host)/team/app:latest")])
        #expect(plan.index.platforms.map(\.description) == ["linux/amd64", "linux/arm64"])
        let readCounts = client.requestCounts
        #expect(readCounts.byKind["manifest.get"] == 2)
        #expect(readCounts.byKind["blob.get"] == 2)
        let outcome = try await merger.push(plan)
        #expect(outcome.tags.count == 2)
        #expect(outcome.mounted == 4)  // config + one layer per child, mounted from src/* into team/app
        #expect(outcome.copied == 0)
        #expect(client.requestCounts.blobBytes == 2 * 0 + readCounts.blobBytes)  // no blob bytes beyond the two configs

        for tag in ["v1", "latest"] {
            let raw = try Live.skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(registry.host)/team/app:\(tag)"]).stdout
            #expect(Live.sha256(raw) == outcome.digest.description)
        }
        for arch in ["arm64", "amd64"] {
            let out = try Live.skopeo(["inspect", "--tls-verify=false", "--override-os", "linux", "--override-arch", arch,
                                       "docker://\(registry.host)/team/app:v1"]).stdout
            let json = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
            #expect(json["Architecture"] as? String == arch)
        }
        let inspected = try Live.coordinator(["inspect", "\(registry.host)/team/app:v1"])
        #expect(inspected.status == 0)
        #expect(inspected.text.contains("linux/arm64") && inspected.text.contains(outcome.digest.description))
        let raw = try Live.coordinator(["inspect", "--raw", "\(registry.host)/team/app:v1"])
        #expect(Live.sha256(raw.stdout) == outcome.digest.description)
    }

    @Test func dockerTypedChildrenInOneRepositoryMakeADockerListWithMinimalRequests() async throws {
        let registry = try RegistryServer()
        defer { registry.stop() }
        let images = try Live.images()
        try images.pushImage(arch: "amd64", format: "docker", to: "\(registry.host)/app:amd64")
        try images.pushImage(arch: "arm", variant: "v7", format: "docker", to: "\(registry.host)/app:armv7")
        let client = Live.client()
        let merger = Merger(client: client)
        let plan = try await merger.plan(sources: [try Live.ref("\(registry.host)/app:amd64"), try Live.ref("\(registry.host)/app:armv7")],
                                         targets: [try Live.ref("\(registry.host)/app:multi")])
        let outcome = try await merger.push(plan)
        #expect(outcome.mediaType == MediaType.dockerManifestList)
        #expect(plan.index.platforms.map(\.description) == ["linux/amd64", "linux/arm/v7"])
        let counts = client.requestCounts
        #expect(counts.byKind["manifest.get"] == 2)
        #expect(counts.byKind["blob.get"] == 2)
        #expect(counts.byKind["manifest.put"] == 1)
        #expect(counts.byKind["blob.mount"] == nil)
        let raw = try Live.skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(registry.host)/app:multi"]).stdout
        #expect(Live.sha256(raw) == outcome.digest.description)
        #expect(String(decoding: raw, as: UTF8.self).contains(MediaType.dockerManifestList))
    }

    @Test func indexSourceIsFlattenedAndItsAttestationKeptAfterTheImages() async throws {
        let registry = try RegistryServer()
        defer { registry.stop() }
        let images = try Live.images()
        let amd = try Digest(parsing: try images.pushImage(arch: "amd64", to: "\(registry.host)/src:amd64"))
        let arm = try Digest(parsing: try images.pushImage(arch: "arm64", to: "\(registry.host)/src:arm64"))
        let client = Live.client()
        let src = try Live.ref("\(registry.host)/src:multi")
        // A BuildKit-style attestation manifest for the amd64 image.
        let config = try await client.pushBlob(Data(#"{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}"#.utf8), to: src)
        let layer = try await client.pushBlob(Data(#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document"}"#.utf8), to: src)
        let attestation = ImageManifest(mediaType: MediaType.ociManifest,
                                        config: Descriptor(mediaType: MediaType.ociConfig, digest: config.digest, size: config.size),
                                        layers: [Descriptor(mediaType: "application/vnd.in-toto+json", digest: layer.digest, size: layer.size,
                                                            annotations: ["in-toto.io/predicate-type": "https://spdx.dev/Document"])])
        let attestationRaw = try JSONEncoder().encode(attestation)
        let attestationDigest = try await client.putManifest(attestationRaw, mediaType: MediaType.ociManifest, to: src.with(digest: Digest.sha256(of: attestationRaw)))
        func size(_ d: Digest) async throws -> Int64 { try await client.headManifest(src.with(digest: d))!.size }
        let source = ImageIndex(mediaType: MediaType.ociIndex, manifests: [
            Descriptor(mediaType: MediaType.ociManifest, digest: amd, size: try await size(amd), platform: try Platform(parsing: "linux/amd64")),
            Descriptor(mediaType: MediaType.ociManifest, digest: attestationDigest, size: Int64(attestationRaw.count),
                       platform: IndexAssembler.unknownPlatform,
                       annotations: [AttestationAnnotation.type: AttestationAnnotation.attestationManifest, AttestationAnnotation.digest: amd.description]),
            // The caller's platform is wrong on purpose: the config (arm64) wins.
            Descriptor(mediaType: MediaType.ociManifest, digest: arm, size: try await size(arm), platform: try Platform(parsing: "linux/s390x")),
        ])
        try await client.putManifest(try JSONEncoder().encode(source), mediaType: MediaType.ociIndex, to: src)

        let merger = Merger(client: client)
        let plan = try await merger.plan(sources: [src], targets: [try Live.ref("\(registry.host)/dst:v1")])
        #expect(plan.index.platforms.map(\.description) == ["linux/amd64", "linux/arm64"])
        #expect(plan.index.attestations.map(\.digest) == [attestationDigest])
        let outcome = try await merger.push(plan)
        let raw = try Live.skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(registry.host)/dst:v1"]).stdout
        #expect(Live.sha256(raw) == outcome.digest.description)
        let pushed = try ManifestDocument(raw: raw)
        #expect(pushed.index?.manifests.map(\.digest) == [amd, arm, attestationDigest])
        // The attestation and its blobs came along into dst.
        _ = try Live.skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(registry.host)/dst@\(attestationDigest)"])
        #expect(try await client.blobExists(try Live.ref("\(registry.host)/dst"), digest: layer.digest))
    }

    @Test func samePlatformTwiceIsRefusedWithExitTwo() async throws {
        let registry = try RegistryServer()
        defer { registry.stop() }
        let images = try Live.images()
        try images.pushImage(arch: "amd64", to: "\(registry.host)/app:a")
        try images.pushImage(arch: "amd64", content: "other", to: "\(registry.host)/app:b")
        let out = try Live.coordinator(["merge", "-t", "\(registry.host)/app:v1", "\(registry.host)/app:a", "\(registry.host)/app:b"])
        #expect(out.status == 2)
        #expect(out.stderr.contains("linux/amd64"))
    }

    @Test func dryRunPrintsTheExactIndexAndLeavesTheRegistryUnchanged() async throws {
        let registry = try RegistryServer()
        defer { registry.stop() }
        let images = try Live.images()
        try images.pushImage(arch: "amd64", to: "\(registry.host)/src:amd64")
        try images.pushImage(arch: "arm64", to: "\(registry.host)/src:arm64")
        let catalog = { try Live.skopeo(["list-tags", "--tls-verify=false", "docker://\(registry.host)/src"]).text }
        let before = try catalog()
        let out = try Live.coordinator(["merge", "--dry-run", "--annotation", "org.opencontainers.image.version=1.0",
                                        "-t", "\(registry.host)/dst:v1", "\(registry.host)/src:amd64", "\(registry.host)/src:arm64"])
        #expect(out.status == 0)
        var json = out.stdout
        if json.last == 10 { json.removeLast() }
        let doc = try ManifestDocument(raw: json)
        #expect(out.stderr.contains(doc.digest.description))
        #expect(doc.index?.annotations?["org.opencontainers.image.version"] == "1.0")
        #expect(doc.mediaType == MediaType.ociIndex)
        #expect(try catalog() == before)
        #expect(try await Live.client().headManifest(try Live.ref("\(registry.host)/dst:v1")) == nil)
        #expect(try await Live.client().headManifest(try Live.ref("\(registry.host)/src:v1")) == nil)
        // The real run pushes exactly the bytes the dry run printed.
        let real = try Live.coordinator(["merge", "--annotation", "org.opencontainers.image.version=1.0",
                                         "-t", "\(registry.host)/dst:v1", "\(registry.host)/src:amd64", "\(registry.host)/src:arm64"])
        #expect(real.status == 0)
        #expect(real.text.trimmingCharacters(in: .whitespacesAndNewlines) == doc.digest.description)
    }
}

@Suite(.serialized) struct RegistryAuthTests {
    @Test func basicAuthFromDockerConfigWorksAndAWrongPasswordIsAClearErrorWithoutTheSecret() async throws {
        let registry = try RegistryServer(auth: .htpasswd(user: "alice", password: "pw-S3cret"))
        defer { registry.stop() }
        let images = try Live.images()
        try images.pushImage(arch: "amd64", to: "\(registry.host)/app:amd64", credentials: "alice:pw-S3cret")
        try images.pushImage(arch: "arm64", to: "\(registry.host)/app:arm64", credentials: "alice:pw-S3cret")
        let good = try Live.dockerConfig(#"{"auths":{"\#(registry.host)":{"auth":"\#(Data("alice:pw-S3cret".utf8).base64EncodedString())"}}}"#)
        defer { try? FileManager.default.removeItem(at: good) }
        let client = Live.client(DockerCredentials(environment: ["DOCKER_CONFIG": good.path]))
        let merger = Merger(client: client)
        let outcome = try await merger.push(try await merger.plan(sources: [try Live.ref("\(registry.host)/app:amd64"), try Live.ref("\(registry.host)/app:arm64")],
                                                                 targets: [try Live.ref("\(registry.host)/app:v1")]))
        let raw = try Live.skopeo(["inspect", "--raw", "--tls-verify=false", "--creds", "alice:pw-S3cret", "docker://\(registry.host)/app:v1"]).stdout
        #expect(Live.sha256(raw) == outcome.digest.description)

        let bad = StaticCredentials([registry.host: .basic(username: "alice", password: "WRONG-pw-9f8e")])
        await #expect { try await Live.client(bad).fetchManifest(try Live.ref("\(registry.host)/app:v1")) } throws: { error in
            guard let e = error as? RegistryError else { return false }
            return e.kind == .unauthorized && e.description.contains(registry.host) && e.description.contains("app")
                && !e.description.contains("WRONG-pw-9f8e") && e.exitCode == .infrastructure
        }
        // The CLI: no credentials → 401 → exit 4; a wrong password never shows.
        let anonymous = try Live.coordinator(["inspect", "\(registry.host)/app:v1"])
        #expect(anonymous.status == 4)
        #expect(anonymous.stderr.contains("401") && anonymous.stderr.contains(registry.host))
        let wrong = try Live.dockerConfig(#"{"auths":{"\#(registry.host)":{"username":"alice","password":"WRONG-pw-9f8e"}}}"#)
        defer { try? FileManager.default.removeItem(at: wrong) }
        let refused = try Live.coordinator(["merge", "-t", "\(registry.host)/app:v2", "\(registry.host)/app:amd64"], environment: ["DOCKER_CONFIG": wrong.path])
        #expect(refused.status == 4)
        #expect(!refused.stderr.contains("WRONG-pw-9f8e") && !refused.text.contains("WRONG-pw-9f8e"))
    }

    @Test func tokenFlowWithACredentialHelperOnPath() async throws {
        let issuer = try RegistryTokenIssuer(user: "bob", password: "tok-pw-7c1")
        defer { issuer.stop() }
        let registry = try RegistryServer(auth: .token(realm: issuer.realm, service: issuer.service, issuer: issuer.issuer,
                                                       certificate: issuer.certificatePath))
        defer { registry.stop() }
        let images = try Live.images()
        try images.pushImage(arch: "amd64", to: "\(registry.host)/team/a:1", credentials: "bob:tok-pw-7c1")
        try images.pushImage(arch: "arm64", to: "\(registry.host)/team/b:1", credentials: "bob:tok-pw-7c1")
        let config = try Live.dockerConfig(#"{"credHelpers":{"\#(registry.host)":"harness"}}"#)
        defer { try? FileManager.default.removeItem(at: config) }
        let bin = config.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let helper = bin.appendingPathComponent("docker-credential-harness").path
        try Data("#!/bin/sh\nread -r server\n[ \"$server\" = \"\(registry.host)\" ] || exit 1\necho '{\"ServerURL\":\"'$server'\",\"Username\":\"bob\",\"Secret\":\"tok-pw-7c1\"}'\n".utf8)
            .write(to: URL(fileURLWithPath: helper))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: helper)
        let path = bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let before = issuer.requests.count
        let out = try Live.coordinator(["merge", "-t", "\(registry.host)/team/app:v1", "\(registry.host)/team/a:1", "\(registry.host)/team/b:1"],
                                       environment: ["DOCKER_CONFIG": config.path, "PATH": path])
        #expect(out.status == 0, "\(out.stderr)")
        let ours = issuer.requests.dropFirst(before)
        #expect(!ours.isEmpty && ours.allSatisfy(\.authorized))
        #expect(ours.contains { $0.scopes.contains("repository:team/app:pull,push") && $0.scopes.contains("repository:team/a:pull") })
        let digest = out.text.trimmingCharacters(in: .whitespacesAndNewlines)
        let raw = try Live.skopeo(["inspect", "--raw", "--tls-verify=false", "--creds", "bob:tok-pw-7c1", "docker://\(registry.host)/team/app:v1"]).stdout
        #expect(Live.sha256(raw) == digest)
        // An identity token (OAuth2 refresh token) goes through the POST grant and reads the same index.
        let viaRefresh = Live.client(StaticCredentials([registry.host: .identityToken(issuer.refreshToken)]))
        let fetched = try await viaRefresh.fetchManifest(try Live.ref("\(registry.host)/team/app:v1"))
        #expect(fetched.digest.description == digest)
        #expect(issuer.requests.last?.authorized == true)
        // Without credentials the issuer grants nothing: a clear 401, exit 4.
        let anonymous = try Live.coordinator(["inspect", "\(registry.host)/team/app:v1"])
        #expect(anonymous.status == 4)
        #expect(anonymous.stderr.contains("repository team/app"))
    }
}

@Suite(.serialized) struct RegistryFaultTests {
    struct Setup {
        let registry: RegistryServer
        let proxy: RegistryFaultProxy
        func stop() { proxy.stop(); registry.stop() }
    }

    static func setUp() throws -> Setup {
        let registry = try RegistryServer()
        let images = try Live.images()
        try images.pushImage(arch: "amd64", to: "\(registry.host)/src:amd64")
        try images.pushImage(arch: "arm64", to: "\(registry.host)/src:arm64")
        return Setup(registry: registry, proxy: try RegistryFaultProxy(upstreamPort: registry.port))
    }

    static func sources(_ host: String) throws -> [Reference] {
        [try Live.ref("\(host)/src:amd64"), try Live.ref("\(host)/src:arm64")]
    }

    @Test func tooManyRequestsUnavailableAndResetsAreRetriedAndSucceed() async throws {
        let s = try Self.setUp()
        defer { s.stop() }
        let host = s.proxy.host
        s.proxy.inject(.status(429, retryAfter: "1", code: "TOOMANYREQUESTS")) { $0.method == "GET" && $0.path.contains("/manifests/") }
        s.proxy.inject(.status(503)) { $0.method == "GET" && $0.path.contains("/blobs/") }
        s.proxy.inject(.reset) { $0.method == "PUT" && $0.path.hasSuffix("/manifests/v1") }
        s.proxy.inject(.reset) { $0.method == "POST" && $0.target.contains("mount=") }
        let client = Live.client()
        let merger = Merger(client: client)
        let start = Date()
        let outcome = try await merger.push(try await merger.plan(sources: try Self.sources(host), targets: [try Live.ref("\(host)/dst:v1")]))
        #expect(Date().timeIntervalSince(start) >= 1)  // Retry-After honoured
        #expect(s.proxy.pendingFaults == 0)
        #expect(client.requestCounts.retries == 4)
        let raw = try Live.skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(s.registry.host)/dst:v1"]).stdout
        #expect(Live.sha256(raw) == outcome.digest.description)
    }

    @Test func retriesAreBoundedInCount() async throws {
        let s = try Self.setUp()
        defer { s.stop() }
        for _ in 0..<10 { s.proxy.inject(.status(503)) { $0.method == "GET" && $0.path.contains("/manifests/") } }
        let client = Live.client(retry: RetryPolicy(maxAttempts: 3, initialDelay: 0.01, maxDelay: 0.05, maxTotal: 5))
        await #expect { try await client.fetchManifest(try Live.ref("\(s.proxy.host)/src:amd64")) } throws: { error in
            guard let e = error as? RegistryError else { return false }
            return e.status == 503 && e.isTemporary && e.description.contains("gave up after 3 attempts") && e.description.contains("repository src")
        }
        #expect(s.proxy.requests.filter { $0.hasPrefix("GET") && $0.contains("/manifests/") }.count == 3)
    }

    @Test func notFoundAndDeniedAreClearErrorsWithExitFour() throws {
        let s = try Self.setUp()
        defer { s.stop() }
        let missing = try Live.coordinator(["merge", "-t", "\(s.registry.host)/dst:v1", "\(s.registry.host)/nope:1"])
        #expect(missing.status == 4)
        #expect(missing.stderr.contains("registry \(s.registry.host)") && missing.stderr.contains("repository nope"))
        #expect(missing.stderr.contains("MANIFEST_UNKNOWN") || missing.stderr.contains("NAME_UNKNOWN"))
        s.proxy.inject(.status(403, code: "DENIED")) { $0.method == "GET" }
        let denied = try Live.coordinator(["inspect", "\(s.proxy.host)/src:amd64"])
        #expect(denied.status == 4)
        #expect(denied.stderr.contains("access denied") && denied.stderr.contains("repository src"))
        let usage = try Live.coordinator(["merge", "-t", "\(s.registry.host)/Bad Name", "\(s.registry.host)/src:amd64"])
        #expect(usage.status == 2)
        let noTag = try Live.coordinator(["merge", "\(s.registry.host)/src:amd64"])
        #expect(noTag.status == 2)
    }

    @Test func immutableTagWithTheSameDigestIsSuccessAndAnotherDigestAClearError() async throws {
        let s = try Self.setUp()
        defer { s.stop() }
        let host = s.proxy.host
        let merger = Merger(client: Live.client())
        let first = try await merger.push(try await merger.plan(sources: try Self.sources(host), targets: [try Live.ref("\(host)/src:v1")]))
        s.proxy.inject(.status(400, code: "TAG_INVALID")) { $0.method == "PUT" && $0.path.hasSuffix("/manifests/v1") }
        let again = try await merger.push(try await merger.plan(sources: try Self.sources(host), targets: [try Live.ref("\(host)/src:v1")]))
        #expect(again.unchanged.map(\.description) == ["\(host)/src:v1"])
        #expect(again.digest == first.digest)
        s.proxy.inject(.status(400, code: "TAG_INVALID")) { $0.method == "PUT" && $0.path.hasSuffix("/manifests/v1") }
        let other = try await merger.plan(sources: try Self.sources(host), targets: [try Live.ref("\(host)/src:v1")],
                                          annotations: ["k": "v"])
        await #expect { try await merger.push(other) } throws: { error in
            (error as? RegistryError)?.kind == .tagImmutable && "\(error)".contains(first.digest.description)
        }
    }

    @Test func missingChildrenOnPutAreBroughtInAndThePutRetriedOnce() async throws {
        let s = try Self.setUp()
        defer { s.stop() }
        let host = s.proxy.host
        s.proxy.inject(.status(400, code: "MANIFEST_BLOB_UNKNOWN")) { $0.method == "PUT" && $0.path.hasSuffix("/manifests/v2") }
        let merger = Merger(client: Live.client())
        let outcome = try await merger.push(try await merger.plan(sources: try Self.sources(host), targets: [try Live.ref("\(host)/src:v2")]))
        #expect(outcome.tags.count == 1)
        #expect(s.proxy.requests.filter { $0 == "PUT /v2/src/manifests/v2" }.count == 2)
    }

    @Test func aDeclinedMountFallsBackToCopyingTheBlob() async throws {
        let s = try Self.setUp()
        defer { s.stop() }
        let host = s.proxy.host
        s.proxy.inject(.forwardWithoutQuery) { $0.method == "POST" && $0.target.contains("mount=") }
        let client = Live.client()
        let merger = Merger(client: client)
        let outcome = try await merger.push(try await merger.plan(sources: try Self.sources(host), targets: [try Live.ref("\(host)/dst:v1")]))
        #expect(outcome.copied == 1 && outcome.mounted == 3)
        for arch in ["arm64", "amd64"] {
            _ = try Live.skopeo(["inspect", "--tls-verify=false", "--override-os", "linux", "--override-arch", arch,
                                 "docker://\(s.registry.host)/dst:v1"])
        }
    }
}
