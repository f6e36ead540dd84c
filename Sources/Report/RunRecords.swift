// Run records: one folder per run under a state dir (plan.json, report.json, logs/<image>/<platform>.log), so a
// night's failure can be read the next morning, and `coordinator runs` can list, show and prune them.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Support

/// Problems with the run records store.
public enum RunRecordsError: UserFacingError, Equatable {
    /// No run with this id under the state dir.
    case notFound(id: String, stateDir: String)
    /// A file or folder could not be created, read or removed.
    case io(path: String, message: String)

    /// `.usage` (2) for an unknown id, `.infrastructure` (4) for the local disk failing us.
    public var exitCode: ExitCode {
        switch self {
        case .notFound: return .usage
        case .io: return .infrastructure
        }
    }

    /// One line for the operator.
    public var description: String {
        switch self {
        case let .notFound(id, dir): return "no run \(id) under \(dir) (`coordinator runs` lists them)"
        case let .io(path, message): return "run records: \(path): \(message)"
        }
    }
}

/// What `coordinator runs` prints for one past (or current) run.
public struct RunSummary: Sendable, Equatable, Codable {
    /// Where a run stands.
    public enum State: String, Sendable, Codable {
        /// A live process holds the run's folder.
        case running
        /// report.json was written.
        case finished
        /// No report and nobody holds the folder: the run was killed or crashed.
        case incomplete
    }

    /// The run id (`20251203T020000Z-1a2b3c`), also the folder name.
    public var id: String
    /// When the run started (from the id).
    public var start: Date
    /// The report's exit code, when there is a report.
    public var exitCode: Int32?
    /// How many images the report (else the plan) names.
    public var images: Int?
    /// Running, finished or incomplete.
    public var state: State
}

/// One run's folder in full: summary, files and the report's bytes.
public struct RunDetail: Sendable, Equatable {
    /// The same summary `list()` gives.
    public var summary: RunSummary
    /// The run's folder.
    public var folder: URL
    /// Every file in the folder, relative to it, sorted (`logs/api/linux-arm64.log`, `plan.json`, …).
    public var files: [String]
    /// report.json as written, if any.
    public var report: Data?
}

/// The folder of the run in progress; holds a lock on it so `prune` (from any process) never removes it.
public final class RunFolder: @unchecked Sendable {
    /// The run id.
    public let id: String
    /// The folder.
    public let url: URL
    private let mutex = NSLock()
    private var activeFD: Int32

    init(id: String, url: URL, activeFD: Int32) {
        self.id = id
        self.url = url
        self.activeFD = activeFD
    }

    deinit { finish() }

    /// `plan.json` in the folder.
    public var planURL: URL { url.appendingPathComponent("plan.json") }
    /// `report.json` in the folder.
    public var reportURL: URL { url.appendingPathComponent("report.json") }
    /// `logs/` in the folder.
    public var logsURL: URL { url.appendingPathComponent("logs") }

    /// `logs/<image>/<platform>.log` (its folder created); names are encoded so none can leave the folder.
    public func logURL(image: String, platform: String) throws -> URL {
        let dir = logsURL.appendingPathComponent(RunRecords.fileName(image))
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw RunRecordsError.io(path: dir.path, message: "\(error.localizedDescription)")
        }
        return dir.appendingPathComponent(RunRecords.fileName(platform.replacingOccurrences(of: "/", with: "-")) + ".log")
    }

    /// Writes plan.json atomically.
    public func writePlan(_ data: Data) throws { try AtomicFile.write(data, to: planURL.path) }

    /// Writes report.json atomically; a run with a report is `finished`.
    public func writeReport(_ data: Data) throws { try AtomicFile.write(data, to: reportURL.path) }

    /// Releases the folder (it stays on disk); idempotent. After this, `prune` may remove it.
    public func finish() {
        mutex.withLock {
            guard activeFD >= 0 else { return }
            close(activeFD)
            activeFD = -1
        }
    }
}

/// The store of run folders under one state dir.
public struct RunRecords: Sendable {
    /// The folder holding one sub-folder per run.
    public let stateDir: URL

    /// A store at `stateDir` (created on first `create()`).
    public init(stateDir: URL) { self.stateDir = stateDir }

    /// `$XDG_STATE_HOME/coordinator/runs`, else `/var/lib/coordinator/runs` for root, else `~/.local/state/coordinator/runs`.
    public static func defaultStateDir(environment: [String: String] = ProcessInfo.processInfo.environment,
                                       uid: uid_t = geteuid()) -> URL {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            return URL(fileURLWithPath: state).appendingPathComponent("coordinator/runs")
        }
        if uid == 0 { return URL(fileURLWithPath: "/var/lib/coordinator/runs") }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".local/state/coordinator/runs")
    }

    /// Creates a new run's folder (with `logs/`) and marks it active until `RunFolder.finish()` or process exit.
    public func create(now: Date = Date()) throws -> RunFolder {
        do {
            try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        } catch {
            throw RunRecordsError.io(path: stateDir.path, message: "\(error.localizedDescription)")
        }
        for _ in 0..<16 {
            let id = Self.runID(at: now)
            let url = stateDir.appendingPathComponent(id)
            // mkdir fails on an existing folder: the random part collided, try another.
            guard mkdir(url.path, 0o755) == 0 else {
                if errno == EEXIST { continue }
                throw RunRecordsError.io(path: url.path, message: String(cString: strerror(errno)))
            }
            let fd = open(url.appendingPathComponent(".active").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let message = String(cString: strerror(errno))
                if fd >= 0 { close(fd) }
                throw RunRecordsError.io(path: url.path, message: "cannot lock .active: \(message)")
            }
            let folder = RunFolder(id: id, url: url, activeFD: fd)
            guard mkdir(folder.logsURL.path, 0o755) == 0 else {
                throw RunRecordsError.io(path: folder.logsURL.path, message: String(cString: strerror(errno)))
            }
            return folder
        }
        throw RunRecordsError.io(path: stateDir.path, message: "could not pick an unused run id")
    }

    /// Every run, newest first.
    public func list() throws -> [RunSummary] {
        try runIDs().reversed().map { summary(id: $0) }
    }

    /// One run in full; throws `notFound` for an id that is not a run here.
    public func show(_ id: String) throws -> RunDetail {
        let url = stateDir.appendingPathComponent(id)
        var isDir: ObjCBool = false
        guard Self.startDate(ofRunID: id) != nil, FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir),
              isDir.boolValue else {
            throw RunRecordsError.notFound(id: id, stateDir: stateDir.path)
        }
        var files: [String] = []
        if let walker = FileManager.default.enumerator(atPath: url.path) {
            while let rel = walker.nextObject() as? String {
                var d: ObjCBool = false
                if rel != ".active", FileManager.default.fileExists(atPath: url.appendingPathComponent(rel).path, isDirectory: &d), !d.boolValue {
                    files.append(rel)
                }
            }
        }
        return RunDetail(summary: summary(id: id), folder: url, files: files.sorted(),
                         report: FileManager.default.contents(atPath: url.appendingPathComponent("report.json").path))
    }

    /// Removes runs that are neither among the newest `keep` nor younger than `olderThan` (when given), and
    /// never a running one (its folder is locked by a live process, this one included). Returns the removed ids.
    @discardableResult
    public func prune(keep: Int, olderThan: TimeInterval? = nil, now: Date = Date()) throws -> [String] {
        var removed: [String] = []
        for (index, id) in try runIDs().reversed().enumerated() {
            if index < max(0, keep) { continue }
            if let olderThan, let start = Self.startDate(ofRunID: id), now.timeIntervalSince(start) < olderThan { continue }
            let url = stateDir.appendingPathComponent(id)
            if isActive(url) { continue }
            do {
                try FileManager.default.removeItem(at: url)
            } catch {
                throw RunRecordsError.io(path: url.path, message: "\(error.localizedDescription)")
            }
            removed.append(id)
        }
        return removed
    }

    // MARK: Ids and names

    private static let idFormat = "yyyyMMdd'T'HHmmss'Z'"

    /// `20251203T020000Z-1a2b3c`: UTC start second (so ids sort by time) and 24 random bits.
    static func runID(at date: Date) -> String {
        String(format: "%@-%06x", formatter().string(from: date), UInt32.random(in: 0..<(1 << 24)))
    }

    /// The start time encoded in a run id, or nil when `id` is not one (anything else in the state dir is left alone).
    public static func startDate(ofRunID id: String) -> Date? {
        let parts = id.split(separator: "-")
        guard parts.count == 2, parts[0].utf8.count == 16, parts[1].utf8.count == 6,
              parts[1].allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return formatter().date(from: String(parts[0]))
    }

    private static func formatter() -> DateFormatter {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = idFormat
        return f
    }

    /// A path component for any name: bytes outside `[A-Za-z0-9._-]` and a leading dot are %XX-encoded.
    static func fileName(_ name: String) -> String {
        var out = ""
        for (i, b) in name.utf8.enumerated() {
            let c = Character(Unicode.Scalar(b))
            let plain = b < 0x80 && (c.isLetter || c.isNumber || c == "_" || c == "-" || (c == "." && i > 0))
            out += plain ? String(c) : String(format: "%%%02X", b)
        }
        return out.isEmpty ? "%00" : out
    }

    // MARK: Reading

    private func runIDs() throws -> [String] {
        guard FileManager.default.fileExists(atPath: stateDir.path) else { return [] }
        do {
            return try FileManager.default.contentsOfDirectory(atPath: stateDir.path)
                .filter { Self.startDate(ofRunID: $0) != nil }.sorted()
        } catch {
            throw RunRecordsError.io(path: stateDir.path, message: "\(error.localizedDescription)")
        }
    }

    /// Whether a live process holds the run's `.active` lock.
    private func isActive(_ url: URL) -> Bool {
        let fd = open(url.appendingPathComponent(".active").path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    private func summary(id: String) -> RunSummary {
        let url = stateDir.appendingPathComponent(id)
        let report = Self.jsonObject(at: url.appendingPathComponent("report.json"))
        let coordinator = report?["coordinator"] as? [String: Any]
        let code = (coordinator?["exitCode"] ?? report?["exitCode"]) as? NSNumber
        var images = ((coordinator?["images"] ?? report?["images"]) as? [Any])?.count
        if images == nil, let plan = Self.jsonObject(at: url.appendingPathComponent("plan.json")) {
            images = (plan["images"] as? [Any])?.count
        }
        let state: RunSummary.State = isActive(url) ? .running : report != nil ? .finished : .incomplete
        return RunSummary(id: id, start: Self.startDate(ofRunID: id) ?? .distantPast, exitCode: code.map { $0.int32Value },
                          images: images, state: state)
    }

    private static func jsonObject(at url: URL) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}
