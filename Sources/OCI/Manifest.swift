import Foundation

/// A single-image manifest: OCI image manifest or Docker schema 2 (same shape).
public struct ImageManifest: Hashable, Sendable, Codable {
    /// Always 2.
    public var schemaVersion: Int
    /// The media type field (optional in OCI).
    public var mediaType: String?
    /// Artifact type (OCI 1.1).
    public var artifactType: String?
    /// The config blob.
    public var config: Descriptor
    /// Layer blobs, base first.
    public var layers: [Descriptor]
    /// The manifest this one refers to (OCI 1.1).
    public var subject: Descriptor?
    /// Annotations.
    public var annotations: [String: String]?

    /// A manifest.
    public init(schemaVersion: Int = 2, mediaType: String?, config: Descriptor, layers: [Descriptor],
                annotations: [String: String]? = nil) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }

    /// Every blob this manifest needs in its repository: config first, then layers.
    public var blobs: [Descriptor] { [config] + layers }
}

/// An image index: OCI image index or Docker manifest list (same shape).
public struct ImageIndex: Hashable, Sendable, Codable {
    /// Always 2.
    public var schemaVersion: Int
    /// `application/vnd.oci.image.index.v1+json` or Docker's manifest list type.
    public var mediaType: String?
    /// Artifact type (OCI 1.1).
    public var artifactType: String?
    /// The child manifests.
    public var manifests: [Descriptor]
    /// Annotations (OCI only).
    public var annotations: [String: String]?

    /// An index.
    public init(mediaType: String, manifests: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }
}

/// The parts of an image config this tool reads: the platform it was built for.
public struct ImageConfig: Hashable, Sendable, Codable {
    /// GOARCH-style architecture.
    public var architecture: String
    /// Operating system.
    public var os: String
    /// CPU variant.
    public var variant: String?
    /// `os.version`.
    public var osVersion: String?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
        case osVersion = "os.version"
    }

    /// Parses a config blob.
    public init(parsing data: Data) throws {
        do { self = try JSONDecoder().decode(ImageConfig.self, from: data) } catch {
            throw OCIError.invalidDocument("image config without os/architecture (\(error.localizedDescription))")
        }
    }

    /// The normalised platform the config says the image runs on.
    public var platform: Platform { Platform(os: os, architecture: architecture, variant: variant, osVersion: osVersion) }
}

/// A manifest or index exactly as a registry served it: raw bytes, media type, digest, parsed content.
/// Keeping the bytes means a digest never changes by re-encoding.
public struct ManifestDocument: Sendable, Hashable {
    /// What the bytes are.
    public enum Content: Sendable, Hashable {
        /// A single image.
        case image(ImageManifest)
        /// An index or manifest list.
        case index(ImageIndex)
    }

    /// The exact bytes.
    public let raw: Data
    /// The media type (from `Content-Type`, else the document's `mediaType`).
    public let mediaType: String
    /// SHA-256 of `raw`.
    public let digest: Digest
    /// The parsed document.
    public let content: Content

    /// Parses `raw`; `mediaType` is the served `Content-Type` when known.
    public init(raw: Data, mediaType: String? = nil) throws {
        struct Probe: Decodable {
            var schemaVersion: Int?
            var mediaType: String?
            var manifests: [Descriptor]?
            var config: Descriptor?
        }
        let probe: Probe
        do { probe = try JSONDecoder().decode(Probe.self, from: raw) } catch {
            throw OCIError.invalidDocument("not JSON (\(error.localizedDescription))")
        }
        guard probe.schemaVersion == 2 else {
            throw OCIError.invalidDocument("schemaVersion \(probe.schemaVersion.map(String.init) ?? "missing"), expected 2")
        }
        let served = mediaType.map { $0.split(separator: ";")[0].trimmingCharacters(in: .whitespaces) }
        var type = probe.mediaType ?? served ?? ""
        if !MediaType.allManifests.contains(type), let served, MediaType.allManifests.contains(served) { type = served }
        if type.isEmpty || type == "application/json" || type == "application/octet-stream" {
            type = probe.manifests != nil ? MediaType.ociIndex : MediaType.ociManifest
        }
        do {
            if MediaType.isIndex(type) {
                content = .index(try JSONDecoder().decode(ImageIndex.self, from: raw))
            } else if MediaType.isImageManifest(type) {
                content = .image(try JSONDecoder().decode(ImageManifest.self, from: raw))
            } else {
                throw OCIError.unsupportedMediaType(type)
            }
        } catch let e as OCIError { throw e } catch {
            throw OCIError.invalidDocument("\(type): \(error.localizedDescription)")
        }
        self.raw = raw
        self.mediaType = type
        digest = Digest.sha256(of: raw)
    }

    /// Parses `raw` and checks it hashes to `expected`.
    public init(raw: Data, mediaType: String?, expecting expected: Digest) throws {
        try self.init(raw: raw, mediaType: mediaType)
        guard digest == expected else { throw OCIError.digestMismatch(expected: expected, actual: digest) }
    }

    /// A descriptor of this document (media type, digest, size).
    public var descriptor: Descriptor { Descriptor(mediaType: mediaType, digest: digest, size: Int64(raw.count)) }

    /// The index, when this is one.
    public var index: ImageIndex? { if case .index(let i) = content { return i } else { return nil } }

    /// The image manifest, when this is one.
    public var image: ImageManifest? { if case .image(let m) = content { return m } else { return nil } }
}
