// Metrics: the Prometheus textfile (node_exporter textfile collector) a nightly run leaves behind, so
// alerting can ask "when did image X last build on arm64?" without reading reports.
import Foundation
import Support

/// One image built (or not) for one platform in a run: what the pipeline fills in for the metrics file.
public struct BuildMetric: Sendable, Equatable, Codable {
    /// The plan's image name.
    public var image: String
    /// The normalised platform (`linux/arm64`).
    public var platform: String
    /// Wall time of the build, all attempts included.
    public var durationSeconds: Double
    /// Whether the platform's image was built and pushed.
    public var succeeded: Bool
    /// Attempts made (retries on other hosts count); 0 when never started.
    public var attempts: Int
    /// When the last attempt ended.
    public var finishedAt: Date

    /// A build's figures.
    public init(image: String, platform: String, durationSeconds: Double, succeeded: Bool, attempts: Int, finishedAt: Date) {
        self.image = image
        self.platform = platform
        self.durationSeconds = durationSeconds
        self.succeeded = succeeded
        self.attempts = attempts
        self.finishedAt = finishedAt
    }
}

/// A whole run's figures: the input of `MetricsFile`.
public struct RunMetrics: Sendable, Equatable, Codable {
    /// When the run started.
    public var runStart: Date
    /// Wall time of the run.
    public var duration: TimeInterval
    /// The run's documented exit code.
    public var exitCode: ExitCode
    /// Every image × platform of the plan.
    public var builds: [BuildMetric]

    /// A run's figures.
    public init(runStart: Date, duration: TimeInterval, exitCode: ExitCode, builds: [BuildMetric]) {
        self.runStart = runStart
        self.duration = duration
        self.exitCode = exitCode
        self.builds = builds
    }
}

/// An image and platform: the label pair of every per-build series.
public struct MetricsSeriesKey: Sendable, Hashable, Comparable {
    /// The `image` label.
    public var image: String
    /// The `platform` label.
    public var platform: String

    /// A label pair.
    public init(image: String, platform: String) {
        self.image = image
        self.platform = platform
    }

    /// Image first, then platform: the order samples are written in.
    public static func < (a: Self, b: Self) -> Bool { (a.image, a.platform) < (b.image, b.platform) }
}

/// Renders, reads back and writes the `coordinator_*` metrics in the Prometheus text exposition format 0.0.4.
public enum MetricsFile {
    /// The `outcome` label value for each exit code (`coordinator_run_outcome`).
    public static func outcomeName(_ code: ExitCode) -> String {
        switch code {
        case .success: return "success"
        case .buildFailed: return "build_failed"
        case .usage: return "usage"
        case .partial: return "partial"
        case .infrastructure: return "infrastructure"
        case .locked: return "locked"
        case .interrupted: return "interrupted"
        case .terminated: return "terminated"
        }
    }

    private static let allOutcomes: [ExitCode] =
        [.success, .buildFailed, .usage, .partial, .infrastructure, .locked, .interrupted, .terminated]

    /// The metric family carried over from the previous file when a build fails.
    public static let lastSuccessName = "coordinator_build_last_success_timestamp_seconds"

    /// The file's text: families sorted by name, samples by labels. A failed build keeps its previous
    /// last-success timestamp from `previous` (0 when it never succeeded, so "too old" alerts fire).
    public static func render(_ run: RunMetrics, previous: [MetricsSeriesKey: Double] = [:]) -> String {
        // One sample per series: a plan naming an image twice keeps the later result.
        var latest: [MetricsSeriesKey: BuildMetric] = [:]
        for b in run.builds {
            let key = MetricsSeriesKey(image: b.image, platform: b.platform)
            if let seen = latest[key], seen.finishedAt > b.finishedAt { continue }
            latest[key] = b
        }
        let keys = latest.keys.sorted()
        func perBuild(_ value: (BuildMetric, MetricsSeriesKey) -> Double) -> [(String, Double)] {
            keys.map { key in (labels(["image": key.image, "platform": key.platform]), value(latest[key]!, key)) }
        }
        var families: [(name: String, help: String, samples: [(String, Double)])] = [
            ("coordinator_build_duration_seconds", "Wall time of the image's build for the platform in the last run, all attempts included.",
             perBuild { b, _ in b.durationSeconds }),
            ("coordinator_build_success", "1 if the image was built and pushed for the platform in the last run, else 0.",
             perBuild { b, _ in b.succeeded ? 1 : 0 }),
            ("coordinator_build_attempts", "Build attempts for the image and platform in the last run (retries on other hosts count).",
             perBuild { b, _ in Double(b.attempts) }),
            (lastSuccessName, "Unix time the image last built for the platform, carried across runs; 0 if never.",
             perBuild { b, key in b.succeeded ? b.finishedAt.timeIntervalSince1970 : previous[key] ?? 0 }),
            ("coordinator_run_outcome", "1 for the last run's outcome (its exit code's name), 0 for the others.",
             allOutcomes.map { (labels(["outcome": outcomeName($0)]), $0 == run.exitCode ? 1 : 0) }
                .sorted { $0.0 < $1.0 }),
            ("coordinator_run_exit_code", "Exit code of the last run (0 success, 1 build failed, 3 partial, 4 infrastructure, ...).",
             [("", Double(run.exitCode.rawValue))]),
            ("coordinator_run_duration_seconds", "Wall time of the last run.", [("", run.duration)]),
            ("coordinator_run_timestamp_seconds", "Unix time the last run started.", [("", run.runStart.timeIntervalSince1970)]),
        ]
        families.sort { $0.name < $1.name }
        var out = ""
        for f in families {
            out += "# HELP \(f.name) \(escapeHelp(f.help))\n# TYPE \(f.name) gauge\n"
            for (l, v) in f.samples { out += "\(f.name)\(l) \(format(v))\n" }
        }
        return out
    }

    /// The last-success samples in a previous file's text; lines that do not parse are ignored (a damaged
    /// old file must not fail tonight's run, it only loses history).
    public static func lastSuccessTimestamps(in text: String) -> [MetricsSeriesKey: Double] {
        var result: [MetricsSeriesKey: Double] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard line.hasPrefix(lastSuccessName + "{"),
                  let (labelSet, rest) = parseLabels(line.dropFirst(lastSuccessName.count)),
                  let image = labelSet["image"], let platform = labelSet["platform"] else { continue }
            let words = rest.split(separator: " ")
            guard let first = words.first, let value = Double(first), value.isFinite else { continue }
            result[MetricsSeriesKey(image: image, platform: platform)] = value
        }
        return result
    }

    /// Renders `run` (carrying last-success timestamps over from the file already at `path`) and replaces
    /// the file atomically.
    public static func write(_ run: RunMetrics, to path: String) throws {
        let previous = (try? String(contentsOfFile: path, encoding: .utf8)).map(lastSuccessTimestamps(in:)) ?? [:]
        try AtomicFile.write(Data(render(run, previous: previous).utf8), to: path)
    }

    // MARK: Exposition format details

    /// `{a="x",b="y"}` in key order, values escaped (`\\`, `\"`, `\n`); empty for no labels.
    static func labels(_ pairs: [String: String]) -> String {
        guard !pairs.isEmpty else { return "" }
        return "{" + pairs.keys.sorted().map { "\($0)=\"\(escapeLabel(pairs[$0]!))\"" }.joined(separator: ",") + "}"
    }

    static func escapeLabel(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Go-style float text: `+Inf`, `-Inf`, `NaN`, integers without `.0`.
    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    /// Parses `{k="v",...}` at the start of `s`; returns the labels and what follows the `}` (leading space dropped).
    static func parseLabels(_ s: Substring) -> ([String: String], Substring)? {
        var chars = s.makeIterator()
        guard chars.next() == "{" else { return nil }
        var result: [String: String] = [:]
        var consumed = 1
        var name = ""
        while let c = chars.next() {
            consumed += 1
            switch c {
            case "}" where name.isEmpty:
                let rest = s.dropFirst(consumed)
                return (result, rest.first == " " ? rest.dropFirst() : rest)
            case ",": continue
            case "=":
                guard chars.next() == "\"" else { return nil }
                consumed += 1
                var value = ""
                var closed = false
                while let v = chars.next() {
                    consumed += 1
                    if v == "\"" { closed = true; break }
                    if v == "\\" {
                        guard let e = chars.next() else { return nil }
                        consumed += 1
                        switch e {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: return nil
                        }
                    } else {
                        value.append(v)
                    }
                }
                guard closed else { return nil }
                result[name] = value
                name = ""
            default:
                name.append(c)
            }
        }
        return nil
    }
}
