import Foundation
import Testing
@testable import OCI

@Suite struct ReferenceTests {
    @Test func dockerHubDefaultsApplyLibraryAndLatest() throws {
        let r = try Reference(parsing: "alpine")
        #expect(r.registry == "docker.io")
        #expect(r.repository == "library/alpine")
        #expect(r.tag == "latest")
        #expect(r.description == "docker.io/library/alpine:latest")
        #expect(try Reference(parsing: "index.docker.io/team/app:1").description == "docker.io/team/app:1")
    }

    @Test func registryWithPortTagAndDigestParse() throws {
        let d = "sha256:" + String(repeating: "ab", count: 32)
        let r = try Reference(parsing: "127.0.0.1:5000/team/app:v1.2@\(d)")
        #expect(r.registry == "127.0.0.1:5000")
        #expect(r.repository == "team/app")
        #expect(r.tag == "v1.2")
        #expect(r.digest?.description == d)
        #expect(r.manifestIdentifier == d)
        #expect(r.isLoopback)
        let local = try Reference(parsing: "localhost/app")
        #expect(local.registry == "localhost" && local.repository == "app")
        let v6 = try Reference(parsing: "[::1]:5000/app:x")
        #expect(v6.registry == "[::1]:5000" && v6.isLoopback)
        #expect(try !Reference(parsing: "ghcr.io/o/app").isLoopback)
        #expect(try Reference(parsing: "app", defaultTag: nil).tag == nil)
    }

    @Test(arguments: ["", "Team/App", "app:-bad", "app@sha256:abc", "app@md5:" + String(repeating: "a", count: 32),
                      "host:notaport/app", "a//b", "app-", "reg.io/UPPER", "app:" + String(repeating: "t", count: 129)])
    func invalidReferencesAreRefusedWithAReason(_ text: String) {
        #expect(throws: OCIError.self) { try Reference(parsing: text) }
    }

    @Test func componentSeparatorsFollowTheGrammar() throws {
        for ok in ["a.b", "a_b", "a__b", "a---b", "a1/b2/c3"] { _ = try Reference(parsing: "r.io/\(ok)") }
        for bad in ["a___b", "a..b", "_a", "a._b"] {
            #expect(throws: OCIError.self) { try Reference(parsing: "r.io/\(bad)") }
        }
    }
}

@Suite struct DigestTests {
    @Test func sha256VectorsMatch() throws {
        #expect(Digest.sha256(of: Data()).description == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.sha256(of: Data("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let d = try Digest(parsing: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(d.matches(Data("abc".utf8)))
        #expect(!d.matches(Data("abd".utf8)))
    }

    @Test func malformedDigestsAreRefused() {
        for bad in ["sha256:ABC", "sha256:" + String(repeating: "A", count: 64), "nope", "sha1:" + String(repeating: "a", count: 40)] {
            #expect(throws: OCIError.self) { try Digest(parsing: bad) }
        }
    }

    @Test func documentsKeepTheirExactBytesAndDigest() throws {
        // Odd spacing: re-encoding would change the digest, keeping raw bytes must not.
        let raw = Data(#"{ "schemaVersion":2,  "mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#.utf8)
        let doc = try ManifestDocument(raw: raw, mediaType: nil)
        #expect(doc.raw == raw)
        #expect(doc.digest == Digest.sha256(of: raw))
        #expect(doc.mediaType == MediaType.ociManifest)
        #expect(doc.image?.config.size == 0)
        #expect(throws: OCIError.self) {
            try ManifestDocument(raw: raw, mediaType: nil, expecting: Digest.sha256(of: Data("x".utf8)))
        }
    }

    @Test func schemaOneAndGarbageAreRefused() {
        #expect(throws: OCIError.self) { try ManifestDocument(raw: Data(#"{"schemaVersion":1}"#.utf8)) }
        #expect(throws: OCIError.self) { try ManifestDocument(raw: Data("nope".utf8)) }
    }
}

@Suite struct IndexAssemblyTests {
    static func digest(_ s: String) -> Digest { Digest.sha256(of: Data(s.utf8)) }
    static func image(_ name: String, _ platform: String, docker: Bool = false) throws -> IndexEntry {
        IndexEntry(descriptor: Descriptor(mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest,
                                          digest: digest(name), size: 100),
                   platform: try Platform(parsing: platform))
    }
    static func attestation(_ name: String, of image: String) -> IndexEntry {
        IndexEntry(descriptor: Descriptor(mediaType: MediaType.ociManifest, digest: digest(name), size: 50,
                                          annotations: [AttestationAnnotation.type: AttestationAnnotation.attestationManifest,
                                                        AttestationAnnotation.digest: digest(image).description]),
                   platform: nil)
    }

    @Test func twoPlatformsMakeAnOCIIndexWithPlatformsFromConfigs() throws {
        let out = try IndexAssembler().assemble([try Self.image("a", "amd64"), try Self.image("b", "aarch64")])
        #expect(out.document.mediaType == MediaType.ociIndex)
        #expect(out.platforms.map(\.description) == ["linux/amd64", "linux/arm64"])
        let index = try #require(out.document.index)
        #expect(index.schemaVersion == 2)
        #expect(index.manifests.map(\.digest) == [Self.digest("a"), Self.digest("b")])
        #expect(out.document.digest == Digest.sha256(of: out.document.raw))
        let text = String(decoding: out.document.raw, as: UTF8.self)
        #expect(!text.contains("features"))
    }

    @Test func dockerChildrenMakeADockerListUnlessAnnotated() throws {
        let entries = [try Self.image("a", "amd64", docker: true), try Self.image("b", "arm64", docker: true)]
        #expect(try IndexAssembler().assemble(entries).document.mediaType == MediaType.dockerManifestList)
        let annotated = try IndexAssembler(annotations: ["org.opencontainers.image.source": "x"]).assemble(entries)
        #expect(annotated.document.mediaType == MediaType.ociIndex)
        #expect(annotated.document.index?.annotations?["org.opencontainers.image.source"] == "x")
        let mixed = try IndexAssembler().assemble([entries[0], try Self.image("c", "arm/v7")])
        #expect(mixed.document.mediaType == MediaType.ociIndex)
    }

    @Test func duplicatesByDigestAreRemovedAndSamePlatformRefused() throws {
        let out = try IndexAssembler().assemble([try Self.image("a", "amd64"), try Self.image("a", "amd64"), try Self.image("b", "arm64")])
        #expect(out.images.count == 2)
        #expect(out.dropped.count == 1)
        #expect(throws: OCIError.duplicatePlatform(try Platform(parsing: "linux/arm64"), Self.digest("a"), Self.digest("b"))) {
            try IndexAssembler().assemble([try Self.image("a", "arm64/v8"), try Self.image("b", "aarch64")])
        }
    }

    @Test func attestationsComeLastAndOnlyForImagesInTheResult() throws {
        let out = try IndexAssembler().assemble([
            Self.attestation("att-a", of: "a"), try Self.image("a", "amd64"),
            Self.attestation("att-gone", of: "gone"), try Self.image("b", "arm64"),
        ])
        #expect(out.images.map(\.digest) == [Self.digest("a"), Self.digest("b")])
        #expect(out.attestations.map(\.digest) == [Self.digest("att-a")])
        #expect(out.attestations.first?.platform == IndexAssembler.unknownPlatform)
        #expect(out.platforms.count == 2)
        #expect(out.document.index?.manifests.last?.digest == Self.digest("att-a"))
        #expect(out.dropped.map(\.digest) == [Self.digest("att-gone")])
    }

    @Test func nothingRunnableIsRefused() {
        #expect(throws: OCIError.emptyIndex) { try IndexAssembler().assemble([Self.attestation("x", of: "a")]) }
    }

    @Test func configPlatformIsNormalised() throws {
        let c = try ImageConfig(parsing: Data(#"{"architecture":"aarch64","os":"linux","variant":"v8","rootfs":{}}"#.utf8))
        #expect(c.platform.description == "linux/arm64")
        let w = try ImageConfig(parsing: Data(#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1"}"#.utf8))
        #expect(w.platform.osVersion == "10.0.17763.1")
    }
}
