import Foundation
import Inventory
import OCI
import Support

/// A `KEY=VALUE` pair from the command line, order kept.
public struct KeyValue: Sendable, Equatable, Codable {
    /// The key.
    public var key: String
    /// The value (may be empty, may hold any bytes: it is always quoted on the remote side).
    public var value: String
    /// A pair.
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// Everything `coordinator build` was asked to do, validated.
public struct BuildRequest: Sendable {
    /// Where the results go.
    public enum Output: Sendable, Equatable {
        /// Push by digest, then one index under every tag.
        case registry
        /// One multi-arch OCI image layout in this local folder.
        case ociLayout(String)
    }

    /// The local build context folder.
    public var context: String
    /// `-f`, when given (may be outside the context).
    public var dockerfile: String?
    /// Release tags; the first one's repository receives the per-platform images.
    public var tags: [Reference]
    /// Platforms to build, normalised.
    public var platforms: [Platform]
    /// `--build-arg`.
    public var buildArgs: [KeyValue]
    /// `--target`.
    public var target: String?
    /// `--label`.
    public var labels: [KeyValue]
    /// `--annotation` (on the index).
    public var annotations: [KeyValue]
    /// `--output`.
    public var output: Output
    /// `--allow-partial`.
    public var allowPartial: Bool
    /// `--timeout` per platform build, seconds.
    public var timeout: Double?
    /// Context size limit, bytes.
    public var contextSizeLimit: Int64?

    /// A request.
    public init(context: String, dockerfile: String? = nil, tags: [Reference], platforms: [Platform],
                buildArgs: [KeyValue] = [], target: String? = nil, labels: [KeyValue] = [], annotations: [KeyValue] = [],
                output: Output = .registry, allowPartial: Bool = false, timeout: Double? = nil, contextSizeLimit: Int64? = nil) {
        self.context = context
        self.dockerfile = dockerfile
        self.tags = tags
        self.platforms = platforms
        self.buildArgs = buildArgs
        self.target = target
        self.labels = labels
        self.annotations = annotations
        self.output = output
        self.allowPartial = allowPartial
        self.timeout = timeout
        self.contextSizeLimit = contextSizeLimit
    }

    /// The repository per-platform images are pushed to (by digest, no tag).
    public var stagingRepository: Reference? { tags.first.map { Reference(registry: $0.registry, repository: $0.repository) } }
}

/// How a platform ended.
public enum PlatformStatus: String, Sendable, Codable {
    /// Built, verified, pushed by digest (or exported).
    case built
    /// The engine failed on the Dockerfile: not retried elsewhere.
    case buildFailed = "build-failed"
    /// Every candidate host failed for infrastructure reasons (or none was usable).
    case infrastructureFailed = "infrastructure-failed"
    /// Not attempted (cancelled).
    case cancelled
}

/// One try of one platform on one host.
public struct Attempt: Sendable, Codable, Equatable {
    /// Host name.
    public var host: String
    /// What happened.
    public var outcome: String
    /// Seconds spent.
    public var durationSeconds: Double
}

/// The result of one platform, as the report shows it (DESIGN.md §6).
public struct PlatformResult: Sendable, Codable, Equatable {
    /// `linux/arm64`.
    public var platform: String
    /// The host that produced the result (or the last one tried).
    public var host: String?
    /// Image manifest digest.
    public var digest: String?
    /// Final status.
    public var status: PlatformStatus
    /// Wall time over all attempts.
    public var durationSeconds: Double
    /// Number of hosts tried.
    public var attempts: Int
    /// Local log file.
    public var log: String?
    /// Why it failed, for a human.
    public var reason: String?
    /// Every attempt, in order.
    public var tried: [Attempt]
    /// Context bytes sent to hosts for this platform (0 when the host's cache had it).
    public var contextBytesSent: Int64
    /// Media type and size of the manifest, for index assembly.
    public var mediaType: String?
    public var size: Int64?
}
