import Foundation
import Support

/// One candidate child of a merged index: its descriptor and, for runnable images, the platform
/// read from its image config (nil for attestation manifests).
public struct IndexEntry: Hashable, Sendable {
    /// The child manifest's descriptor (annotations from a source index are kept).
    public var descriptor: Descriptor
    /// The platform from the child's config; nil for attestations.
    public var platform: Platform?

    /// An entry.
    public init(descriptor: Descriptor, platform: Platform?) {
        self.descriptor = descriptor
        self.platform = platform
    }
}

/// The outcome of assembling an index.
public struct AssembledIndex: Sendable, Hashable {
    /// The index exactly as it will be pushed.
    public var document: ManifestDocument
    /// Runnable images, in order, each with its platform.
    public var images: [Descriptor]
    /// Attestation manifests kept (after the images).
    public var attestations: [Descriptor]
    /// Entries left out: duplicates by digest, attestations of images not in the result.
    public var dropped: [Descriptor]

    /// The platforms of the images, in order.
    public var platforms: [Platform] { images.compactMap(\.platform) }
}

/// Builds an OCI image index (or Docker manifest list) from children, with the rules of a merge:
/// duplicates by digest removed, one image per normalised platform, attestations after the images and
/// only for images in the result, Docker list only when every child is Docker-typed and no annotation is set.
public struct IndexAssembler: Sendable {
    /// Index-level annotations; any forces an OCI index.
    public var annotations: [String: String]

    /// An assembler.
    public init(annotations: [String: String] = [:]) { self.annotations = annotations }

    /// The platform attestation entries carry in BuildKit's indexes.
    public static let unknownPlatform = Platform(os: "unknown", architecture: "unknown")

    /// Assembles `entries` into index bytes.
    public func assemble(_ entries: [IndexEntry]) throws -> AssembledIndex {
        var images: [Descriptor] = []
        var attestations: [Descriptor] = []
        var dropped: [Descriptor] = []
        var seen: Set<Digest> = []
        var byPlatform: [Platform: Digest] = [:]
        for entry in entries where !entry.descriptor.isAttestation {
            var d = entry.descriptor
            guard seen.insert(d.digest).inserted else { dropped.append(d); continue }
            guard let platform = entry.platform else {
                throw OCIError.invalidDocument("image \(d.digest) has no platform")
            }
            if let other = byPlatform[platform] { throw OCIError.duplicatePlatform(platform, other, d.digest) }
            byPlatform[platform] = d.digest
            d.platform = platform
            images.append(d)
        }
        guard !images.isEmpty else { throw OCIError.emptyIndex }
        for entry in entries where entry.descriptor.isAttestation {
            var d = entry.descriptor
            guard let target = d.attestedDigest, byPlatform.values.contains(target), seen.insert(d.digest).inserted else {
                dropped.append(d)
                continue
            }
            if d.platform == nil { d.platform = IndexAssembler.unknownPlatform }
            attestations.append(d)
        }
        let children = images + attestations
        let docker = annotations.isEmpty && children.allSatisfy { MediaType.isDocker($0.mediaType) }
        let mediaType = docker ? MediaType.dockerManifestList : MediaType.ociIndex
        let index = ImageIndex(mediaType: mediaType, manifests: children, annotations: annotations.isEmpty ? nil : annotations)
        let raw = try JSONOutput.encode(index)
        return AssembledIndex(document: try ManifestDocument(raw: raw, mediaType: mediaType), images: images,
                              attestations: attestations, dropped: dropped)
    }
}
