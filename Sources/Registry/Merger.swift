import Foundation
import OCI

/// A child manifest found while resolving merge sources, with where it lives.
public struct ResolvedChild: Sendable, Hashable {
    /// Where it was read (repository @ digest).
    public var source: Reference
    /// Its exact bytes.
    public var document: ManifestDocument
    /// The entry it becomes in the index (platform from its config; nil for attestations).
    public var entry: IndexEntry
}

/// What a merge will push: the assembled index, the targets, and every child it points at.
public struct MergePlan: Sendable {
    /// Tags to push the index under.
    public var targets: [Reference]
    /// The index, exactly as it will be pushed.
    public var index: AssembledIndex
    /// Children kept in the index, by digest.
    public var children: [Digest: ResolvedChild]

    /// The platform `digest`'s config declares (nil for attestations and unknown digests), to check a build's result.
    public func platform(of digest: Digest) -> Platform? { children[digest]?.entry.platform }
}

/// What a merge did.
public struct MergeOutcome: Sendable, Hashable {
    /// The index digest.
    public var digest: Digest
    /// Its media type.
    public var mediaType: String
    /// Tags now pointing at it.
    public var tags: [Reference]
    /// Tags that already held exactly this index (immutable tags: success).
    public var unchanged: [Reference]
    /// Blobs mounted across repositories, and blobs copied because the registry would not mount.
    public var mounted: Int, copied: Int
}

/// Merges per-arch manifests into one index: reads every child's manifest and config (in parallel),
/// assembles the index with `IndexAssembler`, brings children from other repositories of the same
/// registry into the target repository by mount, and pushes the index once per tag.
public struct Merger: Sendable {
    /// The client used for every request.
    public let client: RegistryClient

    /// A merger.
    public init(client: RegistryClient) { self.client = client }

    /// Reads the sources and assembles the index; writes nothing.
    public func plan(sources: [Reference], targets: [Reference], annotations: [String: String] = [:]) async throws -> MergePlan {
        guard let registry = targets.first?.registry else {
            throw RegistryError(.unsupported, registry: sources.first?.registry ?? "?", detail: "no target tag given")
        }
        for t in targets where t.tag == nil || t.digest != nil {
            throw RegistryError(.unsupported, registry: t.registry, repository: t.repository, detail: "target \(t) must be a tag, not a digest")
        }
        for r in sources + targets where r.registry != registry {
            throw RegistryError(.unsupported, registry: r.registry, repository: r.repository,
                                detail: "every source and target must be on one registry (\(registry)); copy across registries first")
        }
        let resolved = try await withThrowingTaskGroup(of: (Int, [ResolvedChild]).self) { group in
            for (i, source) in sources.enumerated() { group.addTask { (i, try await resolve(source)) } }
            var out = [[ResolvedChild]](repeating: [], count: sources.count)
            for try await (i, children) in group { out[i] = children }
            return out.flatMap { $0 }
        }
        let index = try IndexAssembler(annotations: annotations).assemble(resolved.map(\.entry))
        var children: [Digest: ResolvedChild] = [:]
        let kept = Set((index.images + index.attestations).map(\.digest))
        for child in resolved where kept.contains(child.document.digest) && children[child.document.digest] == nil {
            children[child.document.digest] = child
        }
        return MergePlan(targets: targets, index: index, children: children)
    }

    /// Pushes `plan`: children into each target repository that lacks them, then the index under every tag.
    public func push(_ plan: MergePlan) async throws -> MergeOutcome {
        let document = plan.index.document
        var mounted = 0, copied = 0
        var tags: [Reference] = [], unchanged: [Reference] = []
        var prepared: Set<String> = []
        for target in plan.targets {
            if prepared.insert(target.repository).inserted {
                let foreign = plan.children.values.filter { $0.source.repository != target.repository }
                let (m, c) = try await bring(foreign, into: target)
                mounted += m; copied += c
            }
            do {
                try await putOnce(document, to: target)
                tags.append(target)
            } catch let e as RegistryError where e.has(code: "MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN") {
                // The registry lacks a child in this repository: bring every child in, then retry once.
                let (m, c) = try await bring(Array(plan.children.values), into: target)
                mounted += m; copied += c
                try await putOnce(document, to: target)
                tags.append(target)
            } catch let e as RegistryError where [400, 409].contains(e.status ?? 0) || e.kind == .denied {
                // Immutable tags (ECR): the same digest already there is success; another one is a clear error.
                guard let existing = try? await client.headManifest(target) else { throw e }
                let immutable = e.has(code: "TAG_INVALID") || e.status == 409
                    || e.errors.contains { ($0.message ?? "").lowercased().contains("immutable") || ($0.message ?? "").contains("already exists") }
                guard existing.digest == document.digest else {
                    guard immutable else { throw e }
                    throw RegistryError(.tagImmutable, registry: target.registry, repository: target.repository,
                                        status: e.status, errors: e.errors,
                                        detail: "tag \(target.tag ?? "") holds \(existing.digest) and the registry refused to move it to \(document.digest)")
                }
                unchanged.append(target)
            }
        }
        return MergeOutcome(digest: document.digest, mediaType: document.mediaType, tags: tags, unchanged: unchanged,
                            mounted: mounted, copied: copied)
    }

    private func putOnce(_ document: ManifestDocument, to target: Reference) async throws {
        try await client.putManifest(document.raw, mediaType: document.mediaType, to: target)
    }

    /// Mounts each child's blobs into `target`'s repository and puts the child manifest there by digest.
    func bring(_ children: [ResolvedChild], into target: Reference) async throws -> (Int, Int) {
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for child in children {
                group.addTask {
                    var m = 0, c = 0
                    for blob in child.document.image?.blobs ?? [] {
                        if try await client.mountBlob(blob, from: child.source, to: target) { m += 1 } else { c += 1 }
                    }
                    try await client.putManifest(child.document.raw, mediaType: child.document.mediaType,
                                                 to: target.with(digest: child.document.digest))
                    return (m, c)
                }
            }
            var total = (0, 0)
            for try await (m, c) in group { total.0 += m; total.1 += c }
            return total
        }
    }

    /// One source → its children: an image gives itself (platform from its config); an index gives each
    /// of its entries (nested indexes flattened), attestations as they are.
    func resolve(_ source: Reference) async throws -> [ResolvedChild] {
        let document = try await client.fetchManifest(source)
        let at = source.with(digest: document.digest)
        switch document.content {
        case .image(let manifest):
            let (config, _) = try await client.fetchConfig(at, manifest: manifest)
            return [ResolvedChild(source: at, document: document, entry: IndexEntry(descriptor: document.descriptor, platform: config.platform))]
        case .index(let index):
            return try await withThrowingTaskGroup(of: (Int, [ResolvedChild]).self) { group in
                for (i, d) in index.manifests.enumerated() {
                    group.addTask {
                        let ref = source.with(digest: d.digest)
                        if MediaType.isIndex(d.mediaType) { return (i, try await resolve(ref)) }
                        let child = try await client.fetchManifest(ref)
                        var descriptor = child.descriptor
                        descriptor.annotations = d.annotations
                        if d.isAttestation {
                            descriptor.platform = d.platform
                            return (i, [ResolvedChild(source: ref, document: child, entry: IndexEntry(descriptor: descriptor, platform: nil))])
                        }
                        guard let manifest = child.image else { return (i, try await resolve(ref)) }
                        let (config, _) = try await client.fetchConfig(ref, manifest: manifest)
                        return (i, [ResolvedChild(source: ref, document: child, entry: IndexEntry(descriptor: descriptor, platform: config.platform))])
                    }
                }
                var out = [[ResolvedChild]](repeating: [], count: index.manifests.count)
                for try await (i, c) in group { out[i] = c }
                return out.flatMap { $0 }
            }
        }
    }
}
