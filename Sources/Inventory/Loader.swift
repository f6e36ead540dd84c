// Turns the JSON tree into a `Fleet`: every key checked against the format of DESIGN.md §4, defaults applied,
// paths resolved. The first problem is thrown — for each object: unknown keys, then missing ones, then its members
// in file order; uniqueness across hosts last — so the same file always gives the same error.
import Foundation
import OCI
import Support

extension Fleet {
    /// Reads, validates and resolves the inventory at `path`; relative paths in it resolve against its folder.
    public static func load(path: String) throws -> Fleet {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InventoryError(file: path, path: "", message: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw InventoryError(file: path, path: "", message: "is a folder, not an inventory file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw InventoryError(file: path, path: "", message: "cannot read the file: \(error.localizedDescription)")
        }
        let folder = (path as NSString).deletingLastPathComponent
        return try Fleet(data: data, file: path, baseDirectory: folder.isEmpty ? "." : folder)
    }

    /// Validates inventory JSON `data`; `file` names it in errors, `baseDirectory` anchors relative paths.
    public init(data: Data, file: String, baseDirectory: String) throws {
        let root = Node(value: try JSONParser.parse(data, file: file), path: JSONPath(), file: file)
        let loader = Loader(baseDirectory: Paths.absolute(baseDirectory))
        self = try loader.fleet(root)
    }
}

/// The keys the loader accepts at each level; the schema test holds Inventory/inventory.schema.json to these.
enum InventoryKeys {
    static let top = ["defaults", "registries", "hosts"]
    static let settings = [
        "user", "port", "identityFile", "knownHosts", "hostKeyPolicy", "engine", "workDir", "maxJobs",
        "connectTimeout", "keepaliveInterval", "keepaliveCountMax", "credentials", "sshConfig", "jump", "layerCache",
    ]
    static let hostOnly = ["name", "address", "platforms", "labels"]
    static let host = hostOnly + settings
    static let hostRequired = ["name", "address", "platforms"]
    static let registry = ["insecure"]
}

/// The fields `defaults` and a host share; nil where the file leaves them out.
private struct Settings {
    var user: String?
    var port: Int?
    var identityFile: String?
    var knownHosts: String?
    var hostKeyPolicy: HostKeyPolicy?
    var engine: Engine?
    var workDir: String?
    var maxJobs: Int?
    var layerCache: Bool?
    var connectTimeout: Double?
    var keepaliveInterval: Double?
    var keepaliveCountMax: Int?
    var credentials: CredentialsMode?
    var sshConfig: String?
    var jump: [String]?
    /// The keys this object set, in file order.
    var keys: [String] = []
}

/// A host as written, before defaults apply.
private struct HostEntry {
    var name: (String, Node)?
    var address: (String, Node)?
    var platforms: [Platform] = []
    var labels: [String: String] = [:]
    var settings = Settings()
}

private struct Loader {
    let baseDirectory: String

    func fleet(_ root: Node) throws -> Fleet {
        var defaults = Settings()
        var registries: [String: RegistrySettings] = [:]
        var entries: [HostEntry] = []  // `hosts` is required, so this is filled by the time it is read
        for (key, node) in try root.object(allowed: InventoryKeys.top, required: ["hosts"]) {
            switch key {
            case "defaults":
                for (key, field) in try node.object(allowed: InventoryKeys.settings) {
                    try parse(key, field, into: &defaults)
                }
            case "registries":
                registries = try parseRegistries(node)
            default:
                let hosts = try node.array()
                guard !hosts.isEmpty else { throw node.error("no hosts: list at least one") }
                entries = try hosts.map(parseHost)
            }
        }
        let hosts = entries.map { resolve($0, defaults: defaults) }
        try checkUnique(entries, hosts)
        return Fleet(file: root.file, hosts: hosts, registries: registries)
    }

    private func parseHost(_ node: Node) throws -> HostEntry {
        var entry = HostEntry()
        for (key, field) in try node.object(allowed: InventoryKeys.host, required: InventoryKeys.hostRequired) {
            switch key {
            case "name": entry.name = (try field.nonEmptyString(), field)
            case "address": entry.address = (try field.nonEmptyString(), field)
            case "platforms": entry.platforms = try parsePlatforms(field)
            case "labels":
                for (label, value) in try field.object(allowed: nil) { entry.labels[label] = try value.string() }
            default: try parse(key, field, into: &entry.settings)
            }
        }
        return entry
    }

    private func parse(_ key: String, _ field: Node, into s: inout Settings) throws {
        s.keys.append(key)
        switch key {
        case "user": s.user = try field.nonEmptyString()
        case "port": s.port = try field.integer(in: 1...65535)
        case "identityFile": s.identityFile = try localPath(field)
        case "knownHosts": s.knownHosts = try localPath(field)
        case "hostKeyPolicy":
            if case .string(let text) = field.value.kind, text.lowercased() == "no" {
                throw field.error("there is no \"no\": coordinator never connects to a host it cannot verify; "
                    + "to trust a host, add its key to the known_hosts file yourself "
                    + "(e.g. ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts) or use \"accept-new\"")
            }
            s.hostKeyPolicy = try field.choice(HostKeyPolicy.self)
        case "engine": s.engine = try field.choice(Engine.self)
        case "workDir":
            let dir = try field.nonEmptyString()
            guard dir.hasPrefix("/") else { throw field.error("must be an absolute path on the host (starting with /)") }
            s.workDir = dir
        case "maxJobs": s.maxJobs = try field.integer(in: 1...Node.maxExactInteger)
        case "layerCache": s.layerCache = try field.bool()
        case "connectTimeout": s.connectTimeout = try field.positiveNumber()
        case "keepaliveInterval": s.keepaliveInterval = try field.positiveNumber()
        case "keepaliveCountMax": s.keepaliveCountMax = try field.integer(in: 1...Node.maxExactInteger)
        case "credentials": s.credentials = try field.choice(CredentialsMode.self)
        case "sshConfig": s.sshConfig = try localPath(field)
        case "jump": s.jump = try parseJump(field)
        default: preconditionFailure("key \(key) is allowed but not handled")
        }
    }

    /// A local file path: `~/` expands to $HOME, relative paths resolve against the inventory's folder.
    private func localPath(_ field: Node) throws -> String {
        let text = try field.nonEmptyString()
        if text.hasPrefix("~"), text != "~", !text.hasPrefix("~/") {
            throw field.error("\"~user\" paths are not supported; write ~/… or an absolute path")
        }
        return Paths.resolve(text.expandingTilde, against: baseDirectory)
    }

    /// `jump`: `"[user@]host[:port][,…]"`, an array of such hops, or `"none"` / `[]` for a direct connection.
    private func parseJump(_ field: Node) throws -> [String] {
        let hops: [(String, Node)]
        if case .string(let text) = field.value.kind {
            if text.lowercased() == "none" { return [] }
            hops = text.split(separator: ",", omittingEmptySubsequences: false).map { (String($0), field) }
        } else {
            hops = try field.array().map { (try $0.string(), $0) }
        }
        for (hop, node) in hops {
            guard Self.isJumpHop(hop) else {
                throw node.error("\(JSONPath.quoted(hop)) is not a jump hop: write [user@]host[:port] "
                    + "(several hops comma-separated or as an array, first hop first)")
            }
        }
        return hops.map(\.0)
    }

    /// `[user@]host[:port]`, host possibly `[v6]`; the SSH layer parses it (this only refuses what it would).
    private static func isJumpHop(_ hop: String) -> Bool {
        var rest = Substring(hop)
        if rest.lowercased().hasPrefix("ssh://") { rest = rest.dropFirst(6) }
        if let at = rest.lastIndex(of: "@") {
            guard at != rest.startIndex else { return false }
            rest = rest[rest.index(after: at)...]
        }
        guard !rest.isEmpty, !rest.contains(where: { $0.isWhitespace || $0 == "," }) else { return false }
        let closing = rest.hasPrefix("[") ? rest.firstIndex(of: "]") : rest.startIndex
        guard let closing else { return false }
        let hostEnd = rest[closing...].firstIndex(of: ":")
        guard let hostEnd else { return true }
        if !rest.hasPrefix("["), rest[rest.index(after: hostEnd)...].contains(":") { return false }
        guard hostEnd != rest.startIndex, let port = Int(rest[rest.index(after: hostEnd)...]) else { return false }
        return (1...65535).contains(port)
    }

    private func parsePlatforms(_ field: Node) throws -> [Platform] {
        let elements = try field.array()
        guard !elements.isEmpty else { throw field.error("empty platform list: name at least one platform") }
        var platforms: [Platform] = []
        for element in elements {
            let name = try element.string()
            let platform: Platform
            do { platform = try Platform(parsing: name) } catch let error as PlatformError {
                throw element.error(error.description)
            }
            if let first = platforms.firstIndex(of: platform) {
                throw element.error("\(JSONPath.quoted(name)) is \(platform) again (as platforms[\(first)])")
            }
            platforms.append(platform)
        }
        return platforms
    }

    private func parseRegistries(_ node: Node) throws -> [String: RegistrySettings] {
        var registries: [String: RegistrySettings] = [:]
        for (key, value) in try node.object(allowed: nil) {
            guard !key.isEmpty, !key.contains("/"), !key.contains(where: \.isWhitespace) else {
                throw value.error("a registry key is host[:port], with no scheme, path or spaces")
            }
            var settings = RegistrySettings()
            for (_, field) in try value.object(allowed: InventoryKeys.registry) {
                settings.insecure = try field.bool()
            }
            registries[key] = settings
        }
        return registries
    }

    private func resolve(_ entry: HostEntry, defaults d: Settings) -> HostSpec {
        let h = entry.settings
        return HostSpec(
            name: entry.name!.0, address: entry.address!.0,
            port: h.port ?? d.port ?? 22,
            user: h.user ?? d.user ?? "builder",
            identityFile: h.identityFile ?? d.identityFile,
            knownHosts: h.knownHosts ?? d.knownHosts ?? "~/.ssh/known_hosts".expandingTilde,
            hostKeyPolicy: h.hostKeyPolicy ?? d.hostKeyPolicy ?? .yes,
            engine: h.engine ?? d.engine ?? .docker,
            workDir: h.workDir ?? d.workDir ?? "/var/tmp/coordinator",
            maxJobs: h.maxJobs ?? d.maxJobs ?? 1,
            layerCache: h.layerCache ?? d.layerCache ?? true,
            connectTimeout: h.connectTimeout ?? d.connectTimeout ?? 10,
            keepaliveInterval: h.keepaliveInterval ?? d.keepaliveInterval ?? 5,
            keepaliveCountMax: h.keepaliveCountMax ?? d.keepaliveCountMax ?? 3,
            credentials: h.credentials ?? d.credentials ?? .forward,
            platforms: entry.platforms, labels: entry.labels,
            sshConfig: h.sshConfig ?? d.sshConfig, jump: h.jump ?? d.jump, hostFields: Set(h.keys))
    }

    /// Host names and address:port pairs (after the default port applies) must each be unique.
    private func checkUnique(_ entries: [HostEntry], _ hosts: [HostSpec]) throws {
        var names: [String: Int] = [:]
        var endpoints: [String: Int] = [:]
        for (index, host) in hosts.enumerated() {
            if let first = names[host.name] {
                throw entries[index].name!.1.error("duplicate host name \(JSONPath.quoted(host.name)) (also hosts[\(first)])")
            }
            names[host.name] = index
            // DNS names are case-insensitive; IPv6 spellings are not normalised.
            let endpoint = "\(host.address.lowercased()):\(host.port)"
            if let first = endpoints[endpoint] {
                throw entries[index].address!.1.error(
                    "address \(host.address) port \(host.port) is already host \(JSONPath.quoted(hosts[first].name)) (hosts[\(first)])")
            }
            endpoints[endpoint] = index
        }
    }
}

/// A JSON value with its path, so every check can say where it failed.
private struct Node {
    let value: JSONValue
    let path: JSONPath
    let file: String

    func error(_ message: String) -> InventoryError {
        InventoryError(file: file, path: path.description, line: value.position.line,
                       column: value.position.column, message: message)
    }

    /// The node of `member`, for errors about its key rather than its value.
    private func key(_ member: JSONValue.Member) -> Node {
        Node(value: JSONValue(kind: member.value.kind, position: member.keyPosition), path: path.appending(member.key),
             file: file)
    }

    private func typeError(_ expected: String) -> InventoryError {
        error("expected \(expected), got \(value.typeName)")
    }

    /// The members in file order; a key outside `allowed` (nil: any key) or a missing required key is an error.
    func object(allowed: [String]?, required: [String] = []) throws -> [(String, Node)] {
        guard case .object(let members) = value.kind else { throw typeError("object") }
        for member in members where !(allowed?.contains(member.key) ?? true) {
            throw key(member).error("unknown key \(JSONPath.quoted(member.key)); allowed: \(allowed!.sorted().joined(separator: ", "))")
        }
        for key in required where !members.contains(where: { $0.key == key }) {
            throw error("missing required key \(JSONPath.quoted(key))")
        }
        return members.map { ($0.key, Node(value: $0.value, path: path.appending($0.key), file: file)) }
    }

    func array() throws -> [Node] {
        guard case .array(let elements) = value.kind else { throw typeError("array") }
        return elements.enumerated().map { Node(value: $1, path: path.appending($0), file: file) }
    }

    func string() throws -> String {
        guard case .string(let s) = value.kind else { throw typeError("string") }
        return s
    }

    func nonEmptyString() throws -> String {
        let s = try string()
        guard !s.isEmpty else { throw error("must not be empty") }
        return s
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value.kind else { throw typeError("boolean") }
        return b
    }

    /// An integer-valued number (`2` or `2.0`, as JSON Schema counts integers) inside `range`.
    func integer(in range: ClosedRange<Int>) throws -> Int {
        guard case .number(let d) = value.kind else { throw typeError("integer") }
        guard d.rounded() == d else { throw error("expected integer, got \(d)") }
        guard d >= Double(range.lowerBound), d <= Double(range.upperBound) else {
            throw error("\(Int64(exactly: d).map(String.init) ?? "\(d)") is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(d)
    }

    /// The largest integer a JSON number carries exactly (2^53 - 1): the upper bound of counts.
    static let maxExactInteger = 9_007_199_254_740_991

    /// A number of seconds greater than zero.
    func positiveNumber() throws -> Double {
        guard case .number(let d) = value.kind else { throw typeError("number") }
        guard d > 0 else { throw error("must be greater than 0, got \(d)") }
        return d
    }

    /// One of an enum's raw values; the message lists them all.
    func choice<E: RawRepresentable & CaseIterable>(_: E.Type) throws -> E where E.RawValue == String {
        let text = try string()
        guard let result = E(rawValue: text) else {
            let accepted = E.allCases.map { JSONPath.quoted($0.rawValue) }.joined(separator: ", ")
            throw error("unknown value \(JSONPath.quoted(text)); accepted: \(accepted)")
        }
        return result
    }
}

/// Local path arithmetic, lexical only: `..` is kept, because collapsing it would be wrong through symlinks.
enum Paths {
    /// `path` made absolute against the current directory.
    static func absolute(_ path: String) -> String {
        resolve(path, against: FileManager.default.currentDirectoryPath)
    }

    /// `path` if absolute, else joined to `base`; `.` segments and repeated slashes are dropped.
    static func resolve(_ path: String, against base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        let segments = joined.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return "/" + segments.joined(separator: "/")
    }
}
