import Foundation

/// A value of the connection that can come from the inventory, from ssh_config or from a built-in default.
public enum SSHTargetField: String, Sendable, CaseIterable, Hashable, Comparable {
    /// `SSHTarget.address` (ssh_config `HostName`).
    case address
    /// `SSHTarget.port` (`Port`).
    case port
    /// `SSHTarget.user` (`User`).
    case user
    /// `SSHTarget.identityFile` (`IdentityFile`).
    case identityFile
    /// `SSHTarget.knownHosts` (`UserKnownHostsFile`).
    case knownHosts
    /// `SSHTarget.hostKeyPolicy` (`StrictHostKeyChecking`).
    case hostKeyPolicy
    /// `SSHTarget.connectTimeout` (`ConnectTimeout`).
    case connectTimeout
    /// `SSHTarget.keepaliveInterval` (`ServerAliveInterval`).
    case keepaliveInterval
    /// `SSHTarget.keepaliveCountMax` (`ServerAliveCountMax`).
    case keepaliveCountMax
    /// The jump chain (`ProxyJump`, or the inventory's `jump`).
    case proxyJump

    /// Declaration order, so `plan` lists fields the same way every time.
    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// An `SSHTarget` with ssh_config applied, the extras `SSHTarget` has no field for, and each value's source.
public struct SSHConfiguredTarget: Sendable, Equatable {
    /// The target to connect with.
    public var target: SSHTarget
    /// Hops to go through, first hop first; empty for a direct connection. Each hop's host may itself be an
    /// ssh_config alias: resolve it on its own, as ssh does.
    public var proxyJump: [JumpSpec]
    /// Every identity file, expanded, in the order ssh would try them (`target.identityFile` is the first that exists).
    public var identityFiles: [String]
    /// `IdentitiesOnly`: offer only these files, not every key the agent holds.
    public var identitiesOnly: Bool
    /// Where each field's effective value came from.
    public var provenance: [SSHTargetField: ConfigSource]
    /// Values read but not used (unsupported Match blocks skipped, zero timeouts kept at the default).
    public var warnings: [String]

    /// `field = value (source)` lines in field order, for `coordinator plan`.
    public var provenanceLines: [String] {
        provenance.keys.sorted().map { field in
            "\(field.rawValue) = \(value(of: field)) (\(provenance[field]!))"
        }
    }

    /// The effective value of `field`, as text.
    public func value(of field: SSHTargetField) -> String {
        switch field {
        case .address: return target.address
        case .port: return String(target.port)
        case .user: return target.user
        case .identityFile: return target.identityFile ?? "(agent, then default keys)"
        case .knownHosts: return target.knownHosts
        case .hostKeyPolicy: return target.hostKeyPolicy.rawValue
        case .connectTimeout: return String(describing: target.connectTimeout)
        case .keepaliveInterval: return String(describing: target.keepaliveInterval)
        case .keepaliveCountMax: return String(target.keepaliveCountMax)
        case .proxyJump: return proxyJump.isEmpty ? "none" : proxyJump.map(\.description).joined(separator: ",")
        }
    }
}

extension SSHConfigResolution {
    /// Applies this resolution to `target` (built from the inventory, whose `address` is this alias):
    /// fields in `inventoryFields` were set explicitly there and win; otherwise ssh_config wins over the
    /// target's value, which then counts as the built-in default. `inventoryJump` is the inventory's own jump
    /// chain, if any. Tokens in IdentityFile / UserKnownHostsFile expand with the final host, user and port.
    public func applying(to target: SSHTarget, inventoryFields: Set<SSHTargetField>, inventoryJump: [JumpSpec]? = nil,
                         fileExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) })
        throws -> SSHConfiguredTarget {
        var t = target
        var provenance: [SSHTargetField: ConfigSource] = [:]
        var warnings = self.warnings.map(\.description)

        func pick<T>(_ field: SSHTargetField, _ configured: Sourced<T>?, _ set: (T) -> Void) {
            if inventoryFields.contains(field) {
                provenance[field] = .inventory
            } else if let configured {
                set(configured.value)
                provenance[field] = configured.source
            } else {
                provenance[field] = .builtInDefault
            }
        }
        /// OpenSSH reads 0 as "never": an unattended run must notice a dead host, so 0 keeps the default.
        func nonZero(_ value: Sourced<Int>?, _ keyword: String, _ fallback: Double) -> Sourced<Int>? {
            guard let value, value.value == 0 else { return value }
            warnings.append("\(value.source): \(keyword) 0 (never) is not allowed for unattended runs; using \(fallback)")
            return nil
        }

        pick(.address, hostName) { t.address = $0 }
        if hostName == nil, !inventoryFields.contains(.address) { provenance[.address] = .inventory }
        pick(.user, user) { t.user = $0 }
        pick(.port, port) { t.port = $0 }
        pick(.hostKeyPolicy, strictHostKeyChecking) { t.hostKeyPolicy = $0 }
        pick(.connectTimeout, nonZero(connectTimeout, "ConnectTimeout", target.connectTimeout)) {
            t.connectTimeout = Double($0)
        }
        pick(.keepaliveInterval, nonZero(serverAliveInterval, "ServerAliveInterval", target.keepaliveInterval)) {
            t.keepaliveInterval = Double($0)
        }
        pick(.keepaliveCountMax, serverAliveCountMax) { t.keepaliveCountMax = $0 }

        let tokens = ConfigPath.Tokens(hostName: t.address.lowercased(), user: t.user, port: t.port, alias: alias)
        func expand(_ path: Sourced<String>, _ keyword: String) throws -> Sourced<String> {
            Sourced(try ConfigPath.expand(path.value, tokens: tokens, environment: environment, keyword: keyword,
                                          at: path.source), source: path.source)
        }

        var files = target.identityFile.map { [$0] } ?? []
        if inventoryFields.contains(.identityFile) {
            provenance[.identityFile] = .inventory
        } else if !identityFiles.isEmpty {
            let expanded = try identityFiles.map { try expand($0, "IdentityFile") }
            let chosen = expanded.first(where: { fileExists($0.value) }) ?? expanded[0]
            t.identityFile = chosen.value
            provenance[.identityFile] = chosen.source
            files = expanded.map(\.value)
        } else {
            provenance[.identityFile] = .builtInDefault
        }

        let knownHosts = try userKnownHostsFile.map { try expand($0, "UserKnownHostsFile") }
        pick(.knownHosts, knownHosts) { t.knownHosts = $0 }

        var jump: [JumpSpec] = []
        if let inventoryJump {
            jump = inventoryJump
            provenance[.proxyJump] = .inventory
        } else {
            pick(.proxyJump, proxyJump) { jump = $0 }
        }

        return SSHConfiguredTarget(target: t, proxyJump: jump, identityFiles: files,
                                   identitiesOnly: identitiesOnly?.value ?? false, provenance: provenance,
                                   warnings: warnings)
    }
}
