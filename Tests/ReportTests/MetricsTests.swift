import Foundation
import Report
import Support
import TestHarness
import Testing

/// A strict reader of the Prometheus text exposition format 0.0.4, independent of the writer's own reader:
/// what node_exporter's textfile collector would refuse, it refuses.
struct StrictExposition {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct Failure: Error, CustomStringConvertible {
        var line: Int
        var reason: String
        var description: String { "line \(line): \(reason)" }
    }

    var types: [String: String] = [:]
    var helps: [String: String] = [:]
    var samples: [Sample] = []
    /// Family names in the order they appeared.
    var familyOrder: [String] = []

    init(_ text: String) throws {
        guard text.hasSuffix("\n") else { throw Failure(line: 0, reason: "text must end with a newline") }
        var finished: Set<String> = []
        var current: String?
        var seenSeries: Set<String> = []
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        func enter(_ family: String, _ n: Int) throws {
            if current == family { return }
            if let current { finished.insert(current) }
            guard !finished.contains(family) else { throw Failure(line: n, reason: "family \(family) is not contiguous") }
            current = family
            familyOrder.append(family)
        }
        for (i, raw) in lines.enumerated() {
            let n = i + 1
            let line = String(raw)
            guard !line.isEmpty else { throw Failure(line: n, reason: "empty line") }
            guard !line.contains("\r"), !line.contains("\t") else { throw Failure(line: n, reason: "CR or tab") }
            if line.hasPrefix("#") {
                let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                guard words.count >= 3, words[0] == "#" else { throw Failure(line: n, reason: "bad comment") }
                let name = words[2]
                guard Self.isMetricName(name) else { throw Failure(line: n, reason: "bad metric name \(name)") }
                switch words[1] {
                case "HELP":
                    guard helps[name] == nil else { throw Failure(line: n, reason: "second HELP for \(name)") }
                    let text = words.count == 4 ? words[3] : ""
                    helps[name] = try Self.unescape(text, allowQuote: false, line: n)
                    try enter(name, n)
                case "TYPE":
                    guard types[name] == nil else { throw Failure(line: n, reason: "second TYPE for \(name)") }
                    guard words.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(words[3]) else {
                        throw Failure(line: n, reason: "bad TYPE")
                    }
                    guard !samples.contains(where: { $0.name == name }) else { throw Failure(line: n, reason: "TYPE after samples") }
                    types[name] = words[3]
                    try enter(name, n)
                default:
                    throw Failure(line: n, reason: "only HELP and TYPE comments are written")
                }
                continue
            }
            let sample = try Self.parseSample(line, line: n)
            // Gauges and untyped metrics have no suffixed series: the sample name is the family.
            guard types[sample.name] != nil else { throw Failure(line: n, reason: "sample before TYPE for \(sample.name)") }
            try enter(sample.name, n)
            let identity = sample.name + "{" + sample.labels.keys.sorted().map { "\($0)=\(sample.labels[$0]!)" }.joined(separator: "\u{0}") + "}"
            guard seenSeries.insert(identity).inserted else { throw Failure(line: n, reason: "duplicate series \(identity)") }
            samples.append(sample)
        }
    }

    static func isMetricName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f.isASCIILetter || f == "_" || f == ":" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" || $0 == ":" }
    }

    static func isLabelName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f.isASCIILetter || f == "_", !s.hasPrefix("__") else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }

    static func unescape(_ s: String, allowQuote: Bool, line: Int) throws -> String {
        var out = ""
        var it = s.makeIterator()
        while let c = it.next() {
            guard c == "\\" else {
                if c == "\"" && allowQuote { throw Failure(line: line, reason: "unescaped quote") }
                out.append(c)
                continue
            }
            switch it.next() {
            case "\\": out.append("\\")
            case "n": out.append("\n")
            case "\"" where allowQuote: out.append("\"")
            default: throw Failure(line: line, reason: "bad escape in \(s)")
            }
        }
        return out
    }

    static func parseSample(_ line: String, line n: Int) throws -> Sample {
        let chars = Array(line)
        var i = 0
        while i < chars.count, chars[i] != "{", chars[i] != " " { i += 1 }
        let name = String(chars[0..<i])
        guard isMetricName(name) else { throw Failure(line: n, reason: "bad metric name \(name)") }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while true {
                guard i < chars.count else { throw Failure(line: n, reason: "unterminated labels") }
                if chars[i] == "}" { i += 1; break }
                var j = i
                while j < chars.count, chars[j] != "=" { j += 1 }
                let label = String(chars[i..<j])
                guard isLabelName(label), labels[label] == nil else { throw Failure(line: n, reason: "bad or repeated label \(label)") }
                guard j + 1 < chars.count, chars[j + 1] == "\"" else { throw Failure(line: n, reason: "label value not quoted") }
                var k = j + 2
                var rawValue = ""
                while k < chars.count, chars[k] != "\"" {
                    if chars[k] == "\\", k + 1 < chars.count { rawValue.append(chars[k]); k += 1 }
                    rawValue.append(chars[k])
                    k += 1
                }
                guard k < chars.count else { throw Failure(line: n, reason: "unterminated label value") }
                labels[label] = try unescape(rawValue, allowQuote: true, line: n)
                i = k + 1
                if i < chars.count, chars[i] == "," { i += 1 } else if i < chars.count, chars[i] != "}" {
                    throw Failure(line: n, reason: "expected , or }")
                }
            }
        }
        guard i < chars.count, chars[i] == " " else { throw Failure(line: n, reason: "no space before value") }
        let rest = String(chars[(i + 1)...]).split(separator: " ", omittingEmptySubsequences: false)
        guard rest.count == 1 || rest.count == 2 else { throw Failure(line: n, reason: "value then optional timestamp") }
        let text = String(rest[0])
        let value: Double
        switch text {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard text.allSatisfy({ "0123456789.eE+-".contains($0) }), let v = Double(text) else {
                throw Failure(line: n, reason: "bad value \(text)")
            }
            value = v
        }
        if rest.count == 2, Int64(rest[1]) == nil { throw Failure(line: n, reason: "bad timestamp") }
        return Sample(name: name, labels: labels, value: value)
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

@Suite struct MetricsTests {
    static let t0 = Date(timeIntervalSince1970: 1_764_727_200) // 2025-12-03 02:00:00 UTC

    static func run(_ exit: ExitCode, _ builds: [BuildMetric]) -> RunMetrics {
        RunMetrics(runStart: t0, duration: 754.25, exitCode: exit, builds: builds)
    }

    static func build(_ image: String, _ platform: String, ok: Bool, at offset: TimeInterval = 100, attempts: Int = 1) -> BuildMetric {
        BuildMetric(image: image, platform: platform, durationSeconds: 61.5, succeeded: ok, attempts: attempts,
                    finishedAt: t0.addingTimeInterval(offset))
    }

    func tempFile() throws -> String {
        let dir = try Scratch.directory("metrics")
        return dir.appendingPathComponent("coordinator.prom").path
    }

    @Test func everyFamilyHasHelpTypeAndParsesStrictly() throws {
        let text = MetricsFile.render(Self.run(.buildFailed, [
            Self.build("api", "linux/amd64", ok: true), Self.build("api", "linux/arm64", ok: false, attempts: 2),
        ]))
        let parsed = try StrictExposition(text)
        let names = ["coordinator_build_attempts", "coordinator_build_duration_seconds", "coordinator_build_last_success_timestamp_seconds",
                     "coordinator_build_success", "coordinator_run_duration_seconds", "coordinator_run_exit_code",
                     "coordinator_run_outcome", "coordinator_run_timestamp_seconds"]
        #expect(parsed.familyOrder == names)
        for name in names {
            #expect(parsed.types[name] == "gauge")
            #expect(!(parsed.helps[name] ?? "").isEmpty)
        }
        let arm = ["image": "api", "platform": "linux/arm64"], amd = ["image": "api", "platform": "linux/amd64"]
        #expect(parsed.value("coordinator_build_success", amd) == 1)
        #expect(parsed.value("coordinator_build_success", arm) == 0)
        #expect(parsed.value("coordinator_build_attempts", arm) == 2)
        #expect(parsed.value("coordinator_build_duration_seconds", arm) == 61.5)
        #expect(parsed.value("coordinator_build_last_success_timestamp_seconds", amd) == Self.t0.timeIntervalSince1970 + 100)
        #expect(parsed.value("coordinator_build_last_success_timestamp_seconds", arm) == 0)
        #expect(parsed.value("coordinator_run_exit_code") == 1)
        #expect(parsed.value("coordinator_run_outcome", ["outcome": "build_failed"]) == 1)
        #expect(parsed.samples.filter { $0.name == "coordinator_run_outcome" }.map(\.value).reduce(0, +) == 1)
        #expect(parsed.value("coordinator_run_duration_seconds") == 754.25)
        #expect(parsed.value("coordinator_run_timestamp_seconds") == Self.t0.timeIntervalSince1970)
    }

    @Test func hostileLabelValuesAreEscapedAndRoundTrip() throws {
        let nasty = "we\"ird\\name\nline2 {x=\"y\"} ✓"
        let text = MetricsFile.render(Self.run(.success, [Self.build(nasty, "linux/arm64", ok: true)]))
        #expect(text.contains(#"image="we\"ird\\name\nline2 {x=\"y\"} ✓""#))
        let parsed = try StrictExposition(text)
        #expect(parsed.value("coordinator_build_success", ["image": nasty, "platform": "linux/arm64"]) == 1)
        #expect(MetricsFile.lastSuccessTimestamps(in: text)[MetricsSeriesKey(image: nasty, platform: "linux/arm64")]
            == Self.t0.timeIntervalSince1970 + 100)
    }

    @Test func outputIsSortedAndDeterministic() throws {
        let builds = [Self.build("web", "linux/arm64", ok: true), Self.build("api", "linux/arm64", ok: true),
                      Self.build("web", "linux/amd64", ok: true), Self.build("api", "linux/amd64", ok: false)]
        let a = MetricsFile.render(Self.run(.buildFailed, builds))
        let b = MetricsFile.render(Self.run(.buildFailed, builds.reversed()))
        #expect(a == b)
        let parsed = try StrictExposition(a)
        let success = parsed.samples.filter { $0.name == "coordinator_build_success" }.map { "\($0.labels["image"]!) \($0.labels["platform"]!)" }
        #expect(success == ["api linux/amd64", "api linux/arm64", "web linux/amd64", "web linux/arm64"])
        let outcomes = parsed.samples.filter { $0.name == "coordinator_run_outcome" }.map { $0.labels["outcome"]! }
        #expect(outcomes == outcomes.sorted() && outcomes.count == 8)
    }

    @Test func duplicateImagePlatformKeepsTheLaterResult() throws {
        let text = MetricsFile.render(Self.run(.success, [Self.build("api", "linux/amd64", ok: false, at: 50),
                                                          Self.build("api", "linux/amd64", ok: true, at: 90)]))
        let parsed = try StrictExposition(text)
        #expect(parsed.value("coordinator_build_success", ["image": "api", "platform": "linux/amd64"]) == 1)
    }

    @Test func failedBuildCarriesLastSuccessFromThePreviousFile() throws {
        let path = try tempFile()
        try MetricsFile.write(Self.run(.success, [Self.build("api", "linux/arm64", ok: true, at: 300),
                                                  Self.build("web", "linux/arm64", ok: true, at: 400)]), to: path)
        let nextNight = RunMetrics(runStart: Self.t0.addingTimeInterval(86_400), duration: 30, exitCode: .buildFailed, builds: [
            BuildMetric(image: "api", platform: "linux/arm64", durationSeconds: 3, succeeded: false, attempts: 1,
                        finishedAt: Self.t0.addingTimeInterval(86_500)),
            BuildMetric(image: "web", platform: "linux/arm64", durationSeconds: 3, succeeded: true, attempts: 1,
                        finishedAt: Self.t0.addingTimeInterval(86_600)),
            BuildMetric(image: "new", platform: "linux/arm64", durationSeconds: 3, succeeded: false, attempts: 1,
                        finishedAt: Self.t0.addingTimeInterval(86_700)),
        ])
        try MetricsFile.write(nextNight, to: path)
        let parsed = try StrictExposition(try String(contentsOfFile: path, encoding: .utf8))
        let name = "coordinator_build_last_success_timestamp_seconds"
        #expect(parsed.value(name, ["image": "api", "platform": "linux/arm64"]) == Self.t0.timeIntervalSince1970 + 300)
        #expect(parsed.value(name, ["image": "web", "platform": "linux/arm64"]) == Self.t0.timeIntervalSince1970 + 86_600)
        #expect(parsed.value(name, ["image": "new", "platform": "linux/arm64"]) == 0)
        #expect(parsed.value("coordinator_build_success", ["image": "api", "platform": "linux/arm64"]) == 0)
    }

    @Test func writeIsAtomicReadableAndLeavesNoTempFiles() throws {
        let path = try tempFile()
        try Data("old\n".utf8).write(to: URL(fileURLWithPath: path))
        try MetricsFile.write(Self.run(.success, [Self.build("api", "linux/amd64", ok: true)]), to: path)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["coordinator.prom"])
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as? Int) == 0o644)
        _ = try StrictExposition(try String(contentsOfFile: path, encoding: .utf8))
    }

    @Test func damagedPreviousFileOnlyLosesHistory() throws {
        let path = try tempFile()
        try Data("coordinator_build_last_success_timestamp_seconds{image=\"api\",platform=\"linux/arm64\" 12\ngarbage{\n".utf8)
            .write(to: URL(fileURLWithPath: path))
        try MetricsFile.write(Self.run(.buildFailed, [Self.build("api", "linux/arm64", ok: false)]), to: path)
        let parsed = try StrictExposition(try String(contentsOfFile: path, encoding: .utf8))
        #expect(parsed.value("coordinator_build_last_success_timestamp_seconds", ["image": "api", "platform": "linux/arm64"]) == 0)
    }

    @Test func unwritableFolderIsAnInfrastructureError() throws {
        let error = try #require(throws: FileWriteError.self) {
            try MetricsFile.write(Self.run(.success, []), to: "/nonexistent-\(UUID().uuidString)/coordinator.prom")
        }
        #expect(error.exitCode == .infrastructure && error.function == "mkstemp")
    }

    /// The strict reader itself must refuse what the textfile collector refuses, or the tests above prove nothing.
    @Test(arguments: [
        "a 1",                                              // no trailing newline
        "# TYPE a gauge\na{b=\"c\"} 1\n# TYPE d gauge\nd 1\na{b=\"e\"} 2\n", // family not contiguous
        "a 1\n",                                            // sample before TYPE
        "# TYPE a gauge\na{b=\"c\\x\"} 1\n",               // bad escape
        "# TYPE a gauge\na{b=\"c\"} 1\na{b=\"c\"} 2\n",    // duplicate series
        "# TYPE a gauge\na{__b=\"c\"} 1\n",                // reserved label name
        "# TYPE a gauge\na{b=c} 1\n",                       // unquoted value
        "# TYPE a gauge\na inf\n",                          // Go wants +Inf
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",           // second TYPE
        "# TYPE a gaug\na 1\n",                             // unknown type
    ])
    func strictReaderRefusesBadExposition(_ text: String) {
        #expect(throws: StrictExposition.Failure.self) { try StrictExposition(text) }
    }
}
