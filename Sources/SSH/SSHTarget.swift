import Foundation

/// Where and how to reach one host. Built by callers from an inventory entry.
public struct SSHTarget: Sendable, Equatable {
    /// Host-key policy; there is deliberately no "no".
    public enum HostKeyPolicy: String, Sendable {
        /// Unknown or changed key: refuse.
        case strict = "yes"
        /// Unknown key: append it to known_hosts; changed key: refuse.
        case acceptNew = "accept-new"
    }

    /// Name used in messages.
    public var name: String
    /// DNS name or IP address.
    public var address: String
    /// TCP port.
    public var port: Int
    /// Login user.
    public var user: String
    /// Private key file; nil = ssh-agent, then ~/.ssh/id_ed25519 and id_ecdsa.
    public var identityFile: String?
    /// known_hosts file.
    public var knownHosts: String
    /// Host-key policy.
    public var hostKeyPolicy: HostKeyPolicy
    /// Seconds for TCP connect + handshake + auth.
    public var connectTimeout: Double
    /// Seconds between keepalives.
    public var keepaliveInterval: Double
    /// Silent intervals before the host counts as lost.
    public var keepaliveCountMax: Int
    /// Jump hosts, first hop first, each a full target of its own (its own key file, known_hosts, policy):
    /// hop k is reached through hops 0..<k, this target through all of them. Empty: connect directly.
    public var jump: [SSHTarget]

    /// A target.
    public init(name: String, address: String, port: Int = 22, user: String, identityFile: String? = nil,
                knownHosts: String, hostKeyPolicy: HostKeyPolicy = .strict, connectTimeout: Double = 10,
                keepaliveInterval: Double = 5, keepaliveCountMax: Int = 3, jump: [SSHTarget] = []) {
        self.name = name
        self.address = address
        self.port = port
        self.user = user
        self.identityFile = identityFile
        self.knownHosts = knownHosts
        self.hostKeyPolicy = hostKeyPolicy
        self.connectTimeout = connectTimeout
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveCountMax = keepaliveCountMax
        self.jump = jump
    }

    /// Seconds of silence after which the host counts as lost.
    public var silenceLimit: Double { keepaliveInterval * Double(max(1, keepaliveCountMax)) }
}
