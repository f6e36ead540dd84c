import Foundation
import OCI
import Registry
import Support

/// Checks delivered per-platform images and publishes the index: only complete (or, with
/// `--allow-partial`, what succeeded, with the missing platforms recorded) and once per tag.
public struct Publisher: Sendable {
    /// The registry client.
    public let client: RegistryClient

    /// A publisher.
    public init(client: RegistryClient) { self.client = client }

    /// Reads a pushed child's manifest and config and checks its platform equals the one requested.
    /// A mislabelled image is rejected, never relabelled.
    public func verify(_ platform: Platform, digest: Digest, in repository: Reference) async -> Scheduler.VerifiedChild {
        do {
            let ref = repository.with(digest: digest)
            let doc = try await client.fetchManifest(ref)
            guard case .image(let manifest) = doc.content else { return .rejected("\(digest) is an index, not an image") }
            let (config, _) = try await client.fetchConfig(ref, manifest: manifest)
            let got = Platform(os: config.os, architecture: config.architecture, variant: config.variant)
            guard got.os == platform.os, got.architecture == platform.architecture, got.variant == platform.variant else {
                return .rejected("image config says \(got), but \(platform) was requested: rejected, never relabelled")
            }
            return .accepted(mediaType: doc.mediaType, size: Int64(doc.raw.count))
        } catch {
            return .rejected("cannot read back \(digest): \(error)")
        }
    }

    /// Assembles and pushes the index of `children` under every tag.
    public func publish(children: [Digest], repository: Reference, tags: [Reference], annotations: [String: String]) async throws -> MergeOutcome {
        let merger = Merger(client: client)
        let plan = try await merger.plan(sources: children.map { repository.with(digest: $0) }, targets: tags, annotations: annotations)
        return try await merger.push(plan)
    }

    /// The annotations every published index carries: creation time, and revision/source when the context is a git checkout.
    public static func standardAnnotations(context: String, now: Date = Date()) -> [String: String] {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        var a = ["org.opencontainers.image.created": f.string(from: now)]
        if let rev = git(["rev-parse", "HEAD"], in: context) { a["org.opencontainers.image.revision"] = rev }
        if let url = git(["config", "--get", "remote.origin.url"], in: context) { a["org.opencontainers.image.source"] = stripCredentials(url) }
        return a
    }

    /// `https://user:token@host/x` → `https://host/x`: a remote URL may carry a secret.
    static func stripCredentials(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else { return url }
        let hostStart = url[scheme.upperBound...].firstIndex(of: "/") ?? url.endIndex
        guard at < hostStart else { return url }
        return String(url[..<scheme.upperBound]) + String(url[url.index(after: at)...])
    }

    static func git(_ args: [String], in dir: String) -> String? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/git") else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        p.arguments = ["-C", dir] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        let s = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return p.terminationStatus == 0 && !s.isEmpty ? s : nil
    }
}
