// SSH: sessions to build hosts over libssh2 — connect, host-key check against known_hosts, auth,
// streamed exec with cancellation, keepalive-based loss detection, uploads. The only module that imports
// CLibSSH2. It must not know about inventories, engines or images: callers describe a target with `SSHTarget`.
import Foundation
import Support

/// Everything that can go wrong reaching or talking to a host. Host-key and auth failures are never retried.
public struct SSHError: UserFacingError, Equatable {
    /// What kind of failure, which decides whether another attempt could help.
    public enum Kind: String, Sendable, Codable {
        /// TCP connect failed or was refused.
        case unreachable
        /// Connect, handshake or a command did not finish in time.
        case timeout
        /// The host key is not in known_hosts (policy `yes`).
        case hostKeyUnknown
        /// known_hosts holds a different key for this host.
        case hostKeyChanged
        /// The key is marked `@revoked`.
        case hostKeyRevoked
        /// The server refused every credential we had.
        case authFailed
        /// The connection died or the host stopped answering keepalives.
        case hostLost
        /// A libssh2 call failed in a way not covered above.
        case protocolError
        /// A local problem: unreadable key file, known_hosts not writable, …
        case local
    }

    /// The host's name (from the inventory) or address.
    public var host: String
    /// Kind of failure.
    public var kind: Kind
    /// What happened, for a human.
    public var message: String
    /// The libssh2 function that failed, if one did.
    public var function: String?
    /// The libssh2 error code, if any.
    public var code: Int32?

    /// An error.
    public init(host: String, kind: Kind, message: String, function: String? = nil, code: Int32? = nil) {
        self.host = host
        self.kind = kind
        self.message = message
        self.function = function
        self.code = code
    }

    /// Whether another host (or a later attempt) could succeed: never for host-key or auth refusals.
    public var isInfrastructureTransient: Bool {
        switch kind {
        case .unreachable, .timeout, .hostLost, .protocolError: return true
        case .hostKeyUnknown, .hostKeyChanged, .hostKeyRevoked, .authFailed, .local: return false
        }
    }

    public var exitCode: ExitCode { .infrastructure }

    public var description: String {
        var s = "\(host): \(message)"
        if let function { s += " (\(function)\(code.map { " rc=\($0)" } ?? ""))" }
        return s
    }
}
