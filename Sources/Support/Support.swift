// Support: the small pieces every module shares (shell quoting, digests, exit codes, logging).
// It must not do network or SSH I/O, and it must not know about inventories or images.
import Foundation

/// The documented exit codes of `coordinator` (README, DESIGN.md §5). The CLI maps outcomes to these in one place.
public enum ExitCode: Int32, Sendable, Codable {
    case success = 0
    case buildFailed = 1
    case usage = 2
    case partial = 3
    case infrastructure = 4
    case locked = 5
    case interrupted = 130
    case terminated = 143
}

/// An error that knows which documented exit code it stands for and how to say itself to a user.
public protocol UserFacingError: Error, CustomStringConvertible {
    /// The documented exit code this error ends a run with.
    var exitCode: ExitCode { get }
}

/// Quotes strings for a POSIX shell so the remote side sees them literally.
public enum Shell {
    /// `s` in single quotes, with embedded single quotes closed, escaped and reopened. Safe for any bytes.
    public static func quote(_ s: String) -> String {
        if !s.isEmpty, s.utf8.allSatisfy({ safeBytes.contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// A command line of quoted words.
    public static func join(_ words: [String]) -> String {
        words.map(quote).joined(separator: " ")
    }

    private static let safeBytes: Set<UInt8> = Set(
        Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,".utf8))
}

/// JSON output the same way everywhere: sorted keys, no escaped slashes, pretty when a human reads it.
public enum JSONOutput {
    /// Encodes `value` with sorted keys (pretty-printed unless `compact`).
    public static func encode<T: Encodable>(_ value: T, compact: Bool = false) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = compact ? [.sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try e.encode(value)
    }

    /// `encode` as a String.
    public static func string<T: Encodable>(_ value: T, compact: Bool = false) throws -> String {
        String(decoding: try encode(value, compact: compact), as: UTF8.self)
    }
}

/// Line-buffered, prefixed output to stdout/stderr, safe from many threads.
public final class Console: Sendable {
    /// The process-wide console.
    public static let shared = Console()
    private let lock = NSLock()

    /// Writes `text` (a newline is added when missing) to standard output.
    public func out(_ text: String) { write(text, to: FileHandle.standardOutput) }

    /// Writes `text` to standard error.
    public func err(_ text: String) { write(text, to: FileHandle.standardError) }

    private func write(_ text: String, to handle: FileHandle) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        lock.lock()
        defer { lock.unlock() }
        handle.write(Data(line.utf8))
    }
}

extension String {
    /// Expands a leading `~` or `~/` to `$HOME`.
    public var expandingTilde: String {
        guard hasPrefix("~") else { return self }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        if self == "~" { return home }
        if hasPrefix("~/") { return home + dropFirst(1) }
        return self
    }
}
