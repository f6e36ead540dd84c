import CLibSSH2
import Foundation
import Support

private let libssh2Ready: Bool = { libssh2_init(0) == 0 }()

/// One SSH session to one host, driven by its own thread in non-blocking mode with `poll()`, so that
/// keepalives, deadlines and cancellation are checked while any call waits.
public final class SSHConnection: @unchecked Sendable {
    /// The target this connection reached.
    public let target: SSHTarget
    /// `SHA256:…` of the host key the server presented.
    public private(set) var hostKeyFingerprint = ""
    /// Key type of the host key, e.g. `ssh-ed25519`.
    public private(set) var hostKeyType = ""
    /// How the user was authenticated (`publickey (FILE)` or `agent (COMMENT)`).
    public private(set) var authMethod = ""
    /// Seconds spent in TCP connect + handshake + auth.
    public private(set) var connectSeconds: Double = 0

    let thread: SessionThread
    var session: OpaquePointer?
    var socket: Int32 = -1
    /// When the host last sent anything; any data answers the keepalives sent before it.
    var lastReceived = Date.timeIntervalSinceReferenceDate { didSet { unansweredKeepalives = 0 } }
    var lastKeepalive = Date.timeIntervalSinceReferenceDate
    /// Keepalives sent since the host last sent anything (OpenSSH's ServerAliveCountMax counts these).
    var unansweredKeepalives = 0
    /// The bastion session this one runs through (`target.jump`), held until this one closes.
    var jumpLease: JumpLease?
    private var closed = false
    private var established = false
    /// Set by a transport failure: teardown then closes the socket and leaks the libssh2 session (a few KiB
    /// per lost host) instead of running libssh2's free on a broken state.
    var broken = false

    private init(target: SSHTarget) {
        self.target = target
        thread = SessionThread(name: "ssh \(target.name)")
    }

    deinit {
        teardown()
        thread.stop()
    }

    /// Connects (through `target.jump`, each hop checked on its own, when it names hops), checks the host
    /// key, authenticates. Throws `SSHError`.
    public static func connect(_ target: SSHTarget) async throws -> SSHConnection {
        let connection = SSHConnection(target: target)
        do {
            if !target.jump.isEmpty { try await connection.openThroughJumpHosts() }
            try await connection.thread.perform { try connection.open() }
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    /// Disconnects politely (bounded) and frees the session, then gives back its bastion session. Idempotent.
    public func close() async {
        _ = try? await thread.perform { [self] in teardown() }
        await jumpLease?.release()
    }

    // MARK: - Opening

    private func open() throws {
        guard libssh2Ready else { throw fail(.local, "libssh2_init failed") }
        let start = Date.timeIntervalSinceReferenceDate
        let deadline = start + target.connectTimeout
        // Through jump hosts, `socket` is already the local end of the bridge.
        if socket < 0 { socket = try openSocket(deadline: deadline) }
        guard let s = coord_session_init() else { throw fail(.local, "libssh2_session_init failed") }
        session = s
        libssh2_session_set_blocking(s, 0)
        let known = try KnownHosts(file: target.knownHosts.expandingTilde)
        preferKnownHostKeyTypes(known.keyTypes(host: target.address, port: target.port))
        // libssh2 1.10 encrypts CTR mode one block per call: AES-128 (10 rounds) beats its default AES-256 (14).
        for method in [LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_CRYPT_SC] {
            _ = libssh2_session_method_pref(s, method, "aes128-ctr,aes192-ctr,aes256-ctr,aes128-cbc,aes256-cbc")
        }
        try call("libssh2_session_handshake", deadline: deadline, keepalive: false) { libssh2_session_handshake(s, self.socket) }
        try checkHostKey(known)
        try authenticate(deadline: deadline)
        libssh2_keepalive_config(s, 1, UInt32(max(1, target.keepaliveInterval.rounded(.up))))
        lastReceived = Date.timeIntervalSinceReferenceDate
        connectSeconds = lastReceived - start
        established = true
    }

    private func openSocket(deadline: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(target.address, String(target.port), &hints, &list)
        guard rc == 0, let first = list else {
            throw fail(.unreachable, "cannot resolve \(target.address): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            defer { ai = a.pointee.ai_next }
            let fd = Glibc.socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd < 0 { continue }
            _ = coord_fcntl_nonblock(fd)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
            guard coord_errno() == EINPROGRESS else {
                lastError = String(cString: strerror(coord_errno()))
                Glibc.close(fd)
                continue
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let remaining = max(0, deadline - Date.timeIntervalSinceReferenceDate)
            let n = poll(&pfd, 1, Int32(remaining * 1000))
            if n == 0 {
                Glibc.close(fd)
                throw fail(.timeout, "TCP connect to \(target.address):\(target.port) timed out after \(format(target.connectTimeout)) s (connectTimeout)")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err == 0 { return fd }
            lastError = String(cString: strerror(err))
            Glibc.close(fd)
        }
        throw fail(.unreachable, "cannot connect to \(target.address):\(target.port): \(lastError)")
    }

    private func preferKnownHostKeyTypes(_ types: [String]) {
        guard let s = session, !types.isEmpty else { return }
        let all = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                   "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        func methods(_ type: String) -> [String] { type == "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type] }
        var ordered = types.flatMap(methods).filter(all.contains)
        ordered += all.filter { !ordered.contains($0) }
        _ = libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, ordered.joined(separator: ","))
    }

    private func checkHostKey(_ known: KnownHosts) throws {
        guard let s = session else { return }
        var length = 0
        var type: Int32 = 0
        guard let raw = libssh2_session_hostkey(s, &length, &type) else {
            throw fail(.protocolError, "server presented no host key", function: "libssh2_session_hostkey")
        }
        let key = [UInt8](UnsafeRawBufferPointer(start: raw, count: length))
        hostKeyType = Self.keyTypeName(type)
        hostKeyFingerprint = sshFingerprint(key)
        let shown = "\(hostKeyType) \(hostKeyFingerprint)"
        let file = target.knownHosts
        switch known.verdict(host: target.address, port: target.port, keyType: hostKeyType, key: key) {
        case .known:
            return
        case .revoked(let line):
            throw fail(.hostKeyRevoked, "host key \(shown) is marked @revoked in \(file):\(line); refusing")
        case .changed(let line):
            throw fail(.hostKeyChanged, "HOST KEY CHANGED: \(KnownHosts.lookupName(host: target.address, port: target.port)) presented \(shown), but \(file):\(line) holds another \(hostKeyType) key; refusing (possible man-in-the-middle). If the change is expected, remove that line (ssh-keygen -R).")
        case .otherTypesKnown(let types):
            throw fail(.hostKeyChanged, "host presented \(shown), but \(file) knows it only by \(types.joined(separator: ", ")) keys; refusing")
        case .unknown:
            guard target.hostKeyPolicy == .acceptNew else {
                throw fail(.hostKeyUnknown, "host key \(shown) is not in \(file) and hostKeyPolicy is yes; refusing. Verify the fingerprint, then add it (ssh-keyscan) or use hostKeyPolicy accept-new")
            }
            try appendKnownHost(KnownHosts.line(host: target.address, port: target.port, keyType: hostKeyType, key: key))
        }
    }

    private func appendKnownHost(_ line: String) throws {
        let path = target.knownHosts.expandingTilde
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { throw fail(.local, "cannot record the host key in \(path): \(String(cString: strerror(coord_errno())))") }
        defer { Glibc.close(fd) }
        // Start on a fresh line when the file does not end with one.
        var prefix = ""
        if let existing = FileManager.default.contents(atPath: path), let last = existing.last, last != UInt8(ascii: "\n") { prefix = "\n" }
        let bytes = Array((prefix + line + "\n").utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw fail(.local, "short write to \(path)") }
    }

    static func keyTypeName(_ type: Int32) -> String {
        switch type {
        case LIBSSH2_HOSTKEY_TYPE_RSA: return "ssh-rsa"
        case LIBSSH2_HOSTKEY_TYPE_DSS: return "ssh-dss"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return "ecdsa-sha2-nistp256"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return "ecdsa-sha2-nistp384"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return "ecdsa-sha2-nistp521"
        case LIBSSH2_HOSTKEY_TYPE_ED25519: return "ssh-ed25519"
        default: return "unknown-\(type)"
        }
    }

    // MARK: - Authentication

    private func authenticate(deadline: Double) throws {
        guard let s = session else { return }
        let user = target.user
        var methodsPtr: UnsafeMutablePointer<CChar>?
        while true {
            methodsPtr = libssh2_userauth_list(s, user, UInt32(user.utf8.count))
            if methodsPtr != nil || libssh2_userauth_authenticated(s) != 0 { break }
            let rc = libssh2_session_last_errno(s)
            guard rc == LIBSSH2_ERROR_EAGAIN else { throw libssh2Failure("libssh2_userauth_list", rc) }
            try waitSocket(deadline: deadline, keepalive: false)
        }
        if libssh2_userauth_authenticated(s) != 0 { authMethod = "none"; return }
        let offered = methodsPtr.map { String(cString: $0) } ?? ""
        guard offered.split(separator: ",").contains("publickey") else {
            throw fail(.authFailed, "server offers only \(offered) for \(user); coordinator authenticates with public keys")
        }
        var tried: [String] = []
        if let file = target.identityFile {
            try authenticate(withKeyFile: file.expandingTilde, deadline: deadline, required: true, offered: offered)
            return
        }
        if ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"] != nil {
            if try authenticateWithAgent(deadline: deadline, tried: &tried) { return }
        }
        for name in ["id_ed25519", "id_ecdsa"] {
            let file = "~/.ssh/\(name)".expandingTilde
            guard FileManager.default.fileExists(atPath: file) else { continue }
            tried.append(file)
            if try authenticate(withKeyFile: file, deadline: deadline, required: false, offered: offered) { return }
        }
        throw fail(.authFailed, "authentication as \(user) refused; tried \(tried.isEmpty ? "nothing (no identityFile, no agent keys, no ~/.ssh/id_ed25519 or id_ecdsa)" : tried.joined(separator: ", ")); server offers: \(offered)")
    }

    @discardableResult
    private func authenticate(withKeyFile file: String, deadline: Double, required: Bool, offered: String) throws -> Bool {
        guard let s = session else { return false }
        guard let contents = FileManager.default.contents(atPath: file) else {
            throw fail(.local, "cannot read identity file \(file)")
        }
        let kind = PrivateKeyKind(contents)
        if kind == .encrypted {
            throw fail(.local, "identity file \(file) is passphrase-protected; load it into ssh-agent (ssh-add) and leave identityFile unset")
        }
        let pub = FileManager.default.fileExists(atPath: file + ".pub") ? file + ".pub" : nil
        let user = target.user
        while true {
            let rc = libssh2_userauth_publickey_fromfile_ex(s, user, UInt32(user.utf8.count), pub, file, nil)
            if rc == 0 { authMethod = "publickey \(file)"; return true }
            if rc == LIBSSH2_ERROR_EAGAIN { try waitSocket(deadline: deadline, keepalive: false); continue }
            if kind == .rsa {
                throw fail(.authFailed, "RSA key \(file) refused: libssh2 1.10 signs RSA keys only with ssh-rsa (SHA-1), which OpenSSH ≥ 8.8 refuses by default. Use an ed25519 or ECDSA key (ssh-keygen -t ed25519), or ssh-agent with such a key")
            }
            guard required else { return false }
            throw fail(.authFailed, "public key \(file) refused for \(user) (server offers: \(offered)): \(lastErrorText())", function: "libssh2_userauth_publickey_fromfile_ex", code: rc)
        }
    }

    private func authenticateWithAgent(deadline: Double, tried: inout [String]) throws -> Bool {
        guard let s = session, let agent = libssh2_agent_init(s) else { return false }
        defer { libssh2_agent_disconnect(agent); libssh2_agent_free(agent) }
        // Agent calls talk to a local unix socket; libssh2 runs them blocking.
        libssh2_session_set_blocking(s, 1)
        libssh2_session_set_timeout(s, Int(max(1, (deadline - Date.timeIntervalSinceReferenceDate) * 1000)))
        defer { libssh2_session_set_timeout(s, 0); libssh2_session_set_blocking(s, 0) }
        guard libssh2_agent_connect(agent) == 0, libssh2_agent_list_identities(agent) == 0 else { return false }
        var prev: UnsafeMutablePointer<libssh2_agent_publickey>?
        var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
        while libssh2_agent_get_identity(agent, &identity, prev) == 0, let id = identity {
            let comment = id.pointee.comment.map { String(cString: $0) } ?? "agent key"
            tried.append("agent: \(comment)")
            if libssh2_agent_userauth(agent, target.user, id) == 0 { authMethod = "agent \(comment)"; return true }
            prev = id
        }
        return false
    }

    // MARK: - Teardown

    private func teardown() {
        guard !closed else { return }
        closed = true
        if let s = session {
            // Bounded polite disconnect, only on an established session: a half-done handshake (frozen host)
            // cannot carry one, and trying would only add a second to the failure.
            let polite = established && !broken
            let deadline = Date.timeIntervalSinceReferenceDate + (polite ? 1 : 0)
            while polite, coord_session_disconnect(s, "coordinator done") == LIBSSH2_ERROR_EAGAIN,
                  Date.timeIntervalSinceReferenceDate < deadline {
                var pfd = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 50)
            }
            if !broken { libssh2_session_free(s) }
            session = nil
        }
        if socket >= 0 { Glibc.close(socket); socket = -1 }
    }

    // MARK: - Waiting and errors

    /// Runs a non-blocking libssh2 call until it stops returning EAGAIN.
    @discardableResult
    func call(_ function: String, deadline: Double?, keepalive: Bool = true, cancel: CancelFlag? = nil, _ body: () -> Int32) throws -> Int32 {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            guard rc == LIBSSH2_ERROR_EAGAIN else { throw libssh2Failure(function, rc) }
            try waitSocket(deadline: deadline, keepalive: keepalive, cancel: cancel)
        }
    }

    /// Waits (≤ 100 ms) for the socket in the direction libssh2 needs, sends keepalives, and throws when the
    /// host has been silent past the keepalive bound, the deadline passed, or the operation was cancelled.
    func waitSocket(deadline: Double?, keepalive: Bool = true, cancel: CancelFlag? = nil, extra: Int32 = -1) throws {
        guard let s = session else { throw fail(.hostLost, "session closed") }
        let dirs = libssh2_session_block_directions(s)
        var events = Int16(POLLIN)
        if dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        var fds = [pollfd(fd: socket, events: events, revents: 0)]
        if extra >= 0 { fds.append(pollfd(fd: extra, events: Int16(POLLIN), revents: 0)) }
        var timeout = 100.0
        if let deadline { timeout = min(timeout, max(0, (deadline - Date.timeIntervalSinceReferenceDate) * 1000)) }
        _ = poll(&fds, nfds_t(fds.count), Int32(timeout))
        let now = Date.timeIntervalSinceReferenceDate
        if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { lastReceived = now }
        try checkAlive(now: now, deadline: deadline, keepalive: keepalive, cancel: cancel)
    }

    func checkAlive(now: Double, deadline: Double?, keepalive: Bool, cancel: CancelFlag?) throws {
        if let cancel, cancel.isSet { throw CancellationError() }
        if let deadline, now >= deadline {
            throw fail(.timeout, keepalive ? "operation timed out" : "no SSH handshake/auth within \(format(target.connectTimeout)) s (connectTimeout)")
        }
        guard keepalive, let s = session else { return }
        // Never between a half-sent packet and the call that must finish it (see PendingSend).
        let halfSent = libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0
        if !halfSent, now - lastKeepalive >= target.keepaliveInterval {
            var next: Int32 = 0
            _ = libssh2_keepalive_send(s, &next)
            lastKeepalive = now
            unansweredKeepalives += 1
        }
        // Lost only when keepalives really went unanswered: a session thread that was merely starved of CPU
        // (a loaded machine) has sent none, and data already waiting on the socket counts as an answer.
        if now - lastReceived > target.silenceLimit, unansweredKeepalives >= max(1, target.keepaliveCountMax) {
            var pfd = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) > 0 { lastReceived = now; return }
            throw fail(.hostLost, "host stopped answering: no data for \(format(now - lastReceived)) s (\(target.keepaliveCountMax) keepalives at \(format(target.keepaliveInterval)) s)")
        }
    }

    func libssh2Failure(_ function: String, _ rc: Int32) -> SSHError {
        let text = lastErrorText()
        let lost: Set<Int32> = [LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_DISCONNECT,
                                LIBSSH2_ERROR_SOCKET_TIMEOUT, LIBSSH2_ERROR_TIMEOUT, LIBSSH2_ERROR_BANNER_RECV,
                                LIBSSH2_ERROR_KEX_FAILURE]
        return fail(lost.contains(rc) ? .hostLost : .protocolError, "connection failed: \(text.isEmpty ? "error \(rc)" : text)", function: function, code: rc)
    }

    func lastErrorText() -> String {
        guard let s = session else { return "" }
        var msg: UnsafeMutablePointer<CChar>?
        var len: Int32 = 0
        libssh2_session_last_error(s, &msg, &len, 0)
        return msg.map { String(cString: $0) } ?? ""
    }

    func fail(_ kind: SSHError.Kind, _ message: String, function: String? = nil, code: Int32? = nil) -> SSHError {
        // After a transport failure libssh2 1.10's state may be half-way through a packet or key exchange;
        // its free functions are not safe to run on that, so the session is then dropped without them.
        if kind == .hostLost || kind == .timeout || (kind == .protocolError && function != nil) { broken = true }
        return SSHError(host: target.name, kind: kind, message: message, function: function, code: code)
    }
}

func format(_ seconds: Double) -> String { String(format: "%.1f", seconds) }

/// A cancellation signal shared between a task and the session thread.
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

/// What kind of private key a file holds, from its armour or its OpenSSH key blob.
enum PrivateKeyKind: Equatable {
    case rsa, encrypted, other

    init(_ contents: Data) {
        let text = String(decoding: contents, as: UTF8.self)
        if text.contains("BEGIN RSA PRIVATE KEY") { self = .rsa; return }
        if text.contains("ENCRYPTED") { self = .encrypted; return }
        guard text.contains("BEGIN OPENSSH PRIVATE KEY") else { self = .other; return }
        let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let blob = Data(base64Encoded: body) else { self = .other; return }
        // openssh-key-v1\0, cipher, kdf name, kdf options, key count, then the public key whose first field is its type.
        var reader = SSHWireReader(bytes: [UInt8](blob), offset: 15)
        let cipher = reader.string()
        _ = reader.string()
        _ = reader.string()
        _ = reader.uint32()
        var pub = SSHWireReader(bytes: reader.string() ?? [], offset: 0)
        if let cipher, cipher != Array("none".utf8) { self = .encrypted; return }
        self = pub.string() == Array("ssh-rsa".utf8) ? .rsa : .other
    }
}

/// Reads SSH wire-format fields (uint32 lengths, big-endian).
struct SSHWireReader {
    var bytes: [UInt8]
    var offset: Int

    mutating func uint32() -> Int? {
        guard offset + 4 <= bytes.count else { return nil }
        defer { offset += 4 }
        return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
    }

    mutating func string() -> [UInt8]? {
        guard let n = uint32(), offset + n <= bytes.count else { return nil }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }
}
