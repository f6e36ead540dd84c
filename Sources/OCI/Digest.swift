import Foundation
import Support

/// A content digest (`sha256:<64 hex>`), the identity of every blob and manifest.
public struct Digest: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// The algorithm, e.g. `sha256`.
    public let algorithm: String
    /// The lowercase hex encoding.
    public let hex: String

    /// Parses `algorithm:hex`; only `sha256` (64 lowercase hex digits) and `sha512` (128) are accepted.
    public init(parsing text: String) throws {
        guard let colon = text.firstIndex(of: ":") else { throw OCIError.invalidDigest(text) }
        let algorithm = String(text[..<colon])
        let hex = String(text[text.index(after: colon)...])
        let expected: Int
        switch algorithm {
        case "sha256": expected = 64
        case "sha512": expected = 128
        default: throw OCIError.invalidDigest(text)
        }
        guard hex.utf8.count == expected, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw OCIError.invalidDigest(text)
        }
        self.algorithm = algorithm
        self.hex = hex
    }

    private init(sha256Hex: String) {
        algorithm = "sha256"
        hex = sha256Hex
    }

    /// The SHA-256 digest of `data`.
    public static func sha256(of data: some ContiguousBytes) -> Digest { Digest(sha256Hex: Hashing.sha256Hex(data)) }

    /// Whether `data` hashes to this digest (always false for algorithms other than sha256).
    public func matches(_ data: some ContiguousBytes) -> Bool {
        algorithm == "sha256" && Hashing.sha256Hex(data) == hex
    }

    /// `algorithm:hex`.
    public var description: String { "\(algorithm):\(hex)" }

    /// The first 12 hex digits, for tables.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool { a.description < b.description }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid digest '\(text)'"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
