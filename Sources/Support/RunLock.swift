// RunLock: one coordinator run at a time per lock file, for unattended nightly runs.
// flock(2) is released by the kernel when the holder dies (crash, kill -9), so a lock can never go stale;
// the pid written into the file is informational only, never trusted to decide who holds the lock.
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Why a lock could not be taken.
public enum RunLockError: UserFacingError, Equatable {
    /// Another process holds the lock (after waiting `waited` seconds, 0 for no wait).
    case held(path: String, holderPID: Int32?, holderStarted: String?, waited: TimeInterval)
    /// The lock file cannot be opened or locked at all (missing folder, permissions).
    case unusable(path: String, function: String, message: String)

    /// `.locked` (5) when held, `.usage` (2) for a lock path that cannot be used.
    public var exitCode: ExitCode {
        switch self {
        case .held: return .locked
        case .unusable: return .usage
        }
    }

    /// One line for the operator, naming the holder's pid when it is known.
    public var description: String {
        switch self {
        case let .held(path, pid, started, waited):
            var who = pid.map { "pid \($0)" } ?? "another process (pid unknown)"
            if let started { who += ", started \(started)" }
            let wait = waited > 0 ? " after waiting " + String(format: "%.1f", waited) + " s" : ""
            return "another coordinator run holds the lock \(path) (\(who))\(wait); use --wait-lock SECONDS to wait for it"
        case let .unusable(path, function, message):
            return "cannot use lock file \(path): \(function): \(message)"
        }
    }
}

/// An exclusive `flock` on a lock file, held until `release()` or deinit (or the process dies).
public final class RunLock: @unchecked Sendable {
    /// The lock file's path.
    public let path: String
    // Guarded by `mutex`; -1 once released.
    private var fd: Int32
    private let mutex = NSLock()

    /// `$XDG_RUNTIME_DIR/coordinator.lock`, else `/run/coordinator.lock` for root, else `/tmp/coordinator-$UID.lock`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment,
                                   uid: uid_t = geteuid()) -> String {
        if let dir = environment["XDG_RUNTIME_DIR"], dir.hasPrefix("/") { return dir + "/coordinator.lock" }
        return uid == 0 ? "/run/coordinator.lock" : "/tmp/coordinator-\(uid).lock"
    }

    /// Takes the lock at `path` (default `defaultPath()`), waiting up to `wait` seconds; throws `RunLockError.held`.
    /// Blocks the calling thread while waiting: call it before starting any tasks, or from a dedicated thread.
    public static func acquire(path: String? = nil, wait: TimeInterval = 0, pollInterval: TimeInterval = 0.1) throws -> RunLock {
        let path = path ?? defaultPath()
        // O_CLOEXEC: ssh, tar and engine children must not inherit the lock (and keep it after we die).
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw RunLockError.unusable(path: path, function: "open", message: errnoText()) }
        let deadline = Date().addingTimeInterval(max(0, wait))
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            if err == EINTR { continue }
            guard err == EWOULDBLOCK else {
                close(fd)
                throw RunLockError.unusable(path: path, function: "flock", message: String(cString: strerror(err)))
            }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                let holder = holderInfo(fd: fd)
                close(fd)
                throw RunLockError.held(path: path, holderPID: holder.pid, holderStarted: holder.started, waited: max(0, wait))
            }
            usleep(useconds_t(min(remaining, pollInterval) * 1_000_000))
        }
        let lock = RunLock(path: path, fd: fd)
        lock.recordHolder()
        return lock
    }

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { release() }

    /// Whether this object still holds the lock.
    public var isHeld: Bool { mutex.withLock { fd >= 0 } }

    /// The lock's file descriptor (for tests: it carries FD_CLOEXEC), or -1 once released.
    public var fileDescriptor: Int32 { mutex.withLock { fd } }

    /// Releases the lock; idempotent. The file stays: removing it would let two runs lock two different inodes.
    public func release() {
        mutex.withLock {
            guard fd >= 0 else { return }
            _ = ftruncate(fd, 0)
            _ = flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }

    /// Writes `pid=N` and `started=ISO8601` so a waiting run (and an operator's `cat`) can name the holder.
    private func recordHolder() {
        let text = "pid=\(getpid())\nstarted=\(ISO8601DateFormatter().string(from: Date()))\n"
        mutex.withLock {
            _ = ftruncate(fd, 0)
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
    }

    /// The holder as the kernel reports it (/proc/locks, authoritative), else as the file says (may be mid-write).
    static func holderInfo(fd: Int32) -> (pid: Int32?, started: String?) {
        var fields: [String: String] = [:]
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            for line in String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
        }
        let filePID = fields["pid"].flatMap { Int32($0) }
        guard let kernelPID = kernelHolder(fd: fd) else { return (filePID, fields["started"]) }
        // The kernel names the process that called flock(); if that one exited and a child inherited the
        // descriptor, the file's pid (when alive) is the better lead for the operator.
        if !isAlive(kernelPID), let filePID, isAlive(filePID) { return (filePID, fields["started"]) }
        // The start time belongs to the file's pid; only quote it when that is the kernel's holder too.
        return (kernelPID, filePID == kernelPID ? fields["started"] : nil)
    }

    /// The pid /proc/locks gives for the FLOCK on the file behind `fd`, if any (Linux only).
    static func kernelHolder(fd: Int32) -> Int32? {
        var st = stat()
        guard fstat(fd, &st) == 0, let text = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return nil }
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        let wanted = String(format: "%02llx:%02llx:%llu", major, minor, UInt64(st.st_ino))
        for line in text.split(separator: "\n") {
            // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; waiters carry "->" and are skipped.
            let words = line.split(separator: " ")
            guard words.count >= 6, words[1] == "FLOCK", words[5] == wanted else { continue }
            return Int32(words[4])
        }
        return nil
    }

    private static func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
