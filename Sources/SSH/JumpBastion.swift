import CLibSSH2
import Foundation

/// A session that carries other sessions (DESIGN.md §9): each target behind it gets a `direct-tcpip` channel,
/// bridged to one end of a `socketpair`; the target's own session handshakes over the other end. The bridge
/// pump runs on the bastion session's thread for as long as the bastion lives, so every libssh2 call on this
/// session stays on that one thread.
///
/// libssh2 1.10 keeps at most one partly sent packet per session, and whichever call sends next completes it
/// and reports success for its own packet: so once a call that sends has returned EAGAIN with the session
/// blocked outbound, the pump repeats exactly that call before anything else.
final class Bastion: @unchecked Sendable {
    /// `user@host:port[,user@host:port…]` of the chain up to and including this hop.
    let key: String
    let connection: SSHConnection
    private let lock = NSLock()
    private var requests: [TunnelRequest] = []
    private var stopping = false
    private var lostError: SSHError?
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let finished = DispatchSemaphore(value: 0)

    struct TunnelRequest {
        var host: String
        var port: Int
        var deadline: Double
        var done: (Result<Int32, SSHError>) -> Void
    }

    init(key: String, connection: SSHConnection) {
        self.key = key
        self.connection = connection
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        wakeRead = fds[0]
        wakeWrite = fds[1]
        _ = coord_fcntl_nonblock(wakeRead)
        _ = coord_fcntl_nonblock(wakeWrite)
        connection.thread.submit { [self] in
            Pump(bastion: self).run()
            finished.signal()
        }
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Whether the bastion stopped answering or its connection died: a new user needs a new bastion.
    var lost: SSHError? { lock.lock(); defer { lock.unlock() }; return lostError }

    /// Opens a channel to `host:port` as seen from the bastion; returns the local end of the bridge, which the
    /// caller owns (closing it closes the channel).
    func openTunnel(host: String, port: Int, deadline: Double) async throws -> Int32 {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, Error>) in
            lock.lock()
            if let lostError {
                lock.unlock()
                continuation.resume(throwing: lostError)
                return
            }
            requests.append(TunnelRequest(host: host, port: port, deadline: deadline) { continuation.resume(with: $0.mapError { $0 }) })
            lock.unlock()
            wake()
        }
    }

    /// Stops the pump (closing any tunnel still open, bounded) and disconnects.
    func shutdown() async {
        requestStop()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [finished] in
                finished.wait()
                c.resume()
            }
        }
        await connection.close()
    }

    private func requestStop() {
        lock.withLock { stopping = true }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    // MARK: - The pump's view (session thread only)

    fileprivate func takeRequests() -> (requests: [TunnelRequest], stopping: Bool) {
        var drain = [UInt8](repeating: 0, count: 64)
        while Glibc.read(wakeRead, &drain, drain.count) > 0 {}
        lock.lock()
        defer { lock.unlock() }
        let taken = requests
        requests = []
        return (taken, stopping)
    }

    fileprivate func markLost(_ error: SSHError) -> [TunnelRequest] {
        lock.lock()
        defer { lock.unlock() }
        lostError = error
        let left = requests
        requests = []
        return left
    }

    fileprivate var wakeFD: Int32 { wakeRead }
}

/// One bridged channel.
private final class Tunnel {
    let channel: OpaquePointer
    /// The bastion's end of the socketpair.
    let fd: Int32
    /// Bytes from the channel not yet written to `fd`.
    var toLocal = Chunk()
    /// Bytes from `fd` not yet written to the channel.
    var toRemote = Chunk()
    var localEOF = false
    var remoteEOF = false
    var localShutdown = false
    var eofSent = false
    var closeSent = false

    init(channel: OpaquePointer, fd: Int32) {
        self.channel = channel
        self.fd = fd
    }

    deinit {
        toLocal.storage.deallocate()
        toRemote.storage.deallocate()
    }
}

/// A buffer and how much of it is already consumed.
private struct Chunk {
    static let capacity = 256 * 1024
    let storage = UnsafeMutablePointer<CChar>.allocate(capacity: Chunk.capacity)
    var start = 0
    var end = 0
    var isEmpty: Bool { start >= end }
    var count: Int { end - start }
    var base: UnsafeMutablePointer<CChar> { storage + start }
    mutating func reset() { start = 0; end = 0 }
}

/// The bridge loop of one bastion.
private final class Pump {
    let bastion: Bastion
    var connection: SSHConnection { bastion.connection }
    var tunnels: [Tunnel] = []
    /// A channel open in progress (one at a time: libssh2 keeps one open state per session).
    var opening: Bastion.TunnelRequest?
    /// The sending call that must be repeated before any other (see `Bastion`).
    var blocked: (() -> Int, (Int) -> Void)?
    /// The channel the open in progress returned.
    var opened: OpaquePointer?

    init(bastion: Bastion) { self.bastion = bastion }

    func run() {
        var queue: [Bastion.TunnelRequest] = []
        var stopAt: Double?
        connection.lastReceived = Date.timeIntervalSinceReferenceDate
        while true {
            let (new, stopping) = bastion.takeRequests()
            queue += new
            let now = Date.timeIntervalSinceReferenceDate
            if stopping, stopAt == nil {
                stopAt = now + 1
                for t in tunnels { t.localEOF = true }
            }
            if let stopAt, tunnels.isEmpty || now >= stopAt { break }
            guard let s = connection.session else { return fail(queue, SSHError(host: bastion.key, kind: .hostLost, message: "session closed")) }
            var progressed = false
            if case let (op, done)? = blocked {
                let rc = op()
                if rc == Int(LIBSSH2_ERROR_EAGAIN), outboundBlocked(s) {
                    wait(s, progressed: false)
                    if let error = silence(now: Date.timeIntervalSinceReferenceDate) { return fail(queue, error) }
                    continue
                }
                blocked = nil
                done(rc)
                progressed = true
            }
            if opening == nil, !queue.isEmpty, stopAt == nil { opening = queue.removeFirst() }
            if blocked == nil, let request = opening { progressed = open(request, session: s) || progressed }
            for t in tunnels where blocked == nil { progressed = pumpTunnel(t, session: s) || progressed }
            tunnels.removeAll { t in
                guard t.closeSent, blocked == nil else { return false }
                libssh2_channel_free(t.channel)
                Glibc.close(t.fd)
                return true
            }
            if blocked == nil, now - connection.lastKeepalive >= connection.target.keepaliveInterval {
                connection.lastKeepalive = now
                var next: Int32 = 0
                send(s, { Int(libssh2_keepalive_send(s, &next)) }, { _ in })
            }
            if let error = silence(now: now) { return fail(queue, error) }
            wait(s, progressed: progressed)
        }
        for t in tunnels {
            libssh2_channel_free(t.channel)
            Glibc.close(t.fd)
        }
        tunnels = []
        fail(queue + (opening.map { [$0] } ?? []), SSHError(host: bastion.key, kind: .hostLost, message: "jump host is closing"))
    }

    /// Runs a call that may send; when it blocks outbound it becomes `blocked` and is repeated first.
    func send(_ s: OpaquePointer, _ op: @escaping () -> Int, _ done: @escaping (Int) -> Void) {
        let rc = op()
        if rc == Int(LIBSSH2_ERROR_EAGAIN), outboundBlocked(s) { blocked = (op, done); return }
        done(rc)
    }

    func outboundBlocked(_ s: OpaquePointer) -> Bool {
        libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0
    }

    /// Drives the channel open of `request`; true when it finished (either way).
    func open(_ request: Bastion.TunnelRequest, session s: OpaquePointer) -> Bool {
        var finished = false
        send(s, { [self] in
            if let c = coord_channel_direct_tcpip(s, request.host, Int32(request.port)) { opened = c; return 0 }
            return Int(libssh2_session_last_errno(s))
        }, { [self] rc in finished = finishOpen(request, rc: Int32(rc)) })
        return finished
    }

    private func finishOpen(_ request: Bastion.TunnelRequest, rc failure: Int32) -> Bool {
        if let channel = opened {
            opened = nil
            opening = nil
            var fds: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
                libssh2_channel_free(channel)
                request.done(.failure(connection.fail(.local, "socketpair: \(String(cString: strerror(coord_errno())))")))
                return true
            }
            var size: Int32 = 1 << 20
            for fd in fds {
                _ = coord_fcntl_nonblock(fd)
                setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            tunnels.append(Tunnel(channel: channel, fd: fds[0]))
            request.done(.success(fds[1]))
            return true
        }
        if failure == LIBSSH2_ERROR_EAGAIN {
            guard Date.timeIntervalSinceReferenceDate >= request.deadline else { return false }
            opening = nil
            request.done(.failure(connection.fail(.timeout, "jump host did not open a channel to \(request.host):\(request.port) in time (connectTimeout)")))
            return true
        }
        opening = nil
        let text = connection.lastErrorText()
        let kind: SSHError.Kind = failure == LIBSSH2_ERROR_CHANNEL_FAILURE ? .unreachable : .protocolError
        request.done(.failure(connection.fail(kind, "jump host cannot reach \(request.host):\(request.port): \(text.isEmpty ? "error \(failure)" : text)",
                                              function: "libssh2_channel_direct_tcpip_ex", code: failure)))
        return true
    }

    /// Moves what it can both ways; true if anything moved.
    func pumpTunnel(_ t: Tunnel, session s: OpaquePointer) -> Bool {
        var progressed = false
        // Channel -> local end.
        if t.toLocal.isEmpty, !t.remoteEOF, !t.localEOF {
            let buffer = t.toLocal.storage
            send(s, { libssh2_channel_read_ex(t.channel, 0, buffer, Chunk.capacity) }, { n in
                if n > 0 { t.toLocal.start = 0; t.toLocal.end = n }
                else if n == 0 || n == Int(LIBSSH2_ERROR_EAGAIN) { if libssh2_channel_eof(t.channel) != 0 { t.remoteEOF = true } }
                else { t.remoteEOF = true }
            })
            if blocked != nil { return progressed }
            if !t.toLocal.isEmpty { progressed = true; connection.lastReceived = Date.timeIntervalSinceReferenceDate }
        }
        if !t.toLocal.isEmpty {
            let n = Glibc.send(t.fd, t.toLocal.base, t.toLocal.count, Int32(MSG_NOSIGNAL))
            if n > 0 { t.toLocal.start += n; progressed = true }
            else if n < 0, coord_errno() != EAGAIN, coord_errno() != EINTR { t.toLocal.reset(); t.localEOF = true }
            if t.toLocal.isEmpty { t.toLocal.reset() }
        }
        if t.remoteEOF, t.toLocal.isEmpty, !t.localShutdown {
            shutdown(t.fd, Int32(SHUT_WR))
            t.localShutdown = true
            progressed = true
        }
        // Local end -> channel.
        if t.toRemote.isEmpty, !t.localEOF {
            let n = Glibc.read(t.fd, t.toRemote.storage, Chunk.capacity)
            if n > 0 { t.toRemote.start = 0; t.toRemote.end = n; progressed = true }
            else if n == 0 || (coord_errno() != EAGAIN && coord_errno() != EINTR) { t.localEOF = true; progressed = true }
        }
        if !t.toRemote.isEmpty, !t.closeSent {
            let base = t.toRemote.base, count = t.toRemote.count
            send(s, { libssh2_channel_write_ex(t.channel, 0, base, count) }, { n in
                if n > 0 { t.toRemote.start += n; progressed = true }
                else if n < 0, n != Int(LIBSSH2_ERROR_EAGAIN) { t.toRemote.reset(); t.localEOF = true; t.remoteEOF = true }
                if t.toRemote.isEmpty { t.toRemote.reset() }
            })
            if blocked != nil { return progressed }
        }
        // The target closed its end (or the channel failed): EOF, then close; freed once nothing is blocked.
        if t.localEOF, t.toRemote.isEmpty, !t.eofSent {
            send(s, { Int(libssh2_channel_send_eof(t.channel)) }, { _ in t.eofSent = true })
            if blocked != nil { return progressed }
            progressed = true
        }
        if t.localEOF, t.eofSent, !t.closeSent {
            send(s, { Int(libssh2_channel_close(t.channel)) }, { rc in if rc != Int(LIBSSH2_ERROR_EAGAIN) { t.closeSent = true } })
            progressed = true
        }
        return progressed
    }

    /// The bastion's silence limit passed: it counts as lost.
    func silence(now: Double) -> SSHError? {
        let silent = now - connection.lastReceived
        guard silent > connection.target.silenceLimit else { return nil }
        return connection.fail(.hostLost, "jump host stopped answering: no data for \(format(silent)) s (\(connection.target.keepaliveCountMax) keepalives at \(format(connection.target.keepaliveInterval)) s)")
    }

    /// The bastion is gone: every tunnel's local end is closed (its target session sees EOF at once) and every
    /// waiting request fails.
    func fail(_ queue: [Bastion.TunnelRequest], _ error: SSHError) {
        for t in tunnels { Glibc.close(t.fd) }
        tunnels = []
        let left = bastion.markLost(error) + queue + (opening.map { [$0] } ?? [])
        opening = nil
        for r in left { r.done(.failure(error)) }
    }

    /// Polls the session socket, the wake pipe and every local end in the directions that can make progress.
    /// The session socket is polled for input only while some call would read it (else its pending bytes would
    /// wake the poll at once, forever); while nothing reads, the bastion cannot be silent by construction.
    func wait(_ s: OpaquePointer, progressed: Bool) {
        let dirs = libssh2_session_block_directions(s)
        var events: Int16 = 0
        var reading = false
        if blocked != nil {
            if dirs & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN); reading = true }
        } else {
            reading = opening != nil || tunnels.contains { $0.toLocal.isEmpty && !$0.remoteEOF && !$0.localEOF }
            if reading { events |= Int16(POLLIN) }
        }
        if dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        var fds = [pollfd(fd: connection.socket, events: events, revents: 0), pollfd(fd: bastion.wakeFD, events: Int16(POLLIN), revents: 0)]
        if blocked == nil {
            for t in tunnels {
                var e: Int16 = 0
                if t.toRemote.isEmpty, !t.localEOF { e |= Int16(POLLIN) }
                if !t.toLocal.isEmpty { e |= Int16(POLLOUT) }
                fds.append(pollfd(fd: t.fd, events: e, revents: 0))
            }
        }
        _ = poll(&fds, nfds_t(fds.count), progressed ? 0 : (opening != nil ? 10 : 100))
        if !reading || fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            connection.lastReceived = Date.timeIntervalSinceReferenceDate
        }
    }
}
