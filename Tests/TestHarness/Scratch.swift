import Foundation
import Synchronization

/// Work for the moment the test process exits: stopping what a process-wide shared fixture started (by pid)
/// and removing the scratch root. Registered work runs once, newest first, from `atexit`.
public enum AtExit {
    private static let pending = Mutex<[@Sendable () -> Void]>([])
    private static let installed: Bool = {
        atexit { AtExit.runAll() }
        return true
    }()

    /// Runs `work` when the process exits.
    public static func register(_ work: @escaping @Sendable () -> Void) {
        _ = installed
        pending.withLock { $0.append(work) }
    }

    static func runAll() {
        let all = pending.withLock { list in
            defer { list = [] }
            return list
        }
        for work in all.reversed() { work() }
    }
}

/// Temporary folders of this test process, all under one root (`$TMPDIR/coordinator-tests-PID-RANDOM`) that is
/// removed when the process exits, so a test that does not clean up after itself leaves nothing behind.
public enum Scratch {
    /// The root folder, created on first use.
    public static let root: URL = {
        // Unique (pid and random), private (0700), and new: never a folder someone else made.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("coordinator-tests-\(getpid())-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        AtExit.register { try? FileManager.default.removeItem(at: url) }
        return url
    }()

    /// A new empty folder named `prefix-UNIQUE` under the root.
    public static func directory(_ prefix: String) throws -> URL {
        let url = root.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
