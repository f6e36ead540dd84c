// Inventory: the fleet file (DESIGN.md §4) — parsed, validated, defaults applied, paths resolved,
// platforms normalised. It must not connect to anything: every error here is found before any connection.
import Foundation
import OCI
import Support

/// A validated inventory: the hosts, with defaults applied, and the registries' settings.
public struct Fleet: Sendable {
    /// The inventory file's path as given.
    public var file: String
    /// The hosts, in file order.
    public var hosts: [HostSpec]
    /// Per-registry settings, keyed by `host[:port]`.
    public var registries: [String: RegistrySettings]

    /// A fleet from parts.
    public init(file: String, hosts: [HostSpec], registries: [String: RegistrySettings] = [:]) {
        self.file = file
        self.hosts = hosts
        self.registries = registries
    }

    /// Every platform some host offers, sorted.
    public var platforms: [Platform] { Array(Set(hosts.flatMap(\.platforms))).sorted() }
}

/// One build host with every field resolved (host fields override `defaults`).
public struct HostSpec: Sendable, Equatable, Codable {
    /// Unique name, used in logs (`[linux/arm64 graviton-a]`).
    public var name: String
    /// DNS name or IP address.
    public var address: String
    /// SSH port.
    public var port: Int
    /// Login user.
    public var user: String
    /// Absolute path of the private key; nil means ssh-agent, then the default key files.
    public var identityFile: String?
    /// Absolute path of the known_hosts file.
    public var knownHosts: String
    /// What to do with unknown host keys.
    public var hostKeyPolicy: HostKeyPolicy
    /// Container engine on the host.
    public var engine: Engine
    /// Remote folder for contexts and run folders.
    public var workDir: String
    /// Builds this host runs at once.
    public var maxJobs: Int
    /// Keep the engine's layer cache between builds (buildah/podman `--layers`; docker caches anyway).
    public var layerCache: Bool
    /// Seconds to wait for TCP connect + SSH handshake.
    public var connectTimeout: Double
    /// Seconds between keepalives; a host silent for `keepaliveCountMax` intervals is lost.
    public var keepaliveInterval: Double
    /// Unanswered keepalives before the host counts as lost.
    public var keepaliveCountMax: Int
    /// How registry credentials reach the host.
    public var credentials: CredentialsMode
    /// Platforms the host builds natively, normalised, in file order.
    public var platforms: [Platform]
    /// Free-form labels.
    public var labels: [String: String]
    /// The ssh_config file `address` is resolved through, absolute; nil: `~/.ssh/config`, if it exists.
    public var sshConfig: String?
    /// Jump hosts, first hop first, each `[user@]host[:port]` (a host may be an ssh_config alias); nil when the
    /// inventory sets none (ssh_config's ProxyJump may apply), empty for an explicit `"none"` / `[]`.
    public var jump: [String]?
    /// The settings this host set itself (inventory key names), as opposed to inheriting them from `defaults`:
    /// these override ssh_config, while `defaults` sit beneath it.
    public var hostFields: Set<String>

    /// A host; defaults as in DESIGN.md §4.
    public init(name: String, address: String, port: Int = 22, user: String = "builder", identityFile: String? = nil,
                knownHosts: String = "~/.ssh/known_hosts".expandingTilde, hostKeyPolicy: HostKeyPolicy = .yes,
                engine: Engine = .docker, workDir: String = "/var/tmp/coordinator", maxJobs: Int = 1, layerCache: Bool = true,
                connectTimeout: Double = 10, keepaliveInterval: Double = 5, keepaliveCountMax: Int = 3,
                credentials: CredentialsMode = .forward, platforms: [Platform], labels: [String: String] = [:],
                sshConfig: String? = nil, jump: [String]? = nil, hostFields: Set<String> = []) {
        self.name = name
        self.address = address
        self.port = port
        self.user = user
        self.identityFile = identityFile
        self.knownHosts = knownHosts
        self.hostKeyPolicy = hostKeyPolicy
        self.engine = engine
        self.workDir = workDir
        self.maxJobs = maxJobs
        self.layerCache = layerCache
        self.connectTimeout = connectTimeout
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveCountMax = keepaliveCountMax
        self.credentials = credentials
        self.platforms = platforms
        self.labels = labels
        self.sshConfig = sshConfig
        self.jump = jump
        self.hostFields = hostFields
    }
}

/// `hostKeyPolicy`: there is deliberately no "no".
public enum HostKeyPolicy: String, Sendable, Codable, CaseIterable {
    /// Unknown or changed key: refuse.
    case yes
    /// Unknown key: record it; changed key: refuse.
    case acceptNew = "accept-new"
}

/// `engine`.
public enum Engine: String, Sendable, Codable, CaseIterable {
    /// docker buildx / BuildKit.
    case docker
    /// podman build.
    case podman
    /// buildah bud, no daemon.
    case buildah
}

/// `credentials`.
public enum CredentialsMode: String, Sendable, Codable, CaseIterable {
    /// The coordinator hands the host a short-lived 0600 auth file.
    case forward
    /// The host's own login / credential helper.
    case host
}

/// `registries.<host>`.
public struct RegistrySettings: Sendable, Equatable, Codable {
    /// Use plain HTTP for a non-loopback registry.
    public var insecure: Bool
    /// Settings.
    public init(insecure: Bool = false) { self.insecure = insecure }
}

/// An inventory problem: file, JSON path (`hosts[3].platforms[0]`), and line:column (always for syntax errors).
public struct InventoryError: UserFacingError, Equatable {
    /// The inventory file.
    public var file: String
    /// JSON path of the offending value or key (`defaults.port`, `registries["h:5000"]`); empty for the document.
    public var path: String
    /// 1-based line of the offending value, key or character; nil when the file could not be read.
    public var line: Int?
    /// 1-based column, counted in Unicode scalars; nil when `line` is.
    public var column: Int?
    /// What is wrong.
    public var message: String

    /// An error.
    public init(file: String, path: String, line: Int? = nil, column: Int? = nil, message: String) {
        self.file = file
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    /// Always `.usage` (2): a bad inventory stops the run before any connection.
    public var exitCode: ExitCode { .usage }
    /// `file:line:column: path: message`.
    public var description: String {
        var where_ = file
        if let line, let column { where_ += ":\(line):\(column)" }
        if !path.isEmpty { where_ += ": \(path)" }
        return "\(where_): \(message)"
    }
}
