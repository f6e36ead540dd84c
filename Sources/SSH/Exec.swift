import CLibSSH2
import Foundation
import Support

/// Where a remote command's stdin comes from.
public enum ExecInput: Sendable {
    /// Nothing: EOF at once.
    case none
    /// These bytes, then EOF.
    case data(Data)
    /// Everything readable from this local file descriptor until EOF (the caller owns and closes it).
    case fileDescriptor(Int32)
    /// Chunks pulled on the session thread until the producer returns nil (bounded memory: one chunk at a time).
    case producer(@Sendable () throws -> Data?)
}

/// How a remote command ended.
public struct ExecStatus: Sendable, Equatable {
    /// Exit status (meaningless when `signal` is set).
    public var exitStatus: Int32
    /// The signal that killed it (`KILL`, `TERM`, …), if any.
    public var signal: String?
    /// Whether it exited 0 with no signal.
    public var succeeded: Bool { exitStatus == 0 && signal == nil }
}

/// A finished command with its output collected.
public struct ExecOutput: Sendable {
    /// How it ended.
    public var status: ExecStatus
    /// Everything on stdout.
    public var stdout: Data
    /// Everything on stderr.
    public var stderr: Data
    /// stdout as UTF-8 text.
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    /// stderr as UTF-8 text.
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Counters an exec reports as it goes, e.g. for upload progress.
public struct ExecProgress: Sendable {
    /// stdin bytes written to the channel so far.
    public var sent: Int64
}

extension SSHConnection {
    /// Runs `command` on the host under its own process group (so cancellation can kill all of it), streams
    /// stdout and stderr to the callbacks as they arrive (on the session thread), feeds `input` to its stdin.
    /// Cancelling the calling task kills the remote process group from a second channel, then closes.
    public func exec(_ command: String, input: ExecInput = .none, timeout: Double? = nil, pidFile: String? = nil,
                     stdout: @escaping @Sendable (Data) -> Void = { _ in },
                     stderr: @escaping @Sendable (Data) -> Void = { _ in },
                     progress: (@Sendable (ExecProgress) -> Void)? = nil) async throws -> ExecStatus {
        let cancel = CancelFlag()
        let pidFile = pidFile ?? "/tmp/.coordinator-\(UUID().uuidString.lowercased()).pid"
        let wrapped = "exec setsid -w /bin/sh -c \(Shell.quote(Self.groupWrapper)) \(Shell.quote(pidFile)) \(Shell.quote(command))"
        return try await withTaskCancellationHandler {
            try await thread.perform { [self] in
                try runChannel(wrapped, input: input, timeout: timeout, cancel: cancel, pidFile: pidFile,
                               stdout: stdout, stderr: stderr, progress: progress)
            }
        } onCancel: {
            cancel.set()
        }
    }

    /// Runs `$1` as the leader of a new process group recording its pid in `$0`, so a second channel can kill
    /// the group (libssh2 1.10 has no channel signals). A watchdog kills the group when the connection's sshd
    /// process ends (coordinator killed, network gone): no build outlives its coordinator by more than ~1 s, and
    /// `$0.orphaned` tells the next run that the folder holding the pid file is stale. The watchdog goes by the
    /// pid file, which the wrapper removes on exit, not by `kill -0 $$` alone: on a busy host the pid may be
    /// reused within the watchdog's second, and an unrelated process group must never be signalled.
    static let groupWrapper = """
        echo $$ >"$0"; trap 'rm -f "$0"' EXIT; trap 'exit 143' TERM INT HUP
        gp=$(cut -d' ' -f4 /proc/$PPID/stat 2>/dev/null)
        mine() { [ "$(cat "$0" 2>/dev/null)" = $$ ] && kill -0 $$ 2>/dev/null; }
        [ -n "$gp" ] && ( while kill -0 "$gp" 2>/dev/null && mine; do sleep 1; done
          mine && : >"$0.orphaned" && kill -TERM -$$ ) </dev/null >/dev/null 2>&1 &
        /bin/sh -c "$1"
        """

    /// `exec` with stdout and stderr collected.
    public func run(_ command: String, input: ExecInput = .none, timeout: Double? = nil) async throws -> ExecOutput {
        let out = DataBox(), err = DataBox()
        let status = try await exec(command, input: input, timeout: timeout, stdout: { out.append($0) }, stderr: { err.append($0) })
        return ExecOutput(status: status, stdout: out.data, stderr: err.data)
    }

    /// Runs `command` as it is (no process-group wrapper): for probes on hosts that may lack `setsid`.
    public func runPlain(_ command: String, timeout: Double? = nil) async throws -> ExecOutput {
        let out = DataBox(), err = DataBox()
        let cancel = CancelFlag()
        let status = try await withTaskCancellationHandler {
            try await thread.perform { [self] in
                try runChannel(command, input: .none, timeout: timeout, cancel: cancel, pidFile: nil,
                               stdout: { out.append($0) }, stderr: { err.append($0) }, progress: nil)
            }
        } onCancel: { cancel.set() }
        return ExecOutput(status: status, stdout: out.data, stderr: err.data)
    }

    // MARK: - The channel loop (session thread only)

    private func runChannel(_ command: String, input: ExecInput, timeout: Double?, cancel: CancelFlag, pidFile: String?,
                            stdout: (Data) -> Void, stderr: (Data) -> Void,
                            progress: ((ExecProgress) -> Void)?) throws -> ExecStatus {
        guard let s = session else { throw fail(.hostLost, "session closed") }
        let deadline = timeout.map { Date.timeIntervalSinceReferenceDate + $0 }
        let channel = try openChannel(deadline: deadline, cancel: cancel)
        defer { if !broken { libssh2_channel_free(channel) } }
        do {
            try call("libssh2_channel_process_startup", deadline: deadline, cancel: cancel) { coord_channel_exec(channel, command) }
            return try pump(channel, session: s, input: input, deadline: deadline, cancel: cancel,
                            stdout: stdout, stderr: stderr, progress: progress)
        } catch let error as CancellationError {
            if let pidFile { killGroup(pidFile: pidFile) }
            closeChannel(channel)
            throw error
        } catch let error as SSHError where error.kind == .timeout {
            if let pidFile { killGroup(pidFile: pidFile) }
            closeChannel(channel)
            throw error
        }
    }

    private func openChannel(deadline: Double?, cancel: CancelFlag?) throws -> OpaquePointer {
        guard let s = session else { throw fail(.hostLost, "session closed") }
        while true {
            if let c = coord_channel_open_session(s) { return c }
            let rc = libssh2_session_last_errno(s)
            guard rc == LIBSSH2_ERROR_EAGAIN else { throw libssh2Failure("libssh2_channel_open_session", rc) }
            try waitSocket(deadline: deadline, cancel: cancel)
        }
    }

    private func pump(_ channel: OpaquePointer, session s: OpaquePointer, input: ExecInput, deadline: Double?, cancel: CancelFlag,
                      stdout: (Data) -> Void, stderr: (Data) -> Void, progress: ((ExecProgress) -> Void)?) throws -> ExecStatus {
        let bufferSize = 256 * 1024
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bufferSize)
        defer { buffer.deallocate() }
        var pending = Data()
        var pendingOffset = 0
        var inputDone = false
        var eofSent = false
        var sent: Int64 = 0
        var localFD: Int32 = -1
        var producer: (@Sendable () throws -> Data?)?
        switch input {
        case .none: inputDone = true
        case .data(let d): pending = d
        case .fileDescriptor(let fd):
            localFD = fd
            _ = coord_fcntl_nonblock(fd)
        case .producer(let p): producer = p
        }
        var outOpen = true, errOpen = true
        // libssh2 1.10 hazard: after a call returns EAGAIN with a packet half-sent (session blocked outbound),
        // whichever call sends next completes that packet and reports success for its own, unsent one. So the
        // same call must be repeated before any other that may send (reads send window adjusts).
        var blocked: PendingSend?
        func blockedOutbound() -> Bool { libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 }
        while true {
            var progressed = false
            // Drain both streams so neither fills the shared window and stalls the other.
            for stream in [Int32(0), Int32(SSH_EXTENDED_DATA_STDERR)] where blocked == nil || blocked == .read(stream) {
                while true {
                    let n = libssh2_channel_read_ex(channel, stream, buffer, bufferSize)
                    if Int32(n) == LIBSSH2_ERROR_EAGAIN {
                        blocked = blockedOutbound() ? .read(stream) : nil
                        break
                    }
                    blocked = nil
                    if n > 0 {
                        lastReceived = Date.timeIntervalSinceReferenceDate
                        let chunk = Data(bytes: buffer, count: n)
                        stream == 0 ? stdout(chunk) : stderr(chunk)
                        progressed = true
                        continue
                    }
                    if n == 0 { if stream == 0 { outOpen = libssh2_channel_eof(channel) == 0 } else { errOpen = libssh2_channel_eof(channel) == 0 } }
                    if n < 0, Int32(n) != LIBSSH2_ERROR_EAGAIN { throw libssh2Failure("libssh2_channel_read_ex", Int32(n)) }
                    break
                }
            }
            // Feed stdin.
            if !eofSent {
                if pendingOffset >= pending.count, localFD >= 0, !inputDone {
                    pending.count = bufferSize
                    let n = pending.withUnsafeMutableBytes { Glibc.read(localFD, $0.baseAddress, bufferSize) }
                    if n > 0 { pending.count = n; pendingOffset = 0; progressed = true }
                    else if n == 0 { inputDone = true; pending.count = 0; pendingOffset = 0 }
                    else if coord_errno() == EAGAIN || coord_errno() == EINTR { pending.count = 0; pendingOffset = 0 }
                    else { throw fail(.local, "reading local input: \(String(cString: strerror(coord_errno())))") }
                }
                if pendingOffset >= pending.count, let p = producer, !inputDone {
                    if let chunk = try p() { pending = chunk; pendingOffset = 0; progressed = true }
                    else { inputDone = true; pending = Data(); pendingOffset = 0 }
                }
                // libssh2 sends at most one packet (~32 KiB) per write: send a burst before polling reads again.
                var burst = 0
                while pendingOffset < pending.count, blocked == nil || blocked == .write, burst < 32 {
                    burst += 1
                    let n = pending.withUnsafeBytes { raw -> Int in
                        let base = raw.baseAddress!.advanced(by: pendingOffset).assumingMemoryBound(to: CChar.self)
                        return libssh2_channel_write_ex(channel, 0, base, raw.count - pendingOffset)
                    }
                    blocked = Int32(n) == LIBSSH2_ERROR_EAGAIN && blockedOutbound() ? .write : nil
                    if n > 0 {
                        // The server keeps opening its window, so it is alive (libssh2 consumed its adjusts).
                        lastReceived = Date.timeIntervalSinceReferenceDate
                        pendingOffset += n
                        sent += Int64(n)
                        progress?(ExecProgress(sent: sent))
                        progressed = true
                    } else if n < 0, Int32(n) != LIBSSH2_ERROR_EAGAIN {
                        throw libssh2Failure("libssh2_channel_write_ex", Int32(n))
                    } else {
                        break
                    }
                }
                if pendingOffset >= pending.count, localFD < 0 && producer == nil {
                    inputDone = true
                }
                if inputDone, pendingOffset >= pending.count, blocked == nil || blocked == .eof {
                    let rc = libssh2_channel_send_eof(channel)
                    blocked = rc == LIBSSH2_ERROR_EAGAIN && blockedOutbound() ? .eof : nil
                    if rc == 0 { eofSent = true; progressed = true }
                    else if rc != LIBSSH2_ERROR_EAGAIN { throw libssh2Failure("libssh2_channel_send_eof", rc) }
                }
            }
            if !outOpen && !errOpen { break }
            if !progressed {
                let waitLocal = !eofSent && localFD >= 0 && !inputDone && pendingOffset >= pending.count
                try waitSocket(deadline: deadline, cancel: cancel, extra: waitLocal ? localFD : -1)
            } else {
                try checkAlive(now: Date.timeIntervalSinceReferenceDate, deadline: deadline, keepalive: true, cancel: cancel)
            }
        }
        try call("libssh2_channel_close", deadline: deadline, cancel: cancel) { libssh2_channel_close(channel) }
        try call("libssh2_channel_wait_closed", deadline: deadline, cancel: cancel) { libssh2_channel_wait_closed(channel) }
        return exitStatus(channel)
    }

    private func exitStatus(_ channel: OpaquePointer) -> ExecStatus {
        var name: UnsafeMutablePointer<CChar>?
        var nameLength = 0
        libssh2_channel_get_exit_signal(channel, &name, &nameLength, nil, nil, nil, nil)
        var signal: String?
        if let name {
            signal = String(decoding: UnsafeRawBufferPointer(start: name, count: nameLength), as: UTF8.self)
            free(name)
        }
        return ExecStatus(exitStatus: libssh2_channel_get_exit_status(channel), signal: signal)
    }

    /// Kills the remote process group recorded in `pidFile` from a second channel: TERM, then KILL after 2 s.
    private func killGroup(pidFile: String) {
        let pf = Shell.quote(pidFile)
        let script = "p=$(cat \(pf) 2>/dev/null) || exit 0; kill -TERM -$p 2>/dev/null; i=0; while kill -0 -$p 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; kill -KILL -$p 2>/dev/null; rm -f \(pf)"
        let deadline = Date.timeIntervalSinceReferenceDate + 5
        guard let channel = try? openChannel(deadline: deadline, cancel: nil) else { return }
        defer { if !broken { libssh2_channel_free(channel) } }
        _ = try? call("libssh2_channel_process_startup", deadline: deadline) { coord_channel_exec(channel, script) }
        _ = try? pump(channel, session: session!, input: .none, deadline: deadline, cancel: CancelFlag(),
                      stdout: { _ in }, stderr: { _ in }, progress: nil)
    }

    private func closeChannel(_ channel: OpaquePointer) {
        let deadline = Date.timeIntervalSinceReferenceDate + 2
        _ = try? call("libssh2_channel_close", deadline: deadline) { libssh2_channel_close(channel) }
    }
}

/// The call that must be repeated next because it left a packet half-sent.
enum PendingSend: Equatable {
    case read(Int32), write, eof
}

/// A thread-safe growing buffer for collected output.
final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage = Data()
    func append(_ d: Data) { lock.lock(); storage.append(d); lock.unlock() }
    var data: Data { lock.lock(); defer { lock.unlock() }; return storage }
}
