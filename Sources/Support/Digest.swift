import CCrypto
import Foundation

/// SHA-256 and HMAC through OpenSSL's libcrypto.
public enum Hashing {
    /// The SHA-256 of `data`.
    public static func sha256(_ data: some ContiguousBytes) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBytes { buf in
            _ = out.withUnsafeMutableBytes { o in
                EVP_Digest(buf.baseAddress, buf.count, o.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, EVP_sha256(), nil)
            }
        }
        return out
    }

    /// Lowercase hex of the SHA-256 of `data`.
    public static func sha256Hex(_ data: some ContiguousBytes) -> String { hex(sha256(data)) }

    /// HMAC-SHA1 (used by OpenSSH's hashed known_hosts entries).
    public static func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        var len: UInt32 = 20
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                _ = HMAC(EVP_sha1(), k.baseAddress, Int32(k.count), m.baseAddress?.assumingMemoryBound(to: UInt8.self),
                         m.count, &out, &len)
            }
        }
        return out
    }

    /// Lowercase hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var s = [UInt8]()
        s.reserveCapacity(bytes.count * 2)
        for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xF)]) }
        return String(decoding: s, as: UTF8.self)
    }
}

/// An incremental SHA-256, for streams too large to hold (contexts, blobs).
public final class SHA256Stream {
    private let ctx: OpaquePointer

    /// A fresh hash.
    public init() {
        ctx = EVP_MD_CTX_new()
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(ctx) }

    /// Adds `bytes`.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count) }
    }

    /// Adds `data`.
    public func update(_ data: some ContiguousBytes) { data.withUnsafeBytes { update($0) } }

    /// The digest; the stream must not be used afterwards.
    public func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 32
        EVP_DigestFinal_ex(ctx, &out, &len)
        return out
    }
}
