// `.dockerignore` patterns with the semantics docker users get from moby's patternmatcher: Go
// `filepath.Match` syntax, `**` for any number of segments, `!` to re-include, last match wins, and a
// pattern that matches a folder matching everything below it. Written from the documented behaviour;
// where moby's regexp translation and Go's Match disagree, the comments say which one we follow.

/// One cleaned line of an ignore file.
public struct IgnorePattern: Sendable, Equatable, CustomStringConvertible {
    /// The pattern after cleaning, without its leading `!`.
    public let pattern: String
    /// True for a `!` line, which re-includes what it matches.
    public let reincludes: Bool
    private let matcher: Matcher

    /// Parses one pattern as moby does: whitespace trimmed, `!` split off, cleaned like `filepath.Clean`,
    /// a leading `/` dropped. Throws on Go `filepath.Match` syntax errors (unclosed `[`, empty class, bad
    /// range, trailing `\`).
    public init(_ line: String) throws(IgnorePatternError) {
        var text = Substring(line).trimmingSpaces
        let negated = text.first == "!"
        if negated { text = Substring(text.dropFirst()).trimmingSpaces }
        if negated && text.isEmpty { throw IgnorePatternError(pattern: line, reason: "\"!\" alone excludes nothing") }
        var cleaned = PathClean.clean(String(text))
        if cleaned.utf8.count > 1 && cleaned.hasPrefix("/") { cleaned.removeFirst() }
        pattern = cleaned
        reincludes = negated
        do {
            matcher = try Matcher(compiling: Array(cleaned.unicodeScalars))
        } catch let reason {
            throw IgnorePatternError(pattern: line, reason: reason.text)
        }
    }

    /// The line as it would be written back: `!` prefix for re-includes.
    public var description: String { (reincludes ? "!" : "") + pattern }

    /// True when the pattern matches `path` itself (a relative, `/`-separated path; no parent rule).
    public func matches(_ path: String) -> Bool { matcher.matches(Array(path.unicodeScalars)) }

    /// True when `path` or one of its parent folders matches: what "matches" means in an ignore file.
    public func matchesOrParentMatches(_ path: String) -> Bool {
        let scalars = Array(path.unicodeScalars)
        if matcher.matches(scalars) { return true }
        for (i, s) in scalars.enumerated() where s == "/" && matcher.matches(Array(scalars[..<i])) {
            return true
        }
        return false
    }

    /// False only when no path strictly below folder `dir` can match (conservative: may say true wrongly).
    func mayMatch(below dir: String) -> Bool { matcher.mayMatch(prefix: Array((dir + "/").unicodeScalars)) }

    public static func == (a: IgnorePattern, b: IgnorePattern) -> Bool {
        a.pattern == b.pattern && a.reincludes == b.reincludes
    }
}

/// A syntax error in an ignore pattern.
public struct IgnorePatternError: Error, Equatable, Sendable {
    /// The line as written.
    public let pattern: String
    /// What is wrong with it.
    public let reason: String
}

// MARK: - Matching

/// The four shapes moby distinguishes; only `tokens` needs the automaton.
private enum Matcher: Sendable, Equatable {
    /// No wildcard at all: compare the strings.
    case exact([Unicode.Scalar])
    /// `foo**` / `foo/**`: a plain prefix (moby: `HasPrefix`).
    case prefix([Unicode.Scalar])
    /// `**foo`, `**/foo` with no other wildcard (moby: `HasSuffix`, plus `**/foo` matching `foo`).
    case suffix([Unicode.Scalar])
    /// Anything else, as moby's regexp translation would match it.
    case tokens([Token])

    struct Reason: Error { let text: String }

    init(compiling p: [Unicode.Scalar]) throws(Reason) {
        try Matcher.validate(p)
        var tokens: [Token] = []
        var kind = Kind.exact
        var i = 0
        var first = true
        while i < p.count {
            defer { first = false }
            let c = p[i]
            switch c {
            case "*" where i + 1 < p.count && p[i + 1] == "*":
                i += 2
                if i < p.count, p[i] == "/" { i += 1 }
                if i == p.count {
                    tokens.append(.anyTail)
                    kind = kind == .exact ? .prefix : .regexp
                } else {
                    tokens.append(.anyDirs)
                    kind = .regexp
                }
                if first { kind = .suffix }
                continue
            case "*":
                tokens.append(.anyRun)
                kind = .regexp
            case "?":
                tokens.append(.anyOne)
                kind = .regexp
            case "\\":
                // Validation guarantees a following scalar.
                i += 1
                tokens.append(.literal(p[i]))
                kind = .regexp
            case "[":
                let (set, next) = Matcher.parseClass(p, from: i + 1)
                tokens.append(.set(set))
                kind = .regexp
                i = next
                continue
            case "]":
                tokens.append(.literal(c))
                kind = .regexp
            default:
                tokens.append(.literal(c))
            }
            i += 1
        }
        // moby picks the shape the same way (exact, prefix for a trailing `**` after plain text, suffix for
        // a leading `**` followed by plain text); the shapes differ from the regexp only in corner cases
        // such as `**foo` matching `barfoo`.
        switch kind {
        case .exact: self = .exact(p)
        case .prefix: self = .prefix(Array(p.dropLast(2)))
        case .suffix: self = .suffix(Array(p.dropFirst(2)))
        case .regexp: self = .tokens(tokens)
        }
    }

    private enum Kind { case exact, prefix, suffix, regexp }

    func matches(_ s: [Unicode.Scalar]) -> Bool {
        switch self {
        case .exact(let p): return s == p
        case .prefix(let p): return s.starts(with: p)
        case .suffix(let suffix):
            if s.count >= suffix.count && Array(s.suffix(suffix.count)) == suffix { return true }
            return suffix.first == "/" && s == Array(suffix.dropFirst())
        case .tokens(let tokens):
            var states = Automaton(tokens: tokens).start()
            for c in s {
                states = Automaton(tokens: tokens).step(states, c)
                if states.isEmpty { return false }
            }
            return states.contains(tokens.count)
        }
    }

    func mayMatch(prefix s: [Unicode.Scalar]) -> Bool {
        switch self {
        case .exact(let p): return p.count > s.count && p.starts(with: s)
        case .prefix(let p): return p.starts(with: s) || s.starts(with: p)
        case .suffix: return true
        case .tokens(let tokens):
            let a = Automaton(tokens: tokens)
            var states = a.start()
            for c in s {
                states = a.step(states, c)
                if states.isEmpty { return false }
            }
            return states.contains { $0 != tokens.count }
        }
    }

    // MARK: Syntax (Go filepath.Match's rules)

    private static func validate(_ p: [Unicode.Scalar]) throws(Reason) {
        var i = 0
        while i < p.count {
            switch p[i] {
            case "\\":
                if i + 1 >= p.count { throw Reason(text: "trailing backslash escapes nothing") }
                i += 2
            case "[":
                i = try validateClass(p, from: i + 1)
            default:
                i += 1
            }
        }
    }

    /// Returns the index after the closing `]`.
    private static func validateClass(_ p: [Unicode.Scalar], from start: Int) throws(Reason) -> Int {
        var i = start
        if i < p.count, p[i] == "^" { i += 1 }
        var ranges = 0
        func element() throws(Reason) -> Unicode.Scalar {
            guard i < p.count else { throw Reason(text: "unclosed character class") }
            var c = p[i]
            if c == "-" || c == "]" { throw Reason(text: "character class needs a character before \"\(c)\"") }
            if c == "\\" {
                i += 1
                guard i < p.count else { throw Reason(text: "unclosed character class") }
                c = p[i]
            }
            i += 1
            return c
        }
        while true {
            if i < p.count, p[i] == "]", ranges > 0 { return i + 1 }
            _ = try element()
            if i < p.count, p[i] == "-" {
                i += 1
                _ = try element()
            }
            ranges += 1
        }
    }

    /// Parses a validated class; returns it and the index after `]`.
    private static func parseClass(_ p: [Unicode.Scalar], from start: Int) -> (CharacterSet, Int) {
        var i = start
        var set = CharacterSet(negated: false, ranges: [])
        if p[i] == "^" { set.negated = true; i += 1 }
        func element() -> Unicode.Scalar {
            if p[i] == "\\" { i += 1 }
            defer { i += 1 }
            return p[i]
        }
        while !(p[i] == "]" && !set.ranges.isEmpty) {
            let lo = element()
            var hi = lo
            if p[i] == "-" { i += 1; hi = element() }
            set.ranges.append(hi.value < lo.value ? emptyRange : lo.value...hi.value)
        }
        return (set, i + 1)
    }

    /// A range no scalar falls in (Go accepts `[z-a]`; it simply never matches).
    private static let emptyRange = ClosedRange<UInt32>(uncheckedBounds: (0x11_0000, 0x11_0000))
}

private enum Token: Sendable, Equatable {
    case literal(Unicode.Scalar)
    /// `*`: any run of non-`/`.
    case anyRun
    /// `?`: one non-`/`.
    case anyOne
    /// `**` (followed by more): `(.*/)?` — nothing, or anything ending in `/`.
    case anyDirs
    /// A trailing `**` after a wildcard: `.*`.
    case anyTail
    case set(CharacterSet)
}

/// A `[...]` class. A negated class matches `/` too, as moby's regexp does (Go's Match would not).
private struct CharacterSet: Sendable, Equatable {
    var negated: Bool
    var ranges: [ClosedRange<UInt32>]
    func contains(_ c: Unicode.Scalar) -> Bool { ranges.contains { $0.contains(c.value) } != negated }
}

/// A Thompson automaton over the token list: state `i` waits before token `i`; state `n + 1 + i` is inside
/// the `(.*/)?` of token `i`; state `n` accepts. Linear in path length, no backtracking blow-up.
private struct Automaton {
    let tokens: [Token]

    func start() -> Set<Int> { closure([0]) }

    private func closure(_ seed: Set<Int>) -> Set<Int> {
        var out = Set<Int>()
        var work = Array(seed)
        while let s = work.popLast() {
            guard out.insert(s).inserted else { continue }
            guard s < tokens.count else { continue }
            switch tokens[s] {
            case .anyRun, .anyTail: work.append(s + 1)
            case .anyDirs: work.append(s + 1); work.append(tokens.count + 1 + s)
            default: break
            }
        }
        return out
    }

    func step(_ states: Set<Int>, _ c: Unicode.Scalar) -> Set<Int> {
        var next = Set<Int>()
        let n = tokens.count
        for s in states {
            if s > n {
                let owner = s - n - 1
                next.insert(s)
                if c == "/" { next.insert(owner + 1) }
                continue
            }
            guard s < n else { continue }
            switch tokens[s] {
            case .literal(let l): if l == c { next.insert(s + 1) }
            case .anyRun: if c != "/" { next.insert(s) }
            case .anyOne: if c != "/" { next.insert(s + 1) }
            case .anyTail: next.insert(s)
            case .anyDirs: break
            case .set(let set): if set.contains(c) { next.insert(s + 1) }
            }
        }
        return closure(next)
    }
}

// MARK: - Helpers

/// Go's `filepath.Clean` for `/`-separated paths.
enum PathClean {
    static func clean(_ path: String) -> String {
        if path.isEmpty { return "." }
        let rooted = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if let last = parts.last, last != ".." { parts.removeLast(); continue }
                if rooted { continue }
            }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if rooted { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }
}

extension Substring {
    /// Without leading and trailing spaces, tabs, CR and LF (Go's `strings.TrimSpace` for ASCII).
    var trimmingSpaces: Substring {
        let ws: Set<Character> = [" ", "\t", "\r", "\n", "\r\n", "\u{0B}", "\u{0C}"]
        var s = self
        while let f = s.first, ws.contains(f) { s = s.dropFirst() }
        while let l = s.last, ws.contains(l) { s = s.dropLast() }
        return s
    }
}
