// SSHConfig: the OpenSSH client configuration (ssh_config(5)) as OpenSSH itself reads it — Host and Match
// blocks, Include, first value wins — for the handful of keywords the coordinator honours. Pure: it reads
// files and never runs anything (`Match exec` is skipped with a warning), never connects.
import Foundation
import Support

/// Where an effective value came from, for `coordinator plan`.
public enum ConfigSource: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// A line of an ssh_config file (the top file or one it includes).
    case sshConfig(file: String, line: Int)
    /// The inventory set it explicitly.
    case inventory
    /// Nobody set it: the coordinator's built-in default.
    case builtInDefault

    /// `ssh_config FILE:LINE`, `inventory` or `default`.
    public var description: String {
        switch self {
        case let .sshConfig(file, line): return "ssh_config \(file):\(line)"
        case .inventory: return "inventory"
        case .builtInDefault: return "inventory defaults or built-in"
        }
    }
}

/// A value and the place that set it.
public struct Sourced<Value: Sendable & Equatable>: Sendable, Equatable {
    /// The value.
    public var value: Value
    /// Where it was set.
    public var source: ConfigSource

    /// A sourced value.
    public init(_ value: Value, source: ConfigSource) {
        self.value = value
        self.source = source
    }
}

/// One hop of a `ProxyJump` chain: `[user@]host[:port]` (or `ssh://[user@]host[:port]`).
public struct JumpSpec: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Login user, when the hop names one.
    public var user: String?
    /// Host name, address or ssh_config alias of the hop (IPv6 without brackets).
    public var host: String
    /// Port, when the hop names one.
    public var port: Int?

    /// A hop.
    public init(user: String? = nil, host: String, port: Int? = nil) {
        self.user = user
        self.host = host
        self.port = port
    }

    /// `user@host:port` as OpenSSH prints it (`[v6]` bracketed when it has a port).
    public var description: String {
        var s = user.map { "\($0)@" } ?? ""
        s += host.contains(":") ? "[\(host)]" : host
        if let port { s += ":\(port)" }
        return s
    }
}

/// A problem in an ssh_config file: always a usage/configuration error (exit 2), found before connecting.
public struct SSHConfigError: UserFacingError, Equatable {
    /// The file with the problem.
    public var file: String
    /// 1-based line, when the problem is on one line.
    public var line: Int?
    /// What is wrong, and what to do about it.
    public var message: String

    /// An error.
    public init(file: String, line: Int? = nil, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// Always `.usage` (2).
    public var exitCode: ExitCode { .usage }
    /// `file:line: message`.
    public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

/// Something the coordinator read but does not act on the way OpenSSH would: worth showing, never fatal.
public struct SSHConfigWarning: Sendable, Equatable, CustomStringConvertible {
    /// File of the line.
    public var file: String
    /// 1-based line.
    public var line: Int
    /// What was skipped and why.
    public var message: String

    /// A warning.
    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `file:line: message`.
    public var description: String { "\(file):\(line): \(message)" }
}

/// The local facts ssh_config expansion needs (home, user, host name, environment), injectable for tests.
public struct SSHConfigEnvironment: Sendable, Equatable {
    /// Local home directory: `~` and `%d`.
    public var homeDirectory: String
    /// Where relative `Include` paths live (OpenSSH: `~/.ssh` for user configs).
    public var includeDirectory: String
    /// Local user name: `%u`, and the user `Match user` sees when ssh_config sets none.
    public var localUser: String
    /// Local numeric user id: `%i`.
    public var localUID: Int
    /// Local host name: `%l` (and `%L` up to the first dot).
    public var localHostName: String
    /// Environment variables for `${NAME}`.
    public var variables: [String: String]

    /// An environment.
    public init(homeDirectory: String, includeDirectory: String? = nil, localUser: String, localUID: Int = 0,
                localHostName: String = "localhost", variables: [String: String] = [:]) {
        self.homeDirectory = homeDirectory
        self.includeDirectory = includeDirectory ?? homeDirectory + "/.ssh"
        self.localUser = localUser
        self.localUID = localUID
        self.localHostName = localHostName
        self.variables = variables
    }

    /// This process's: `$HOME` (as `String.expandingTilde` uses), the login name, `gethostname`, the environment.
    public static var current: SSHConfigEnvironment {
        let env = ProcessInfo.processInfo.environment
        let uid = getuid()
        var user = env["USER"] ?? env["LOGNAME"] ?? "root"
        if let pw = getpwuid(uid), let name = pw.pointee.pw_name { user = String(cString: name) }
        return SSHConfigEnvironment(homeDirectory: env["HOME"] ?? NSHomeDirectory(), localUser: user,
                                    localUID: Int(uid), localHostName: ProcessInfo.processInfo.hostName,
                                    variables: env)
    }
}

/// A parsed ssh_config file with its includes, ready to resolve any alias as `ssh ALIAS` would.
public struct SSHConfig: Sendable {
    /// The top file's path as given.
    public let file: String
    /// The local facts used for `~`, tokens and relative includes.
    public let environment: SSHConfigEnvironment
    let entries: [ConfigEntry]
    /// Lines read but not acted on in every case (unsupported `Match` criteria), with file:line.
    public let warnings: [SSHConfigWarning]

    /// Reads `file` and everything it includes; a missing file is an error unless `optional` (OpenSSH's
    /// default `~/.ssh/config` may be absent, a file given with `-F` may not).
    public init(file: String, optional: Bool = false, environment: SSHConfigEnvironment = .current) throws {
        let path = ConfigPath.expandTilde(file, environment: environment)
        if optional, !FileManager.default.fileExists(atPath: path) {
            try self.init(contents: "", file: file, environment: environment)
            return
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SSHConfigError(file: file, message: "cannot read the ssh_config file")
        }
        try self.init(contents: String(decoding: data, as: UTF8.self), file: file, environment: environment)
    }

    /// Parses `contents` as if read from `file`; relative includes resolve against `environment.includeDirectory`.
    public init(contents: String, file: String, environment: SSHConfigEnvironment = .current) throws {
        var parser = ConfigParser(environment: environment)
        self.entries = try parser.parse(contents: contents, file: file, depth: 0)
        self.file = file
        self.environment = environment
        self.warnings = parser.warnings
    }

    /// What ssh_config says for `ssh alias`, each value with its file:line; throws for settings the
    /// coordinator refuses (StrictHostKeyChecking other than yes/accept-new, ProxyCommand, UserKnownHostsFile none).
    public func resolve(alias: String) throws -> SSHConfigResolution {
        var state = ResolveState(alias: alias, environment: environment)
        var active = true
        state.walk(entries, active: &active, neverMatch: false)
        return try state.resolution()
    }
}

/// The effective ssh_config values for one alias; nil where ssh_config says nothing.
public struct SSHConfigResolution: Sendable, Equatable {
    /// The alias resolved (`ssh ALIAS`).
    public var alias: String
    /// `HostName`, `%h` expanded, lowercased as OpenSSH does.
    public var hostName: Sourced<String>?
    /// `User`.
    public var user: Sourced<String>?
    /// `Port`.
    public var port: Sourced<Int>?
    /// Every `IdentityFile`, in order, as written (tokens and `~` are expanded by `expandPath`).
    public var identityFiles: [Sourced<String>]
    /// `IdentitiesOnly`.
    public var identitiesOnly: Sourced<Bool>?
    /// `ProxyJump`; an empty chain means `ProxyJump none` (or `ProxyCommand none`).
    public var proxyJump: Sourced<[JumpSpec]>?
    /// The first `UserKnownHostsFile`, as written.
    public var userKnownHostsFile: Sourced<String>?
    /// `StrictHostKeyChecking`, already restricted to the two policies the coordinator allows.
    public var strictHostKeyChecking: Sourced<SSHTarget.HostKeyPolicy>?
    /// `ConnectTimeout` in seconds.
    public var connectTimeout: Sourced<Int>?
    /// `ServerAliveInterval` in seconds.
    public var serverAliveInterval: Sourced<Int>?
    /// `ServerAliveCountMax`.
    public var serverAliveCountMax: Sourced<Int>?
    /// Keywords in blocks that applied to this alias which the coordinator does not honour (lowercased).
    public var ignored: [Sourced<String>]
    /// Blocks skipped on the way (unsupported `Match` criteria): OpenSSH might have applied them.
    public var warnings: [SSHConfigWarning]
    /// The environment used for expansion.
    public var environment: SSHConfigEnvironment

    /// A resolution with nothing set.
    public init(alias: String, environment: SSHConfigEnvironment) {
        self.alias = alias
        self.identityFiles = []
        self.ignored = []
        self.warnings = []
        self.environment = environment
    }
}
