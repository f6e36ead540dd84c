import Foundation
import Report
import Support
import TestHarness
import Testing

@Suite struct RunRecordsTests {
    let store: RunRecords
    static let t0 = Date(timeIntervalSince1970: 1_764_727_200) // 2025-12-03 02:00:00 UTC

    init() throws {
        let dir = try Scratch.directory("runs").appendingPathComponent("runs")
        store = RunRecords(stateDir: dir)
    }

    /// A finished run `days` nights after t0, with a report naming `images` images and `exit`.
    func finishedRun(night days: Int, exit: Int32 = 0, images: Int = 2) throws -> String {
        let run = try store.create(now: Self.t0.addingTimeInterval(Double(days) * 86_400))
        try run.writePlan(Data(#"{"images":[]}"#.utf8))
        let report: [String: Any] = ["coordinator": ["exitCode": exit, "images": Array(repeating: [:] as [String: Any], count: images)]]
        try run.writeReport(try JSONSerialization.data(withJSONObject: report))
        run.finish()
        return run.id
    }

    @Test func createMakesASortableIdAndTheFolderLayout() throws {
        let run = try store.create(now: Self.t0)
        defer { run.finish() }
        #expect(run.id.hasPrefix("20251203T020000Z-") && run.id.count == 23)
        #expect(RunRecords.startDate(ofRunID: run.id) == Self.t0)
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: run.logsURL.path, isDirectory: &isDir) && isDir.boolValue)
        let log = try run.logURL(image: "api", platform: "linux/arm64")
        #expect(log.path == run.url.path + "/logs/api/linux-arm64.log")
        try Data("built\n".utf8).write(to: log)
        try run.writePlan(Data("{}".utf8))
        let detail = try store.show(run.id)
        #expect(detail.files == ["logs/api/linux-arm64.log", "plan.json"])
        #expect(detail.summary.state == .running && detail.report == nil)
    }

    @Test func hostileImageNamesStayInsideTheLogsFolder() throws {
        let run = try store.create(now: Self.t0)
        defer { run.finish() }
        for name in ["../../etc", "..", ".", "team/app", "a b", ""] {
            let url = try run.logURL(image: name, platform: "linux/arm/v7")
            #expect(url.standardizedFileURL.path.hasPrefix(run.logsURL.path + "/"), "\(name) → \(url.path)")
            #expect(url.deletingLastPathComponent().deletingLastPathComponent().standardizedFileURL.path == run.logsURL.path)
        }
        #expect(try run.logURL(image: "team/app", platform: "linux/amd64") != run.logURL(image: "team_app", platform: "linux/amd64"))
    }

    @Test func listIsNewestFirstWithReportFigures() throws {
        let a = try finishedRun(night: 0, exit: 0, images: 3)
        let b = try finishedRun(night: 1, exit: 1, images: 6)
        let killed = try store.create(now: Self.t0.addingTimeInterval(2 * 86_400))
        let killedID = killed.id
        killed.finish() // no report, no holder: what a kill -9 leaves
        let live = try store.create(now: Self.t0.addingTimeInterval(3 * 86_400))
        defer { live.finish() }
        try FileManager.default.createDirectory(at: store.stateDir.appendingPathComponent("not-a-run"), withIntermediateDirectories: true)
        let runs = try store.list()
        #expect(runs.map(\.id) == [live.id, killedID, b, a])
        #expect(runs.map(\.state) == [.running, .incomplete, .finished, .finished])
        #expect(runs[2].exitCode == 1 && runs[2].images == 6)
        #expect(runs[3].exitCode == 0 && runs[3].images == 3 && runs[3].start == Self.t0)
        #expect(runs[1].exitCode == nil)
    }

    @Test func showUnknownIdIsAUsageError() throws {
        _ = try finishedRun(night: 0)
        for id in ["20250101T000000Z-abcdef", "../runs", "nope"] {
            let error = try #require(throws: RunRecordsError.self) { try store.show(id) }
            #expect(error == .notFound(id: id, stateDir: store.stateDir.path) && error.exitCode == .usage)
        }
    }

    @Test func pruneByCountKeepsTheNewest() throws {
        let ids = try (0..<5).map { try finishedRun(night: $0) }
        let removed = try store.prune(keep: 2)
        #expect(removed == [ids[2], ids[1], ids[0]])
        #expect(try store.list().map(\.id) == [ids[4], ids[3]])
    }

    @Test func pruneByAgeKeepsYoungRunsBeyondTheCount() throws {
        let ids = try (0..<5).map { try finishedRun(night: $0) }
        // Now = night 4; runs younger than 2.5 days survive even beyond keep: 1.
        let removed = try store.prune(keep: 1, olderThan: 2.5 * 86_400, now: Self.t0.addingTimeInterval(4 * 86_400))
        #expect(removed == [ids[1], ids[0]])
        #expect(try store.list().map(\.id) == [ids[4], ids[3], ids[2]])
    }

    @Test func pruneNeverDeletesTheCurrentRun() throws {
        let current = try store.create(now: Self.t0) // the oldest id: first in line for pruning
        defer { current.finish() }
        let later = try (1...3).map { try finishedRun(night: $0) }
        let removed = try store.prune(keep: 0)
        #expect(removed == later.reversed())
        #expect(try store.list().map(\.id) == [current.id])
        #expect(FileManager.default.fileExists(atPath: current.url.path))
        current.finish()
        #expect(try store.prune(keep: 0) == [current.id])
    }

    @Test func pruneLeavesForeignEntriesAlone() throws {
        _ = try finishedRun(night: 0)
        let other = store.stateDir.appendingPathComponent("notes.txt")
        try Data("mine".utf8).write(to: other)
        try store.prune(keep: 0)
        #expect(FileManager.default.fileExists(atPath: other.path))
        #expect(try store.list().isEmpty)
    }

    @Test func defaultStateDirFollowsXDGThenRootThenHome() {
        #expect(RunRecords.defaultStateDir(environment: ["XDG_STATE_HOME": "/var/lib"], uid: 999).path == "/var/lib/coordinator/runs")
        #expect(RunRecords.defaultStateDir(environment: [:], uid: 0).path == "/var/lib/coordinator/runs")
        #expect(RunRecords.defaultStateDir(environment: ["HOME": "/home/ops"], uid: 1000).path == "/home/ops/.local/state/coordinator/runs")
    }
}
