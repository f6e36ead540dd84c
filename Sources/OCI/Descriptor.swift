import Foundation

/// The media types of manifests and configs this tool reads and writes.
public enum MediaType {
    /// OCI image manifest.
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    /// OCI image index.
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    /// OCI image config.
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    /// Docker image manifest, schema 2.
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    /// Docker manifest list.
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    /// Docker image config.
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"

    /// Every manifest type, in the order sent in `Accept`.
    public static let allManifests = [ociIndex, ociManifest, dockerManifestList, dockerManifest]

    /// Whether `type` is an index or a manifest list.
    public static func isIndex(_ type: String) -> Bool { type == ociIndex || type == dockerManifestList }

    /// Whether `type` is a single-image manifest.
    public static func isImageManifest(_ type: String) -> Bool { type == ociManifest || type == dockerManifest }

    /// Whether `type` belongs to Docker's family rather than OCI's.
    public static func isDocker(_ type: String) -> Bool { type.hasPrefix("application/vnd.docker.") }
}

/// The annotation keys BuildKit uses to attach attestation manifests to the image they describe.
public enum AttestationAnnotation {
    /// `vnd.docker.reference.type`; `attestation-manifest` marks an attestation.
    public static let type = "vnd.docker.reference.type"
    /// `vnd.docker.reference.digest`: the digest of the image it describes.
    public static let digest = "vnd.docker.reference.digest"
    /// The value of `type` that marks an attestation manifest.
    public static let attestationManifest = "attestation-manifest"
}

/// A content descriptor: what a manifest says about a blob or another manifest.
public struct Descriptor: Hashable, Sendable, Codable {
    /// Media type of the referenced content.
    public var mediaType: String
    /// Its digest.
    public var digest: Digest
    /// Its size in bytes.
    public var size: Int64
    /// The platform, in an index entry.
    public var platform: Platform?
    /// Annotations.
    public var annotations: [String: String]?
    /// Alternative download URLs (foreign layers).
    public var urls: [String]?
    /// Artifact type (OCI 1.1).
    public var artifactType: String?

    /// A descriptor.
    public init(mediaType: String, digest: Digest, size: Int64, platform: Platform? = nil,
                annotations: [String: String]? = nil, urls: [String]? = nil, artifactType: String? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.platform = platform
        self.annotations = annotations
        self.urls = urls
        self.artifactType = artifactType
    }

    /// Whether this entry is a BuildKit attestation manifest (never a platform of its own).
    public var isAttestation: Bool { annotations?[AttestationAnnotation.type] == AttestationAnnotation.attestationManifest }

    /// For an attestation, the digest of the image it describes.
    public var attestedDigest: Digest? {
        guard isAttestation, let d = annotations?[AttestationAnnotation.digest] else { return nil }
        return try? Digest(parsing: d)
    }
}
