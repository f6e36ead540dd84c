import Foundation

/// An image reference: `registry[:port]/repository[:tag][@sha256:…]`, with Docker's defaults
/// (`docker.io`, `library/`) applied the way `docker pull` applies them.
public struct Reference: Hashable, Sendable, CustomStringConvertible {
    /// The registry as users write it (`docker.io`, `127.0.0.1:5000`, `[::1]:5000`).
    public var registry: String
    /// The repository path, e.g. `library/alpine`, `team/app`.
    public var repository: String
    /// The tag, if given.
    public var tag: String?
    /// The digest, if given.
    public var digest: Digest?

    /// The registry Docker Hub names resolve to.
    public static let dockerHub = "docker.io"

    /// A reference from parts (already valid).
    public init(registry: String, repository: String, tag: String? = nil, digest: Digest? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses a reference; a name with neither tag nor digest gets `defaultTag` (nil keeps it bare).
    public init(parsing text: String, defaultTag: String? = "latest") throws {
        func fail(_ reason: String) -> OCIError { .invalidReference(text, reason: reason) }
        guard !text.isEmpty else { throw fail("empty") }
        var rest = Substring(text)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            let d = String(rest[rest.index(after: at)...])
            do { digest = try Digest(parsing: d) } catch { throw fail("digest '\(d)' is not sha256: followed by 64 lowercase hex digits") }
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[rest.index(after: colon)...].contains("/") {
            let t = String(rest[rest.index(after: colon)...])
            guard Reference.isValidTag(t) else {
                throw fail("tag '\(t)' must be 1-128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-'")
            }
            tag = t
            rest = rest[..<colon]
        }
        var registry = Reference.dockerHub
        var path = String(rest)
        if let slash = rest.firstIndex(of: "/") {
            let first = String(rest[..<slash])
            if first.contains(".") || first.contains(":") || first == "localhost" || first.lowercased() != first {
                registry = first
                path = String(rest[rest.index(after: slash)...])
            }
        }
        guard Reference.isValidRegistry(registry) else { throw fail("registry '\(registry)' is not a valid host[:port]") }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = Reference.dockerHub }
        if registry == Reference.dockerHub, !path.contains("/") { path = "library/" + path }
        guard !path.isEmpty else { throw fail("missing repository name") }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard Reference.isValidComponent(component) else {
                throw fail("repository component '\(component)' must be lowercase letters and digits, separated by '.', '_', '__' or '-'")
            }
        }
        guard registry.utf8.count + 1 + path.utf8.count <= 255 else { throw fail("name longer than 255 characters") }
        if tag == nil, digest == nil { tag = defaultTag }
        self.init(registry: registry, repository: path, tag: tag, digest: digest)
    }

    /// `registry/repository[:tag][@digest]`.
    public var description: String {
        var s = "\(registry)/\(repository)"
        if let tag { s += ":\(tag)" }
        if let digest { s += "@\(digest)" }
        return s
    }

    /// `registry/repository`, the name without tag or digest.
    public var name: String { "\(registry)/\(repository)" }

    /// What to put after `/manifests/`: the digest when known, else the tag.
    public var manifestIdentifier: String { digest?.description ?? tag ?? "latest" }

    /// The same repository at `digest` (the tag dropped).
    public func with(digest: Digest) -> Reference { Reference(registry: registry, repository: repository, digest: digest) }

    /// The same repository at `tag`.
    public func with(tag: String) -> Reference { Reference(registry: registry, repository: repository, tag: tag) }

    /// Whether the registry host is on loopback (127.0.0.0/8, localhost, ::1): such registries speak plain HTTP.
    public var isLoopback: Bool { Reference.isLoopback(registry: registry) }

    /// Whether `registry` (host[:port]) names a loopback host.
    public static func isLoopback(registry: String) -> Bool {
        let host = hostPart(of: registry)
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// The host of `host[:port]` without brackets.
    public static func hostPart(of registry: String) -> String {
        if registry.hasPrefix("["), let close = registry.firstIndex(of: "]") {
            return String(registry[registry.index(after: registry.startIndex)..<close])
        }
        if let colon = registry.firstIndex(of: ":") { return String(registry[..<colon]) }
        return registry
    }

    static func isValidTag(_ t: String) -> Bool {
        let u = Array(t.utf8)
        guard !u.isEmpty, u.count <= 128 else { return false }
        func word(_ c: UInt8) -> Bool { isAlnum(c) || c == 95 || (c >= 65 && c <= 90) }
        return word(u[0]) && u.dropFirst().allSatisfy { word($0) || $0 == 46 || $0 == 45 }
    }

    static func isValidComponent(_ c: Substring) -> Bool {
        // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
        let u = Array(c.utf8)
        guard let first = u.first, let last = u.last, isAlnum(first), isAlnum(last) else { return false }
        var i = 0
        while i < u.count {
            if isAlnum(u[i]) { i += 1; continue }
            var j = i
            while j < u.count, !isAlnum(u[j]) { j += 1 }
            let sep = u[i..<j]
            let ok = sep.elementsEqual([46]) || sep.elementsEqual([95]) || sep.elementsEqual([95, 95]) || sep.allSatisfy { $0 == 45 }
            guard ok else { return false }
            i = j
        }
        return true
    }

    static func isValidRegistry(_ r: String) -> Bool {
        var host = Substring(r)
        var port: Substring?
        if r.hasPrefix("[") {
            guard let close = r.firstIndex(of: "]") else { return false }
            let inner = r[r.index(after: r.startIndex)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return false }
            let after = r[r.index(after: close)...]
            if after.isEmpty { return true }
            guard after.first == ":" else { return false }
            port = after.dropFirst()
            host = "x"
        } else if let colon = r.firstIndex(of: ":") {
            host = r[..<colon]
            port = r[r.index(after: colon)...]
        }
        if let port, port.isEmpty || !port.allSatisfy(\.isASCII) || UInt16(port) == nil { return false }
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            let u = Array(label.utf8)
            guard let f = u.first, let l = u.last else { return false }
            func an(_ c: UInt8) -> Bool { isAlnum(c) || (c >= 65 && c <= 90) }
            guard an(f), an(l), u.allSatisfy({ an($0) || $0 == 45 }) else { return false }
        }
        return true
    }

    private static func isAlnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
}
