import Foundation
import Support

/// Where a build's progress goes: prefixed line-buffered text, or JSON events, plus one log file per platform.
public final class BuildLog: @unchecked Sendable {
    /// Output style.
    public enum Style: String, Sendable {
        /// Prefixed lines, line-buffered (cron, CI, pipes).
        case plain
        /// One JSON event per line.
        case json
        /// A live view redrawn in place on a terminal; full logs go to the files.
        case tty
    }

    private let style: Style
    private let lock = NSLock()
    private var partial: [String: Data] = [:]
    private var files: [String: FileHandle] = [:]
    private var tails: [String: [String]] = [:]
    /// Local folder of per-platform log files.
    public let directory: String
    private var live: [(platform: String, host: String, line: String, started: Date)] = []
    private var drawnLines = 0
    private var ticker: DispatchSourceTimer?
    private let prefix: String

    /// A log writing per-platform files under `directory`.
    public init(style: Style, directory: String, prefix: String? = nil) {
        self.style = style
        self.directory = directory
        self.prefix = prefix.map { $0 + " " } ?? ""
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if style == .tty {
            let t = DispatchSource.makeTimerSource(queue: .global())
            t.schedule(deadline: .now() + 0.5, repeating: 0.5)
            t.setEventHandler { [weak self] in self?.redraw() }
            t.resume()
            ticker = t
        }
    }

    /// The style for `--progress auto|plain|tty|json` (auto: a live view when stderr is a terminal).
    public static func style(for option: String?) -> Style {
        switch option {
        case "json": return .json
        case "plain": return .plain
        case "tty": return .tty
        default: return isatty(2) == 1 ? .tty : .plain
        }
    }

    private func redraw() {
        lock.lock()
        let rows = live
        let up = drawnLines
        drawnLines = rows.count
        lock.unlock()
        guard !rows.isEmpty else { return }
        var text = up > 0 ? "\u{1B}[\(up)A" : ""
        for r in rows {
            let elapsed = String(format: "%5.1fs", Date().timeIntervalSince(r.started))
            text += "\u{1B}[2K[\(prefix)\(r.platform) \(r.host)] \(elapsed)  \(r.line.prefix(100))\n"
        }
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// The log file of a platform.
    public func file(for platform: String) -> String { directory + "/" + platform.replacingOccurrences(of: "/", with: "-") + ".log" }

    /// A coordinator message about a platform on a host (`[linux/arm64 h2] message`).
    public func note(_ platform: String, _ host: String?, _ message: String) {
        emit(platform: platform, host: host, stream: "coordinator", line: message)
    }

    /// A coordinator message not tied to a platform.
    public func info(_ message: String) {
        switch style {
        case .plain, .tty: Console.shared.err("[\(prefix.isEmpty ? "coordinator" : String(prefix.dropLast()))] " + message)
        case .json: event(["type": "info", "message": message])
        }
    }

    /// Bytes from a remote stream; complete lines are emitted, the rest waits for its newline.
    public func output(_ platform: String, _ host: String, stream: String, _ data: Data) {
        lock.lock()
        let key = platform + "\u{0}" + stream
        var buffer = (partial[key] ?? Data()) + data
        var lines: [String] = []
        while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
            buffer = Data(buffer[buffer.index(after: nl)...])
        }
        partial[key] = buffer
        lock.unlock()
        for line in lines { emit(platform: platform, host: host, stream: stream, line: line) }
    }

    /// Emits what is left of a platform's streams without a final newline.
    public func flush(_ platform: String, _ host: String) {
        for stream in ["stdout", "stderr"] {
            lock.lock()
            let key = platform + "\u{0}" + stream
            let rest = partial.removeValue(forKey: key) ?? Data()
            lock.unlock()
            if !rest.isEmpty { emit(platform: platform, host: host, stream: stream, line: String(decoding: rest, as: UTF8.self)) }
        }
    }

    /// The last lines of a platform's log (for failure summaries).
    public func tail(_ platform: String, lines n: Int = 15) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return Array((tails[platform] ?? []).suffix(n))
    }

    /// Closes the log files.
    public func close() {
        ticker?.cancel()
        if style == .tty { redraw() }
        lock.lock()
        for f in files.values { try? f.close() }
        files = [:]
        lock.unlock()
    }

    private func emit(platform: String, host: String?, stream: String, line: String) {
        let prefix = "[\(self.prefix)\(platform)\(host.map { " " + $0 } ?? "")]"
        lock.lock()
        var t = tails[platform] ?? []
        t.append(line)
        if t.count > 50 { t.removeFirst(t.count - 50) }
        tails[platform] = t
        if files[platform] == nil {
            let path = file(for: platform)
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            files[platform] = FileHandle(forWritingAtPath: path)
        }
        files[platform]?.write(Data((prefix + " " + line + "\n").utf8))
        if style == .tty {
            if let i = live.firstIndex(where: { $0.platform == platform }) {
                live[i].line = line
                if let host, live[i].host != host { live[i].host = host; live[i].started = Date() }
            } else {
                live.append((platform, host ?? "-", line, Date()))
            }
        }
        lock.unlock()
        switch style {
        case .tty: break
        case .plain: Console.shared.err(prefix + " " + line)
        case .json:
            var e = ["type": "log", "platform": platform, "stream": stream, "line": line]
            if let host { e["host"] = host }
            event(e)
        }
    }

    /// One JSON event line on stderr.
    public func event(_ fields: [String: String]) {
        if let s = try? JSONOutput.string(fields, compact: true) { Console.shared.err(s) }
    }
}
