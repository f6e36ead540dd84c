import Foundation

/// The patterns of one ignore file, in order: the last pattern matching a path (or one of its parent
/// folders) decides; a `!` pattern re-includes.
public struct IgnoreRules: Sendable, Equatable {
    /// The patterns, in file order.
    public let patterns: [IgnorePattern]

    /// Rules from already-split pattern lines (no comment handling).
    public init(patterns lines: [String]) throws(IgnorePatternError) {
        var out: [IgnorePattern] = []
        for line in lines where !Substring(line).trimmingSpaces.isEmpty { out.append(try IgnorePattern(line)) }
        patterns = out
    }

    /// Rules from an ignore file's text: a UTF-8 BOM is dropped, lines starting with `#` are comments
    /// (only in the first column, as in moby), blank lines are skipped.
    public init(parsing text: String) throws(IgnorePatternError) {
        var body = Substring(text)
        if body.hasPrefix("\u{FEFF}") { body = body.dropFirst() }
        var lines: [String] = []
        for raw in IgnoreFile.lines(String(body)) where !raw.hasPrefix("#") { lines.append(raw) }
        try self.init(patterns: lines)
    }

    /// No patterns: nothing is excluded.
    public static let none = IgnoreRules(uncheckedPatterns: [])

    private init(uncheckedPatterns: [IgnorePattern]) { patterns = uncheckedPatterns }

    /// True when any pattern is a `!` re-include.
    public var hasReincludes: Bool { patterns.contains { $0.reincludes } }

    /// True when `path` (relative, `/`-separated) is excluded from the context.
    public func excludes(_ path: String) -> Bool { decidingIndex(path).map { !patterns[$0].reincludes } ?? false }

    /// The index of the last pattern matching `path` or a parent of it.
    func decidingIndex(_ path: String) -> Int? {
        patterns.indices.last { patterns[$0].matchesOrParentMatches(path) }
    }

    /// For an excluded folder: could a later `!` pattern re-include something below it? When not, the
    /// walker skips the folder without reading it.
    func mayReinclude(below dir: String) -> Bool {
        let from = (decidingIndex(dir) ?? -1) + 1
        return patterns[from...].contains { $0.reincludes && $0.mayMatch(below: dir) }
    }
}

/// Which ignore file applies to a build, by docker's and podman's precedence.
public enum IgnoreFile {
    /// The ignore file to use: `<Dockerfile>.dockerignore` beside the Dockerfile, then (for podman and
    /// buildah) `CONTEXT/.containerignore`, then `CONTEXT/.dockerignore`; nil when none exists.
    public static func locate(context: String, dockerfile: String, containerEngine: Bool) -> String? {
        var candidates = [dockerfile + ".dockerignore"]
        if containerEngine { candidates.append((context as NSString).appendingPathComponent(".containerignore")) }
        candidates.append((context as NSString).appendingPathComponent(".dockerignore"))
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Reads and parses an ignore file; errors name the file and the line.
    public static func load(_ path: String) throws(ContextError) -> IgnoreRules {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ContextError.unreadable(path: path, reason: "cannot read ignore file")
        }
        let text = String(decoding: data, as: UTF8.self)
        do {
            return try IgnoreRules(parsing: text)
        } catch {
            let line = lineNumber(of: error.pattern, in: text)
            throw ContextError.badIgnorePattern(file: path, line: line, pattern: error.pattern, reason: error.reason)
        }
    }

    private static func lineNumber(of pattern: String, in text: String) -> Int {
        for (i, line) in lines(text).enumerated() where line == pattern { return i + 1 }
        return 0
    }

    /// Lines split on LF scalars (a CRLF is one Swift `Character`, so splitting Characters would miss it).
    static func lines(_ text: String) -> [String] {
        text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
    }
}
