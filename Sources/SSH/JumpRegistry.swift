import Foundation
import Synchronization

/// The live bastion sessions of this process: every target behind the same chain shares one session per hop,
/// reference counted; a hop's session closes when its last user does.
public enum JumpHosts {
    /// Users of each live bastion session, keyed by its chain (`user@host:port[,user@host:port…]`), for tests
    /// and diagnostics. A chain of two hops holds two entries (the second hop is the first hop's user).
    public static func activeSessions() async -> [String: Int] { await JumpRegistry.shared.snapshot() }

    /// Waits until every bastion session that is being given back has disconnected (releases started by a
    /// lease's deinit or by replacing a lost bastion run on their own): call before the process exits, so
    /// no session is torn down by exit while its thread still uses it.
    public static func drain() async {
        while let next = pending.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { await next.value }
    }

    private static let pending = Mutex<[Task<Void, Never>]>([])

    /// Runs `work` as a task that `drain()` waits for.
    @discardableResult
    static func track(_ work: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        let task = Task { await work() }
        pending.withLock { $0.append(task) }
        return task
    }

    /// `user@host:port` of a hop, as the registry keys it.
    public static func key(_ chain: [SSHTarget]) -> String {
        chain.map { "\($0.user)@\($0.address.contains(":") ? "[\($0.address)]" : $0.address):\($0.port)" }.joined(separator: ",")
    }
}

/// A use of a bastion session; `release()` (or dropping the last reference) gives it back.
final class JumpLease: @unchecked Sendable {
    let bastion: Bastion
    private let id: UUID
    private let lock = NSLock()
    private var released = false

    init(bastion: Bastion, id: UUID) {
        self.bastion = bastion
        self.id = id
    }

    deinit {
        guard !released else { return }
        let key = bastion.key, id = id
        JumpHosts.track { await JumpRegistry.shared.release(key: key, id: id) }
    }

    func release() async {
        let first = lock.withLock { () -> Bool in
            defer { released = true }
            return !released
        }
        if first { await JumpRegistry.shared.release(key: bastion.key, id: id) }
    }
}

actor JumpRegistry {
    static let shared = JumpRegistry()

    private struct Entry {
        let id: UUID
        let task: Task<Bastion, Error>
        var users: Int
    }

    private var entries: [String: Entry] = [:]

    /// A lease on the session of the chain's last hop, connecting it (through the hops before it) if needed.
    func acquire(_ chain: [SSHTarget]) async throws -> JumpLease {
        let key = JumpHosts.key(chain)
        while true {
            if var entry = entries[key] {
                entry.users += 1
                entries[key] = entry
                let bastion: Bastion
                do {
                    bastion = try await entry.task.value
                } catch {
                    drop(key: key, id: entry.id)
                    throw error
                }
                if bastion.lost == nil { return JumpLease(bastion: bastion, id: entry.id) }
                // Lost since: let it go and connect afresh.
                drop(key: key, id: entry.id)
                if entries[key]?.id == entry.id { entries[key] = nil; close(bastion) }
                continue
            }
            var hop = chain[chain.count - 1]
            hop.jump = Array(chain.dropLast())
            let connecting = hop
            let task = Task<Bastion, Error> {
                let connection = try await SSHConnection.connect(connecting)
                return Bastion(key: key, connection: connection)
            }
            entries[key] = Entry(id: UUID(), task: task, users: 0)
        }
    }

    /// Gives a use back; the last user's release waits until the bastion has disconnected.
    func release(key: String, id: UUID) async {
        await drop(key: key, id: id)?.value
    }

    func snapshot() -> [String: Int] { entries.mapValues(\.users) }

    /// One user fewer; at none the entry goes and the returned task shuts the bastion down.
    @discardableResult
    private func drop(key: String, id: UUID) -> Task<Void, Never>? {
        guard var entry = entries[key], entry.id == id else { return nil }
        entry.users -= 1
        guard entry.users <= 0 else { entries[key] = entry; return nil }
        entries[key] = nil
        let task = entry.task
        return JumpHosts.track { if let bastion = try? await task.value { await bastion.shutdown() } }
    }

    private func close(_ bastion: Bastion) {
        JumpHosts.track { await bastion.shutdown() }
    }
}

extension SSHConnection {
    /// Reaches `target` through its jump chain: a lease on the last hop's session and a bridged channel to
    /// `target.address:target.port` from there. A hop that fails refuses the whole path, naming the hop.
    func openThroughJumpHosts() async throws {
        let chain = target.jump
        let lease: JumpLease
        do {
            lease = try await JumpRegistry.shared.acquire(chain)
        } catch let error as SSHError {
            throw throughHop(error)
        }
        jumpLease = lease
        // As with OpenSSH's ProxyJump, each hop gets its own ConnectTimeout: the bastion's handshake (which may
        // have queued behind other targets of the same bastion) does not eat into the target's.
        let deadline = Date.timeIntervalSinceReferenceDate + target.connectTimeout
        do {
            socket = try await lease.bastion.openTunnel(host: target.address, port: target.port, deadline: deadline)
        } catch let error as SSHError {
            throw throughHop(error)
        }
    }

    private func throughHop(_ error: SSHError) -> SSHError {
        let hop = target.jump.last.map { "\($0.name) (\(JumpHosts.key([$0])))" } ?? "?"
        let message = error.host == target.name ? error.message
            : "via jump host \(hop): \(error.host): \(error.message)"
        return SSHError(host: target.name, kind: error.kind, message: message, function: error.function, code: error.code)
    }

    /// `user@host:port,…` of the jump chain this connection went through; nil when direct.
    public var jumpChain: String? { target.jump.isEmpty ? nil : JumpHosts.key(target.jump) }
}
