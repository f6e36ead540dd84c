import Foundation

/// Walks the parsed entries for one alias with OpenSSH's `activep` logic: a Host or Match line switches
/// the following lines on or off, an Include keeps the includer's state, the first value of each keyword wins.
struct ResolveState {
    let alias: String
    let environment: SSHConfigEnvironment
    var hostName: Sourced<String>?
    var user: Sourced<String>?
    var port: Sourced<Int>?
    var identityFiles: [Sourced<String>] = []
    var identitiesOnly: Sourced<Bool>?
    var proxy: Sourced<ProxySetting>?
    var knownHosts: Sourced<String>?
    var strict: (raw: String, policy: SSHTarget.HostKeyPolicy?, at: ConfigLocation)?
    var connectTimeout: Sourced<Int>?
    var serverAliveInterval: Sourced<Int>?
    var serverAliveCountMax: Sourced<Int>?
    var ignored: [Sourced<String>] = []
    var warnings: [SSHConfigWarning] = []

    init(alias: String, environment: SSHConfigEnvironment) {
        self.alias = alias
        self.environment = environment
    }

    /// `neverMatch`: an Include read inside an inactive block (OpenSSH's SSHCONF_NEVERMATCH) applies nothing.
    mutating func walk(_ entries: [ConfigEntry], active: inout Bool, neverMatch: Bool) {
        for entry in entries {
            switch entry {
            case let .host(patterns, _):
                active = !neverMatch && hostMatches(patterns)
            case let .match(.unsupported(message), at):
                if !neverMatch { warnings.append(SSHConfigWarning(file: at.file, line: at.line, message: message)) }
                active = false
            case let .match(.criteria(criteria), _):
                active = !neverMatch && matches(criteria)
            case let .include(files, _):
                let outer = active
                for file in files {
                    walk(file, active: &active, neverMatch: neverMatch || !outer)
                    active = outer
                }
            case let .setting(setting, at):
                if active { apply(setting, at: at) }
            case let .ignored(keyword, at):
                if active { ignored.append(Sourced(keyword, source: at.source)) }
            }
        }
    }

    /// `Host`: case-sensitive against the alias as typed; any matching `!pattern` vetoes the line.
    private func hostMatches(_ patterns: [String]) -> Bool {
        var matched = false
        for pattern in patterns {
            let negated = pattern.hasPrefix("!")
            guard ConfigPattern.matches(alias, negated ? String(pattern.dropFirst()) : pattern) else { continue }
            if negated { return false }
            matched = true
        }
        return matched
    }

    /// `Match`: every criterion must hold; `host` sees HostName as set so far (`%h` expanded).
    private func matches(_ criteria: [MatchCriterion]) -> Bool {
        let host = hostName.flatMap { ConfigPath.expandHostName($0.value, alias: alias) } ?? alias
        let remoteUser = user?.value ?? environment.localUser
        for criterion in criteria {
            var result: Bool
            switch criterion.kind {
            case .all: result = true
            case .host: result = ConfigPattern.list(host, criterion.patterns, lowercase: true) == 1
            case .originalhost: result = ConfigPattern.list(alias, criterion.patterns, lowercase: true) == 1
            case .user: result = ConfigPattern.list(remoteUser, criterion.patterns, lowercase: false) == 1
            case .localuser: result = ConfigPattern.list(environment.localUser, criterion.patterns, lowercase: false) == 1
            }
            if criterion.negated { result.toggle() }
            if !result { return false }
        }
        return true
    }

    private mutating func apply(_ setting: ConfigSetting, at: ConfigLocation) {
        func first<T>(_ slot: inout Sourced<T>?, _ value: T) { if slot == nil { slot = Sourced(value, source: at.source) } }
        switch setting {
        case let .hostName(v): first(&hostName, v)
        case let .user(v): first(&user, v)
        case let .port(v): first(&port, v)
        case let .identityFile(v):
            // add_identity_file: a repeated path is registered once.
            if !identityFiles.contains(where: { $0.value == v }) { identityFiles.append(Sourced(v, source: at.source)) }
        case let .identitiesOnly(v): first(&identitiesOnly, v)
        case let .proxy(v): first(&proxy, v)
        case let .userKnownHostsFile(v): first(&knownHosts, v)
        case let .strictHostKeyChecking(raw, policy): if strict == nil { strict = (raw, policy, at) }
        case let .connectTimeout(v): first(&connectTimeout, v)
        case let .serverAliveInterval(v): first(&serverAliveInterval, v)
        case let .serverAliveCountMax(v): first(&serverAliveCountMax, v)
        }
    }

    /// The resolution, refusing the effective values the coordinator cannot honour.
    func resolution() throws -> SSHConfigResolution {
        func fail(_ source: ConfigSource, _ message: String) -> SSHConfigError {
            guard case let .sshConfig(file, line) = source else { return SSHConfigError(file: "ssh_config", message: message) }
            return SSHConfigError(file: file, line: line, message: message)
        }
        var r = SSHConfigResolution(alias: alias, environment: environment)
        if let hostName {
            guard let expanded = ConfigPath.expandHostName(hostName.value, alias: alias) else {
                throw fail(hostName.source, "HostName '\(hostName.value)': only the tokens %h and %% are allowed")
            }
            // ssh lowercases the host name it connects to and looks up in known_hosts.
            r.hostName = Sourced(expanded.lowercased(), source: hostName.source)
        }
        r.user = user
        r.port = port
        r.identityFiles = identityFiles
        r.identitiesOnly = identitiesOnly
        if let proxy {
            switch proxy.value {
            case let .jump(hops): r.proxyJump = Sourced(hops, source: proxy.source)
            case .none: r.proxyJump = Sourced([], source: proxy.source)
            case let .command(command):
                throw fail(proxy.source, "ProxyCommand '\(command)' applies to \(alias), but the coordinator never runs "
                    + "local commands to reach a host: use ProxyJump (or the inventory's jump) instead")
            }
        }
        if let knownHosts {
            guard knownHosts.value.lowercased() != "none" else {
                throw fail(knownHosts.source, "UserKnownHostsFile none applies to \(alias), but the coordinator checks "
                    + "every host key against a known_hosts file: name one")
            }
            r.userKnownHostsFile = knownHosts
        }
        if let strict {
            guard let policy = strict.policy else {
                throw fail(strict.at.source, "StrictHostKeyChecking \(strict.raw) applies to \(alias), but the coordinator "
                    + "only accepts yes or accept-new: there is no \"no\" (and nobody to answer \"ask\"). Add the key to "
                    + "known_hosts, or use accept-new to record unknown keys, or give this host its own Host block")
            }
            r.strictHostKeyChecking = Sourced(policy, source: strict.at.source)
        }
        r.connectTimeout = connectTimeout
        r.serverAliveInterval = serverAliveInterval
        r.serverAliveCountMax = serverAliveCountMax
        r.ignored = ignored
        r.warnings = warnings
        return r
    }
}
