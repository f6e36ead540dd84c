// Local processes for tests: run a command and collect what it printed; ask whether a pid still runs.
import Foundation

/// Runs `argv` (looked up on PATH) and returns its exit status and output. `env` is added to this process's
/// environment; `stdin` is fed to the command (it reads an empty file otherwise). A command killed by a
/// signal reports 128 + the signal; past `timeout` seconds its process group gets SIGTERM, then SIGKILL a
/// second later.
///
/// posix_spawn and a waitpid poll on the calling thread, not Foundation's `Process`: its termination handler
/// needs a free Dispatch thread, and tests blocking both threads of the 2-core pool never saw it run.
/// Output goes through files, not pipes, so a daemon the command leaves behind holding stdout cannot hang
/// the caller; the child gets only fds 0-2, default signal handling, and a process group of its own.
public func runLocal(_ argv: [String], env: [String: String]? = nil, stdin: Data? = nil,
                     timeout: Double? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    precondition(!argv.isEmpty, "runLocal needs a command")
    let scratch = FileManager.default.temporaryDirectory
        .appendingPathComponent("runlocal-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let paths = ["stdin", "stdout", "stderr"].map { scratch.appendingPathComponent($0).path }
    try (stdin ?? Data()).write(to: URL(fileURLWithPath: paths[0]))

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, paths[0], O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, paths[1], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, paths[2], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    #if os(Linux)
    // glibc 2.34+ has it, but declares it only under _GNU_SOURCE, which Swift's Glibc module does not set.
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
    }
    #endif
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t(), allSignals = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

    var environment = ProcessInfo.processInfo.environment
    environment.merge(env ?? [:]) { $1 }
    let cArgs = (["/usr/bin/env"] + argv).map { strdup($0) } + [nil]
    let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (cArgs + cEnv).forEach { free($0) } }
    var pid = pid_t()
    let rc = posix_spawn(&pid, "/usr/bin/env", &actions, &attributes, cArgs, cEnv)
    guard rc == 0 else { throw FleetError(description: "posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }

    let started = Date()
    var status: Int32 = 0, pause: useconds_t = 1000, signalled: Int32 = 0
    while true {
        let done = waitpid(pid, &status, WNOHANG)
        if done == pid { break }
        if done < 0 && errno != EINTR {
            throw FleetError(description: "waitpid \(argv[0]): \(String(cString: strerror(errno)))")
        }
        if let timeout {
            let late = Date().timeIntervalSince(started) - timeout
            if late >= 0 && signalled == 0 { signalled = SIGTERM; kill(-pid, SIGTERM) }
            if late >= 1 && signalled == SIGTERM { signalled = SIGKILL; kill(-pid, SIGKILL) }
        }
        usleep(pause)
        pause = min(pause * 2, 10_000)
    }

    let exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + status & 0x7f
    let text = { (path: String) in String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) }
    return (exitStatus, text(paths[1]), text(paths[2]))
}

/// Whether `pid` names a live process. A zombie (dead, not yet reaped) counts as gone, though `kill(pid, 0)`
/// still succeeds on it.
public func processIsRunning(_ pid: Int32) -> Bool {
    #if !os(Linux)
    return pid > 0 && kill(pid, 0) == 0
    #else
    guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.range(of: ") ", options: .backwards) else { return false }
    return stat[close.upperBound...].first != "Z"
    #endif
}
