import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file:line, the unit of provenance.
struct ConfigLocation: Sendable, Equatable {
    var file: String
    var line: Int
    var source: ConfigSource { .sshConfig(file: file, line: line) }
}

/// One line of a file as OpenSSH sees it, with includes already read (they are parsed even in blocks that
/// never match, so their errors surface whatever the alias, as with OpenSSH).
enum ConfigEntry: Sendable {
    case host(patterns: [String], at: ConfigLocation)
    case match(MatchCondition, at: ConfigLocation)
    case include(files: [[ConfigEntry]], at: ConfigLocation)
    case setting(ConfigSetting, at: ConfigLocation)
    case ignored(keyword: String, at: ConfigLocation)
}

/// A `Match` line: criteria all of which must hold, or a criterion we do not evaluate.
enum MatchCondition: Sendable {
    case criteria([MatchCriterion])
    case unsupported(String)
}

/// One `Match` criterion (`!host a,b`).
struct MatchCriterion: Sendable {
    enum Kind: String, Sendable { case all, host, originalhost, user, localuser }
    var kind: Kind
    var negated: Bool
    var patterns: String
}

/// A value of a keyword the coordinator honours, already checked as OpenSSH checks it.
enum ConfigSetting: Sendable {
    case hostName(String)
    case user(String)
    case port(Int)
    case identityFile(String)
    case identitiesOnly(Bool)
    /// ProxyJump and ProxyCommand share one slot in OpenSSH: the first of either wins.
    case proxy(ProxySetting)
    case userKnownHostsFile(String)
    /// `policy` nil: a value OpenSSH accepts (no, off, ask, false) that the coordinator refuses.
    case strictHostKeyChecking(raw: String, policy: SSHTarget.HostKeyPolicy?)
    case connectTimeout(Int)
    case serverAliveInterval(Int)
    case serverAliveCountMax(Int)
}

/// The shared ProxyJump / ProxyCommand value.
enum ProxySetting: Sendable, Equatable {
    case jump([JumpSpec])
    case none
    case command(String)
}

/// Reads ssh_config text the way OpenSSH's readconf.c does.
struct ConfigParser {
    /// OpenSSH's READCONF_MAX_DEPTH.
    static let maxIncludeDepth = 16
    let environment: SSHConfigEnvironment
    var warnings: [SSHConfigWarning] = []

    init(environment: SSHConfigEnvironment) { self.environment = environment }

    mutating func parse(contents: String, file: String, depth: Int) throws -> [ConfigEntry] {
        var entries: [ConfigEntry] = []
        for (index, raw) in Array(contents.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .enumerated() {
            let at = ConfigLocation(file: file, line: index + 1)
            guard let line = try ConfigLexer.split(Array(raw), at: at) else { continue }
            entries.append(try entry(line, at: at, depth: depth))
        }
        return entries
    }

    private mutating func entry(_ line: ConfigLexer.Line, at: ConfigLocation, depth: Int) throws -> ConfigEntry {
        let args = line.args
        func fail(_ message: String) -> SSHConfigError { SSHConfigError(file: at.file, line: at.line, message: message) }
        func single() throws -> String {
            guard let first = args.first, !first.isEmpty else { throw fail("\(line.keyword): missing argument") }
            guard args.count == 1 else { throw fail("\(line.keyword): extra arguments at end of line") }
            return first
        }
        switch line.keyword {
        case "host":
            if args.isEmpty || args.contains("") { throw fail("Host: empty pattern") }
            return .host(patterns: args, at: at)
        case "match":
            let condition = try matchCondition(args, fail: fail)
            if case let .unsupported(message) = condition {
                warnings.append(SSHConfigWarning(file: at.file, line: at.line, message: message))
            }
            return .match(condition, at: at)
        case "include":
            return .include(files: try include(args, at: at, depth: depth, fail: fail), at: at)
        case "hostname":
            return .setting(.hostName(try single()), at: at)
        case "user":
            return .setting(.user(try single()), at: at)
        case "port":
            let value = try single()
            guard let port = Int(value), (1...65535).contains(port) else { throw fail("Port: bad port '\(value)'") }
            return .setting(.port(port), at: at)
        case "identityfile":
            return .setting(.identityFile(try single()), at: at)
        case "identitiesonly":
            let value = try single()
            guard let flag = ConfigValue.flag(value) else { throw fail("IdentitiesOnly: '\(value)' is not yes or no") }
            return .setting(.identitiesOnly(flag), at: at)
        case "proxyjump":
            _ = try single()
            return .setting(.proxy(try ConfigValue.proxyJump(line.rest, fail: fail)), at: at)
        case "proxycommand":
            let command = line.rest
            return .setting(.proxy(command == "none" ? .none : .command(command)), at: at)
        case "userknownhostsfile":
            guard let first = args.first, !args.contains("") else { throw fail("UserKnownHostsFile: missing argument") }
            return .setting(.userKnownHostsFile(first), at: at)
        case "stricthostkeychecking":
            let value = try single()
            switch value.lowercased() {
            case "yes", "true": return .setting(.strictHostKeyChecking(raw: value, policy: .strict), at: at)
            case "accept-new": return .setting(.strictHostKeyChecking(raw: value, policy: .acceptNew), at: at)
            case "no", "off", "false", "ask": return .setting(.strictHostKeyChecking(raw: value, policy: nil), at: at)
            default: throw fail("StrictHostKeyChecking: unknown value '\(value)' (the coordinator accepts yes or accept-new)")
            }
        case "connecttimeout", "serveraliveinterval":
            let value = try single()
            guard let seconds = ConfigValue.seconds(value) else { throw fail("\(line.keyword): invalid time value '\(value)'") }
            return .setting(line.keyword == "connecttimeout" ? .connectTimeout(seconds) : .serverAliveInterval(seconds), at: at)
        case "serveralivecountmax":
            let value = try single()
            guard let count = Int(value), count >= 0 else { throw fail("ServerAliveCountMax: '\(value)' is not a count") }
            return .setting(.serverAliveCountMax(count), at: at)
        default:
            return .ignored(keyword: line.keyword, at: at)
        }
    }

    /// `Match` as match_cfg_line reads it; criteria we cannot evaluate without running things are kept as
    /// `.unsupported` (the block never applies) and warned about.
    private func matchCondition(_ args: [String], fail: (String) -> SSHConfigError) throws -> MatchCondition {
        var criteria: [MatchCriterion] = []
        var i = 0
        while i < args.count {
            let word = args[i]
            let negated = word.hasPrefix("!")
            let name = String(word.dropFirst(negated ? 1 : 0)).lowercased()
            i += 1
            if name == "all" {
                if i < args.count { throw fail("Match: 'all' cannot be combined with other Match attributes") }
                criteria.append(MatchCriterion(kind: .all, negated: negated, patterns: ""))
                break
            }
            guard let kind = MatchCriterion.Kind(rawValue: name) else {
                return .unsupported("Match \(name) is not supported by the coordinator; block skipped")
            }
            guard i < args.count, !args[i].isEmpty else { throw fail("Match: missing criteria for \(name)") }
            criteria.append(MatchCriterion(kind: kind, negated: negated, patterns: args[i]))
            i += 1
        }
        if criteria.isEmpty { throw fail("Match: one or more attributes required") }
        return .criteria(criteria)
    }

    /// `Include`: `~` expanded, relative paths under the include directory, globbed and sorted; a pattern
    /// matching nothing is skipped, as OpenSSH does.
    private mutating func include(_ args: [String], at: ConfigLocation, depth: Int,
                                  fail: (String) -> SSHConfigError) throws -> [[ConfigEntry]] {
        if args.isEmpty || args.contains("") { throw fail("Include: missing argument") }
        if depth >= Self.maxIncludeDepth {
            throw fail("Include: too many nested includes (more than \(Self.maxIncludeDepth)); does a file include itself?")
        }
        var files: [[ConfigEntry]] = []
        for arg in args {
            var pattern = ConfigPath.expandTilde(arg, environment: environment)
            if !pattern.hasPrefix("/") { pattern = environment.includeDirectory + "/" + pattern }
            for path in ConfigPath.glob(pattern) {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
                guard !isDirectory.boolValue, let data = FileManager.default.contents(atPath: path) else {
                    throw fail("Include: cannot read \(path)")
                }
                files.append(try parse(contents: String(decoding: data, as: UTF8.self), file: path, depth: depth + 1))
            }
        }
        return files
    }
}

/// Splits one line into keyword and arguments, byte for byte like OpenSSH (strdelim + argv_split).
enum ConfigLexer {
    struct Line {
        /// Lowercased keyword.
        var keyword: String
        /// Arguments, quotes and escapes removed, stopped at a word starting with `#`.
        var args: [String]
        /// The text after the keyword and its separator, untouched (ProxyCommand takes it whole); for
        /// ProxyJump with anything from `#` on removed.
        var rest: String
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A || b == 0x0C }

    /// nil for blank and comment lines.
    static func split(_ bytes: [UInt8], at: ConfigLocation) throws -> Line? {
        var end = bytes.count
        while end > 0, isSpace(bytes[end - 1]) { end -= 1 }
        var i = 0
        while i < end, isSpace(bytes[i]) { i += 1 }
        let keywordStart = i
        while i < end, !isSpace(bytes[i]), bytes[i] != UInt8(ascii: "=") { i += 1 }
        let keyword = String(decoding: bytes[keywordStart..<i], as: UTF8.self).lowercased()
        if keyword.isEmpty || keyword.hasPrefix("#") { return nil }
        while i < end, isSpace(bytes[i]) { i += 1 }
        if i < end, bytes[i] == UInt8(ascii: "=") { i += 1 }
        while i < end, isSpace(bytes[i]) { i += 1 }
        let rest = Array(bytes[i..<end])
        if rest.isEmpty {
            throw SSHConfigError(file: at.file, line: at.line, message: "no argument after keyword \"\(keyword)\"")
        }
        guard let args = words(rest) else {
            throw SSHConfigError(file: at.file, line: at.line, message: "\(keyword): unbalanced quotes")
        }
        var restText = String(decoding: rest, as: UTF8.self)
        if keyword == "proxyjump", let hash = restText.firstIndex(of: "#") {
            restText = String(restText[..<hash]).trimmingCharacters(in: .whitespaces)
        }
        return Line(keyword: keyword, args: args, rest: restText)
    }

    /// OpenSSH's argv_split with terminate_on_comment: `"` and `'` quote, `\` escapes quotes, `\` and space.
    static func words(_ s: [UInt8]) -> [String]? {
        var result: [String] = []
        var i = 0
        while i < s.count {
            if s[i] == 0x20 || s[i] == 0x09 { i += 1; continue }
            if s[i] == UInt8(ascii: "#") { break }
            var word: [UInt8] = []
            var quote: UInt8 = 0
            while i < s.count {
                let c = s[i]
                if c == UInt8(ascii: "\\"), i + 1 < s.count,
                   [UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "\\")].contains(s[i + 1])
                    || (quote == 0 && s[i + 1] == 0x20) {
                    word.append(s[i + 1])
                    i += 2
                    continue
                }
                if quote == 0, c == 0x20 || c == 0x09 { break }
                if quote == 0, c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") { quote = c }
                else if quote != 0, c == quote { quote = 0 }
                else { word.append(c) }
                i += 1
            }
            if quote != 0 { return nil }
            result.append(String(decoding: word, as: UTF8.self))
        }
        return result
    }
}

/// Value syntaxes shared by several keywords.
enum ConfigValue {
    /// multistate_flag: yes/true, no/false.
    static func flag(_ s: String) -> Bool? {
        switch s.lowercased() {
        case "yes", "true": return true
        case "no", "false": return false
        default: return nil
        }
    }

    /// OpenSSH's convtime: `90`, `1m30s`, `1h`; units s m h d w, any case.
    static func seconds(_ s: String) -> Int? {
        var total = 0, number = "", sawDigit = false
        for c in s {
            if c.isASCII, c.isNumber { number.append(c); sawDigit = true; continue }
            let unit: Int
            switch c.lowercased() {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86400
            case "w": unit = 604800
            default: return nil
            }
            guard let n = Int(number) else { return nil }
            total += n * unit
            number = ""
        }
        if !number.isEmpty { guard let n = Int(number) else { return nil }; total += n }
        return sawDigit && total <= Int(Int32.max) ? total : nil
    }

    /// ProxyJump: `none`, or a comma-separated chain of `[user@]host[:port]` / `ssh://[user@]host[:port]`.
    static func proxyJump(_ s: String, fail: (String) -> SSHConfigError) throws -> ProxySetting {
        if s.lowercased() == "none" { return .none }
        let hops = try s.split(separator: ",", omittingEmptySubsequences: false).map { hop -> JumpSpec in
            guard let spec = jump(String(hop)) else { throw fail("ProxyJump: invalid hop '\(hop)' in '\(s)'") }
            return spec
        }
        return .jump(hops)
    }

    /// One hop; nil when OpenSSH's parse_ssh_uri / parse_user_host_port would refuse it.
    static func jump(_ hop: String) -> JumpSpec? {
        var text = Substring(hop)
        if text.lowercased().hasPrefix("ssh://") {
            text = text.dropFirst(6)
            if text.hasSuffix("/") { text = text.dropLast() }
        }
        var user: String?
        if let at = text.lastIndex(of: "@") {
            guard at != text.startIndex else { return nil }
            user = String(text[..<at])
            text = text[text.index(after: at)...]
        }
        var host: Substring, portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if portText?.contains(":") == true { return nil }
        } else {
            host = text
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\t" }) else { return nil }
        var port: Int?
        if let portText, !portText.isEmpty {
            guard let p = Int(portText), (1...65535).contains(p) else { return nil }
            port = p
        }
        return JumpSpec(user: user, host: String(host), port: port)
    }
}

/// Path expansion: `~`, globbing, and the `%` / `${}` tokens of IdentityFile and UserKnownHostsFile.
enum ConfigPath {
    /// `~` and `~/x` → home; `~user/x` → that user's home (passwd); anything else unchanged.
    static func expandTilde(_ path: String, environment: SSHConfigEnvironment) -> String {
        guard path.hasPrefix("~") else { return path }
        let slash = path.firstIndex(of: "/") ?? path.endIndex
        let name = path[path.index(after: path.startIndex)..<slash]
        var home = environment.homeDirectory
        if !name.isEmpty {
            guard let pw = getpwnam(String(name)), let dir = pw.pointee.pw_dir else { return path }
            home = String(cString: dir)
        }
        return home + path[slash...]
    }

    /// Sorted matches of a glob(3) pattern; none when nothing matches.
    static func glob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        return (0..<Int(g.gl_pathc)).compactMap { g.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// The values `%` tokens stand for.
    struct Tokens {
        var hostName: String
        var user: String
        var port: Int
        var alias: String
    }

    /// `~`, then `%%` `%d` `%h` `%i` `%k` `%L` `%l` `%n` `%p` `%r` `%u`, then `${NAME}`, as OpenSSH expands
    /// IdentityFile and UserKnownHostsFile; `%C`, `%j` and unknown tokens are refused.
    static func expand(_ path: String, tokens: Tokens, environment env: SSHConfigEnvironment, keyword: String,
                       at: ConfigSource) throws -> String {
        func fail(_ message: String) -> SSHConfigError {
            if case let .sshConfig(file, line) = at { return SSHConfigError(file: file, line: line, message: message) }
            return SSHConfigError(file: "\(at)", message: message)
        }
        let short = env.localHostName.split(separator: ".").first.map(String.init) ?? env.localHostName
        var out = ""
        var chars = Array(expandTilde(path, environment: env))[...]
        while let c = chars.popFirst() {
            if c == "%" {
                guard let t = chars.popFirst() else { throw fail("\(keyword): '%' at the end of '\(path)'") }
                switch t {
                case "%": out.append("%")
                case "d": out += env.homeDirectory
                case "h", "k": out += tokens.hostName
                case "i": out += String(env.localUID)
                case "L": out += short
                case "l": out += env.localHostName
                case "n": out += tokens.alias
                case "p": out += String(tokens.port)
                case "r": out += tokens.user
                case "u": out += env.localUser
                case "C", "j": throw fail("\(keyword): token %\(t) in '\(path)' is not supported by the coordinator")
                default: throw fail("\(keyword): unknown token %\(t) in '\(path)'")
                }
            } else if c == "$", chars.first == "{" {
                guard let close = chars.firstIndex(of: "}") else { throw fail("\(keyword): unterminated ${ in '\(path)'") }
                let name = String(chars[chars.index(after: chars.startIndex)..<close])
                guard let value = env.variables[name] else {
                    throw fail("\(keyword): environment variable ${\(name)} in '\(path)' has no value")
                }
                out += value
                chars = chars[chars.index(after: close)...]
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// `HostName`: only `%h` (the alias) and `%%`.
    static func expandHostName(_ value: String, alias: String) -> String? {
        var out = ""
        var chars = value[...]
        while let c = chars.popFirst() {
            guard c == "%" else { out.append(c); continue }
            switch chars.popFirst() {
            case "%": out.append("%")
            case "h": out += alias
            default: return nil
            }
        }
        return out
    }
}

/// OpenSSH's host patterns: `*` any run, `?` one character, whole string.
enum ConfigPattern {
    /// match_pattern: case-sensitive.
    static func glob(_ text: Substring.UTF8View, _ pattern: Substring.UTF8View) -> Bool {
        guard let p = pattern.first else { return text.isEmpty }
        let restPattern = pattern.dropFirst()
        if p == UInt8(ascii: "*") {
            var t = text
            while true {
                if glob(t, restPattern) { return true }
                guard !t.isEmpty else { return false }
                t = t.dropFirst()
            }
        }
        guard let c = text.first, p == UInt8(ascii: "?") || p == c else { return false }
        return glob(text.dropFirst(), restPattern)
    }

    /// match_pattern on whole strings.
    static func matches(_ text: String, _ pattern: String) -> Bool {
        glob(Substring(text).utf8, Substring(pattern).utf8)
    }

    /// match_pattern_list: comma-separated, `!` negates; 1 positive, -1 negated hit, 0 nothing.
    static func list(_ text: String, _ patterns: String, lowercase: Bool) -> Int {
        let subject = lowercase ? text.lowercased() : text
        var positive = 0
        for var sub in patterns.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            let negated = sub.hasPrefix("!")
            if negated { sub.removeFirst() }
            if lowercase { sub = sub.lowercased() }
            if matches(subject, sub) {
                if negated { return -1 }
                positive = 1
            }
        }
        return positive
    }
}
