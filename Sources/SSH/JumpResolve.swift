import Foundation

extension JumpSpec {
    /// One hop as the inventory's `jump` or ssh_config's `ProxyJump` writes it: `[user@]host[:port]` (or
    /// `ssh://[user@]host[:port]`); nil when OpenSSH would refuse it.
    public init?(parsing hop: String) {
        guard let spec = ConfigValue.jump(hop) else { return nil }
        self = spec
    }
}

extension SSHConfig {
    /// Jump hops deeper than this are taken for a loop between ProxyJump settings.
    static let maxJumpDepth = 8

    /// The target for an inventory host whose `address` may be a `Host` alias: `base` carries the inventory's
    /// values (host-level, then `defaults`, then built-in), `hostFields` the fields the host set itself. Layers,
    /// strongest first: host-level inventory fields, ssh_config, `defaults` + built-ins. `hostJump` is the
    /// host's own `jump` (wins over ProxyJump), `defaultsJump` the `defaults` one (used when ssh_config has
    /// no ProxyJump). Each hop is resolved on its own as an alias too (ssh_config wins over what it inherits
    /// from `base`: user, key, known_hosts, policy, timeouts); the first hop's own ProxyJump is followed.
    public func configuredTarget(_ base: SSHTarget, hostFields: Set<SSHTargetField>, hostJump: [JumpSpec]? = nil,
                                 defaultsJump: [JumpSpec]? = nil) throws -> SSHConfiguredTarget {
        let resolution = try resolve(alias: base.address)
        var inventoryJump = hostJump
        if inventoryJump == nil, resolution.proxyJump == nil { inventoryJump = defaultsJump }
        var configured = try resolution.applying(to: base, inventoryFields: hostFields, inventoryJump: inventoryJump)
        configured.target.jump = try hops(configured.proxyJump, inheriting: base, depth: 0)
        return configured
    }

    /// The flat chain for `specs`: hop k is reached through hops 0..<k.
    func hops(_ specs: [JumpSpec], inheriting base: SSHTarget, depth: Int) throws -> [SSHTarget] {
        guard !specs.isEmpty else { return [] }
        guard depth < Self.maxJumpDepth else {
            throw SSHConfigError(file: file, message: "ProxyJump chain deeper than \(Self.maxJumpDepth) hops "
                + "(\(specs.map(\.description).joined(separator: ","))): a loop between ProxyJump settings?")
        }
        var chain: [SSHTarget] = []
        for (index, spec) in specs.enumerated() {
            var hop = base
            hop.name = spec.description
            hop.address = spec.host
            hop.port = spec.port ?? 22
            hop.jump = []
            var fields: Set<SSHTargetField> = []
            if let user = spec.user { hop.user = user; fields.insert(.user) }
            if spec.port != nil { fields.insert(.port) }
            let resolution = try resolve(alias: spec.host)
            // Later hops go through the hops before them, whatever their own ProxyJump says (as ssh -J does).
            let configured = try resolution.applying(to: hop, inventoryFields: fields, inventoryJump: index == 0 ? nil : [])
            if index == 0 { chain = try hops(configured.proxyJump, inheriting: base, depth: depth + 1) }
            chain.append(configured.target)
        }
        return chain
    }
}
