// Registry: a client of the distribution API (OCI distribution spec) on URLSession, with auth
// (Basic, Bearer tokens, docker/containers credential files and helpers), bounded retries, and the merge
// of per-arch manifests into one index. It must not print: callers decide what the user sees, and no
// secret (password, token, helper output) ever reaches an error, a log line or a report.
import Foundation
import OCI
import Support

/// One entry of the spec's error body `{"errors":[{"code","message","detail"}]}`.
public struct RegistrySpecError: Hashable, Sendable, Codable {
    /// e.g. `MANIFEST_UNKNOWN`, `DENIED`, `UNAUTHORIZED`, `MANIFEST_BLOB_UNKNOWN`.
    public var code: String
    /// The registry's message.
    public var message: String?

    /// An entry.
    public init(code: String, message: String? = nil) {
        self.code = code
        self.message = message
    }
}

/// A registry problem, naming the registry and repository; never carries a secret.
public struct RegistryError: UserFacingError, Equatable {
    /// What went wrong, in kinds a caller can act on.
    public enum Kind: String, Sendable, Equatable {
        /// 401: no or wrong credentials.
        case unauthorized
        /// 403: credentials fine, access refused.
        case denied
        /// 404 or `*_UNKNOWN`.
        case notFound
        /// Another HTTP status.
        case http
        /// Connection refused, reset, timed out, TLS failure.
        case transport
        /// Content that does not hash to its digest, or a `Docker-Content-Digest` that differs from ours.
        case digestMismatch
        /// A body or header we cannot use.
        case invalidResponse
        /// The tag exists with another digest and the registry refuses to move it.
        case tagImmutable
        /// A request this client will not make (e.g. merging across registries).
        case unsupported
    }

    /// The kind.
    public var kind: Kind
    /// The registry host[:port].
    public var registry: String
    /// The repository, when the request had one.
    public var repository: String?
    /// HTTP method.
    public var method: String?
    /// The request path (query removed, so upload state and token parameters never show).
    public var path: String?
    /// HTTP status, when a response came.
    public var status: Int?
    /// The spec's error entries.
    public var errors: [RegistrySpecError]
    /// A human detail.
    public var detail: String
    /// Whether a retry could succeed (429, 5xx, resets).
    public var isTemporary: Bool

    /// An error.
    public init(_ kind: Kind, registry: String, repository: String? = nil, method: String? = nil, path: String? = nil,
                status: Int? = nil, errors: [RegistrySpecError] = [], detail: String = "", isTemporary: Bool = false) {
        self.kind = kind
        self.registry = registry
        self.repository = repository
        self.method = method
        self.path = path
        self.status = status
        self.errors = errors
        self.detail = detail
        self.isTemporary = isTemporary
    }

    /// Whether any spec error code is one of `codes`.
    public func has(code codes: String...) -> Bool { errors.contains { codes.contains($0.code) } }

    public var exitCode: ExitCode { kind == .unsupported ? .usage : .infrastructure }

    public var description: String {
        var s = "registry \(registry)"
        if let repository { s += ", repository \(repository)" }
        s += ": "
        switch kind {
        case .unauthorized: s += "authentication required or refused (401)"
        case .denied: s += "access denied (403)"
        case .notFound: s += "not found"
        case .http: s += "HTTP \(status ?? 0)"
        case .transport: s += "cannot reach the registry"
        case .digestMismatch: s += "digest mismatch"
        case .invalidResponse: s += "invalid response"
        case .tagImmutable: s += "tag is immutable"
        case .unsupported: s += "unsupported request"
        }
        if !detail.isEmpty { s += ": \(detail)" }
        if !errors.isEmpty {
            s += " [" + errors.map { e in e.message.map { "\(e.code): \($0)" } ?? e.code }.joined(separator: "; ") + "]"
        }
        if let method, let path { s += " (\(method) \(path)\(status.map { " → \($0)" } ?? ""))" }
        return s
    }

    /// The error a non-success response stands for.
    static func from(status: Int, body: Data, registry: String, repository: String?, method: String, url: URL) -> RegistryError {
        struct Body: Decodable { var errors: [RegistrySpecError]? }
        let errors = ((try? JSONDecoder().decode(Body.self, from: body))?.errors ?? []).map {
            RegistrySpecError(code: $0.code, message: $0.message.map { String($0.prefix(300)) })
        }
        let kind: Kind
        switch status {
        case 401: kind = .unauthorized
        case 403: kind = .denied
        case 404: kind = .notFound
        default: kind = .http
        }
        let temporary = status == 408 || status == 429 || status >= 500
        return RegistryError(kind, registry: registry, repository: repository, method: method, path: url.path,
                             status: status, errors: errors, isTemporary: temporary)
    }
}
