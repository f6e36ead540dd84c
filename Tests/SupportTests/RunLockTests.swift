#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Support
import TestHarness
import Testing

/// Real processes hold and contend for the lock: util-linux `flock` and `sh` are the foreign runs.
@Suite struct RunLockTests {
    let path: String

    init() throws {
        let dir = try Scratch.directory("runlock")
        path = dir.appendingPathComponent("coordinator.lock").path
    }

    /// Runs `/usr/bin/flock -n FILE true`: 0 when the lock is free, 1 when someone holds it.
    func foreignTryLock() throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        p.arguments = ["-n", path, "true"]
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Starts `command` (sh, $1 = lock path) and returns once it printed "ready" (it holds the lock by then).
    func startHolder(_ executable: String, _ arguments: [String]) throws -> Process {
        try startHolderReading(executable, arguments).process
    }

    func startHolderReading(_ executable: String, _ arguments: [String]) throws -> (process: Process, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        var seen = ""
        while !seen.contains("ready") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        try #require(seen.contains("ready"), "holder did not start: \(seen)")
        return (p, seen)
    }

    /// `flock -o`: flock itself holds the lock and its child does not (as our CLOEXEC fd), so kill -9 of flock
    /// is a holder dying. Returns flock and the child's pid (to clean up).
    func startFlockHolder(seconds: Int) throws -> (Process, pid_t) {
        let (p, output) = try startHolderReading(
            "/usr/bin/flock", ["-o", "-n", path, "sh", "-c", "echo ready $$; exec sleep \(seconds)"])
        let child = output.split(whereSeparator: \.isWhitespace).last.flatMap { pid_t($0) } ?? 0
        return (p, child)
    }

    func stop(_ p: Process, child: pid_t = 0) {
        if child > 0 { kill(child, SIGKILL) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    @Test func heldLockRefusesFlockAndReleaseFreesIt() throws {
        let lock = try RunLock.acquire(path: path)
        #expect(try foreignTryLock() == 1)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("pid=\(getpid())\nstarted="))
        lock.release()
        #expect(!lock.isHeld)
        #expect(try foreignTryLock() == 0)
    }

    @Test func secondRunFailsAtOnceNamingOurPID() throws {
        let lock = try RunLock.acquire(path: path)
        defer { lock.release() }
        let start = Date()
        let error = try #require(throws: RunLockError.self) { try RunLock.acquire(path: path) }
        #expect(Date().timeIntervalSince(start) < 1)
        guard case let .held(p, pid, started, waited) = error else { Issue.record("\(error)"); return }
        #expect(p == path && pid == getpid() && started != nil && waited == 0)
        #expect(error.exitCode == .locked && error.exitCode.rawValue == 5)
        #expect(error.description.contains("pid \(getpid())"))
    }

    @Test func foreignFlockHolderIsNamedByPID() throws {
        // util-linux flock takes the lock itself (no pid in the file): the kernel's /proc/locks names it.
        let (holder, child) = try startFlockHolder(seconds: 30)
        defer { stop(holder, child: child) }
        let error = try #require(throws: RunLockError.self) { try RunLock.acquire(path: path) }
        #expect(error == .held(path: path, holderPID: holder.processIdentifier, holderStarted: nil, waited: 0))
        #expect(error.description.contains("pid \(holder.processIdentifier)"))
    }

    @Test func killNineOfHolderLeavesNoStaleLock() throws {
        let (holder, child) = try startFlockHolder(seconds: 60)
        defer { stop(holder, child: child) }
        let error = try #require(throws: RunLockError.self) { try RunLock.acquire(path: path) }
        #expect(error == .held(path: path, holderPID: holder.processIdentifier, holderStarted: nil, waited: 0))
        kill(holder.processIdentifier, SIGKILL)
        // The kernel drops the lock as the process dies; the wait only covers signal delivery. The holder's
        // child (sleep) lives on and must not matter.
        let lock = try RunLock.acquire(path: path, wait: 5)
        #expect(lock.isHeld)
        lock.release()
    }

    @Test func waitSucceedsWhenHolderReleasesInTime() throws {
        let holder = try startHolder("/usr/bin/flock", ["-o", "-n", path, "sh", "-c", "echo ready; sleep 1"])
        defer { stop(holder) }
        let start = Date()
        let lock = try RunLock.acquire(path: path, wait: 20)
        #expect(lock.isHeld)
        #expect(Date().timeIntervalSince(start) >= 0.5)
        lock.release()
    }

    @Test func waitFailsWithExitFiveAfterTimeout() throws {
        let (holder, child) = try startFlockHolder(seconds: 60)
        defer { stop(holder, child: child) }
        let start = Date()
        let error = try #require(throws: RunLockError.self) { try RunLock.acquire(path: path, wait: 0.6) }
        #expect(Date().timeIntervalSince(start) >= 0.6)
        #expect(error == .held(path: path, holderPID: holder.processIdentifier, holderStarted: nil, waited: 0.6))
        #expect(error.exitCode == .locked)
        #expect(error.description.contains("after waiting"))
    }

    @Test func childProcessesDoNotInheritTheLock() throws {
        let lock = try RunLock.acquire(path: path)
        let flags = fcntl(lock.fileDescriptor, F_GETFD)
        #expect(flags >= 0 && flags & FD_CLOEXEC != 0)
        // posix_spawn with no file actions passes every fd without FD_CLOEXEC on to the child.
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        defer { kill(pid, SIGKILL); var status: Int32 = 0; waitpid(pid, &status, 0) }
        lock.release()
        #expect(try foreignTryLock() == 0, "the sleep child kept the lock")
    }

    @Test func missingFolderIsAUsageError() throws {
        let bad = path + ".d/none/coordinator.lock"
        let error = try #require(throws: RunLockError.self) { try RunLock.acquire(path: bad) }
        #expect(error.exitCode == .usage)
        #expect(error.description.contains(bad))
    }

    @Test func defaultPathFollowsRuntimeDirThenRootThenUID() {
        #expect(RunLock.defaultPath(environment: ["XDG_RUNTIME_DIR": "/run/user/1000"], uid: 1000) == "/run/user/1000/coordinator.lock")
        #expect(RunLock.defaultPath(environment: [:], uid: 0) == "/run/coordinator.lock")
        #expect(RunLock.defaultPath(environment: [:], uid: 1000) == "/tmp/coordinator-1000.lock")
    }
}
