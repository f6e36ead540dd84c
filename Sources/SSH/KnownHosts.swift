import Foundation
import Support

/// An OpenSSH known_hosts file, parsed by our own code: libssh2's parser stops at the first line it does not
/// understand and ignores `@revoked`. Plain, wildcard, negated and hashed (`|1|salt|hash`) host patterns,
/// `[host]:port`, several key types per host.
public struct KnownHosts: Sendable, Equatable {
    /// A line's marker.
    public enum Marker: String, Sendable {
        case none = ""
        case revoked = "@revoked"
        case certAuthority = "@cert-authority"
    }

    /// One usable line.
    public struct Entry: Sendable, Equatable {
        /// 1-based line number in the file.
        public var line: Int
        /// Its marker.
        public var marker: Marker
        /// The host field as written (comma-separated patterns or one hashed name).
        public var hosts: String
        /// Key type, e.g. `ssh-ed25519`.
        public var keyType: String
        /// Base64 key blob.
        public var key: String
    }

    /// Usable lines, in file order.
    public var entries: [Entry]
    /// Line numbers that could not be parsed (skipped, never fatal).
    public var invalidLines: [Int]

    /// Parses the text of a known_hosts file.
    public init(contents: String) {
        entries = []
        invalidLines = []
        for (i, raw) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = raw.trimmingCharacters(in: .whitespaces)
            if text.isEmpty || text.hasPrefix("#") { continue }
            var fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            var marker = Marker.none
            if let first = fields.first, first.hasPrefix("@") {
                guard let m = Marker(rawValue: first) else { invalidLines.append(i + 1); continue }
                marker = m
                fields.removeFirst()
            }
            guard fields.count >= 3, Data(base64Encoded: fields[2]) != nil else { invalidLines.append(i + 1); continue }
            entries.append(Entry(line: i + 1, marker: marker, hosts: fields[0], keyType: fields[1], key: fields[2]))
        }
    }

    /// Reads a file; a missing file is an empty one.
    public init(file: String) throws {
        if !FileManager.default.fileExists(atPath: file) { self.init(contents: ""); return }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw SSHError(host: file, kind: .local, message: "cannot read known_hosts file \(file)")
        }
        self.init(contents: String(decoding: data, as: UTF8.self))
    }

    /// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
    public static func lookupName(host: String, port: Int) -> String {
        port == 22 ? host : "[\(host)]:\(port)"
    }

    /// The line `accept-new` appends.
    public static func line(host: String, port: Int, keyType: String, key: [UInt8]) -> String {
        "\(lookupName(host: host, port: port)) \(keyType) \(Data(key).base64EncodedString())"
    }

    /// What known_hosts says about a presented key.
    public enum Verdict: Sendable, Equatable {
        /// A plain entry with this exact key.
        case known(line: Int)
        /// No entry for this host at all.
        case unknown
        /// Entries exist for this host with this key type but another key (the first one's line).
        case changed(line: Int)
        /// Entries exist for this host, only of other key types.
        case otherTypesKnown([String])
        /// The key is listed under `@revoked`.
        case revoked(line: Int)
    }

    /// Checks `key` (raw blob) of `keyType` presented by `host:port`.
    public func verdict(host: String, port: Int, keyType: String, key: [UInt8]) -> Verdict {
        let blob = Data(key).base64EncodedString()
        let name = Self.lookupName(host: host, port: port)
        // A revoked key is refused whatever host it is presented by.
        if let r = entries.first(where: { $0.marker == .revoked && $0.key == blob }) { return .revoked(line: r.line) }
        let mine = entries.filter { $0.marker == .none && Self.matches(hostField: $0.hosts, name: name) }
        if let k = mine.first(where: { $0.keyType == keyType && $0.key == blob }) { return .known(line: k.line) }
        if let c = mine.first(where: { $0.keyType == keyType }) { return .changed(line: c.line) }
        if !mine.isEmpty { return .otherTypesKnown(Array(Set(mine.map(\.keyType))).sorted()) }
        return .unknown
    }

    /// Key types known for a host, in file order (used to prefer those host-key algorithms, as OpenSSH does).
    public func keyTypes(host: String, port: Int) -> [String] {
        let name = Self.lookupName(host: host, port: port)
        var seen: [String] = []
        for e in entries where e.marker == .none && Self.matches(hostField: e.hosts, name: name) && !seen.contains(e.keyType) {
            seen.append(e.keyType)
        }
        return seen
    }

    /// Whether a host field (patterns or a hashed name) matches `name` (already in lookup form).
    public static func matches(hostField: String, name: String) -> Bool {
        if hostField.hasPrefix("|1|") {
            let parts = hostField.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 4, let salt = Data(base64Encoded: String(parts[2])),
                  let hash = Data(base64Encoded: String(parts[3])) else { return false }
            return Hashing.hmacSHA1(key: Array(salt), message: Array(name.utf8)) == Array(hash)
        }
        var matched = false
        for pattern in hostField.split(separator: ",") {
            if pattern.hasPrefix("!") {
                if wildcard(String(pattern.dropFirst()), name) { return false }
            } else if wildcard(String(pattern), name) {
                matched = true
            }
        }
        return matched
    }

    /// OpenSSH's `*` / `?` host pattern match (case-insensitive).
    static func wildcard(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.lowercased().utf8), t = Array(text.lowercased().utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == UInt8(ascii: "?") || p[pi] == t[ti] { pi += 1; ti += 1 }
            else if pi < p.count, p[pi] == UInt8(ascii: "*") { star = pi; mark = ti; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

/// `SHA256:…` as `ssh-keygen -lf` prints it.
public func sshFingerprint(_ key: [UInt8]) -> String {
    var b64 = Data(Hashing.sha256(key)).base64EncodedString()
    while b64.hasSuffix("=") { b64.removeLast() }
    return "SHA256:" + b64
}
