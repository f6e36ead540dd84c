import Foundation
import Support

/// Bad input to the OCI values: names, digests, documents, index assembly.
public enum OCIError: UserFacingError, Equatable {
    /// A reference that does not follow the distribution grammar, and why.
    case invalidReference(String, reason: String)
    /// A digest that is not `sha256:<64 hex>`.
    case invalidDigest(String)
    /// A manifest or config that cannot be parsed, and why.
    case invalidDocument(String)
    /// A media type this tool does not handle.
    case unsupportedMediaType(String)
    /// Content whose digest differs from the one asked for.
    case digestMismatch(expected: Digest, actual: Digest)
    /// Two children of a merge with the same platform.
    case duplicatePlatform(Platform, Digest, Digest)
    /// A merge with no runnable image.
    case emptyIndex

    public var exitCode: ExitCode {
        switch self {
        case .digestMismatch: return .infrastructure
        default: return .usage
        }
    }

    public var description: String {
        switch self {
        case .invalidReference(let r, let reason): return "invalid image reference '\(r)': \(reason)"
        case .invalidDigest(let d): return "invalid digest '\(d)': expected sha256: and 64 lowercase hex digits"
        case .invalidDocument(let why): return "invalid manifest document: \(why)"
        case .unsupportedMediaType(let m): return "unsupported media type '\(m)'"
        case .digestMismatch(let e, let a): return "content digest mismatch: expected \(e), got \(a)"
        case .duplicatePlatform(let p, let a, let b):
            return "two images for platform \(p): \(a) and \(b); give one image per platform"
        case .emptyIndex: return "nothing to merge: no runnable image among the sources"
        }
    }
}
