// CLI: hand-written argument parsing and the commands. Help text is generated from the same
// declarations that parse, so it cannot drift. It must not hold domain logic: commands call into modules.
import Foundation
import Support

/// One option a command accepts.
public struct OptionSpec: Sendable {
    /// Every spelling (`-t`, `--tag`); the first long one is the key values are stored under.
    public var names: [String]
    /// The placeholder shown in help (`FILE`); nil for a flag that takes no value.
    public var value: String?
    /// One line of help.
    public var help: String
    /// Whether the option may be given more than once.
    public var repeatable: Bool
    /// A list of accepted values, checked while parsing.
    public var choices: [String]?

    /// A flag or option.
    public init(_ names: [String], value: String? = nil, help: String, repeatable: Bool = false, choices: [String]? = nil) {
        self.names = names
        self.value = value
        self.help = help
        self.repeatable = repeatable
        self.choices = choices
    }

    /// The name values are stored under.
    public var key: String { names.first(where: { $0.hasPrefix("--") }) ?? names[0] }
}

/// A positional argument.
public struct ArgumentSpec: Sendable {
    /// Placeholder shown in help.
    public var name: String
    /// One line of help.
    public var help: String
    /// Whether it can be left out.
    public var optional: Bool
    /// Whether it takes every remaining word.
    public var variadic: Bool

    /// A positional argument.
    public init(_ name: String, help: String, optional: Bool = false, variadic: Bool = false) {
        self.name = name
        self.help = help
        self.optional = optional
        self.variadic = variadic
    }
}

/// A command or subcommand: its declaration and what it does.
public struct CommandSpec: Sendable {
    /// The word that selects it.
    public var name: String
    /// One line shown in the parent's help.
    public var summary: String
    /// A longer description shown in its own help.
    public var discussion: String
    /// Options.
    public var options: [OptionSpec]
    /// Positionals.
    public var arguments: [ArgumentSpec]
    /// Subcommands (when non-empty, the command itself only dispatches).
    public var subcommands: [CommandSpec]
    /// What it does; returns the exit code.
    public var run: (@Sendable (ParsedArguments) async throws -> ExitCode)?

    /// A command.
    public init(name: String, summary: String, discussion: String = "", options: [OptionSpec] = [],
                arguments: [ArgumentSpec] = [], subcommands: [CommandSpec] = [],
                run: (@Sendable (ParsedArguments) async throws -> ExitCode)? = nil) {
        self.name = name
        self.summary = summary
        self.discussion = discussion
        self.options = options
        self.arguments = arguments
        self.subcommands = subcommands
        self.run = run
    }
}

/// A usage error: exit 2, with a pointer to the command's help.
public struct UsageError: UserFacingError, Equatable {
    /// What was wrong.
    public var message: String
    /// The command path, e.g. `coordinator hosts check`.
    public var command: String

    /// A usage error.
    public init(_ message: String, command: String) {
        self.message = message
        self.command = command
    }

    public var exitCode: ExitCode { .usage }
    public var description: String { "error: \(message)\nSee '\(command) --help'." }
}

/// What the parser found.
public struct ParsedArguments: Sendable {
    /// The command path (`coordinator hosts check`).
    public var commandPath: String
    /// Option values by key (flags map to `["true"]`).
    public var values: [String: [String]] = [:]
    /// Positionals in order.
    public var positionals: [String] = []

    /// The last value of an option, if given.
    public func value(_ key: String) -> String? { values[key]?.last }
    /// Every value of a repeatable option, in order.
    public func all(_ key: String) -> [String] { values[key] ?? [] }
    /// Whether a flag was given.
    public func flag(_ key: String) -> Bool { values[key] != nil }

    /// A required option's value, or a usage error naming it.
    public func require(_ key: String) throws -> String {
        guard let v = value(key) else { throw UsageError("missing required option \(key)", command: commandPath) }
        return v
    }

    /// An integer option's value, or a usage error.
    public func integer(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = Int(v), n >= 0 else { throw UsageError("\(key) expects a non-negative integer, got '\(v)'", command: commandPath) }
        return n
    }

    /// `K=V` pairs of a repeatable option, in order, or a usage error for one without `=`.
    public func pairs(_ key: String) throws -> [(String, String)] {
        try all(key).map { item in
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw UsageError("\(key) expects KEY=VALUE, got '\(item)'", command: commandPath)
            }
            return (String(item[..<eq]), String(item[item.index(after: eq)...]))
        }
    }
}

/// Parses words against a command tree.
public enum ArgumentParser {
    /// The outcome of parsing: run a command, or print help / version.
    public enum Outcome: Sendable {
        case run(CommandSpec, ParsedArguments)
        case help(String)
        case version
    }

    /// Finds the command the words select and parses its options.
    public static func parse(_ words: [String], root: CommandSpec) throws -> Outcome {
        var command = root
        var path = root.name
        var rest = words[...]
        // Walk down subcommands.
        while !command.subcommands.isEmpty {
            guard let word = rest.first else { return .help(help(for: command, path: path)) }
            if word == "--help" || word == "-h" || word == "help" {
                rest = rest.dropFirst()
                if word == "help", let sub = rest.first, let found = command.subcommands.first(where: { $0.name == sub }) {
                    return .help(help(for: found, path: path + " " + sub))
                }
                return .help(help(for: command, path: path))
            }
            if word == "--version", command.name == root.name { return .version }
            guard let sub = command.subcommands.first(where: { $0.name == word }) else {
                if word.hasPrefix("-") { throw UsageError("unknown option '\(word)'", command: path) }
                throw UsageError("unknown command '\(word)'", command: path)
            }
            command = sub
            path += " " + word
            rest = rest.dropFirst()
        }
        var parsed = ParsedArguments(commandPath: path)
        var onlyPositionals = false
        while let word = rest.first {
            rest = rest.dropFirst()
            if onlyPositionals || !word.hasPrefix("-") || word == "-" {
                parsed.positionals.append(word)
                continue
            }
            if word == "--" { onlyPositionals = true; continue }
            if word == "--help" || word == "-h" { return .help(help(for: command, path: path)) }
            var name = word
            var inline: String?
            if word.hasPrefix("--"), let eq = word.firstIndex(of: "=") {
                name = String(word[..<eq])
                inline = String(word[word.index(after: eq)...])
            }
            guard let option = command.options.first(where: { $0.names.contains(name) }) else {
                throw UsageError("unknown option '\(name)'", command: path)
            }
            if parsed.values[option.key] != nil, !option.repeatable {
                throw UsageError("option \(option.key) given more than once", command: path)
            }
            if option.value == nil {
                if inline != nil { throw UsageError("option \(option.key) takes no value", command: path) }
                parsed.values[option.key, default: []].append("true")
                continue
            }
            let value: String
            if let inline {
                value = inline
            } else if let next = rest.first {
                value = next
                rest = rest.dropFirst()
            } else {
                throw UsageError("option \(option.key) needs a value (\(option.value!))", command: path)
            }
            if let choices = option.choices, !choices.contains(value) {
                throw UsageError("option \(option.key) must be one of \(choices.joined(separator: ", ")), got '\(value)'", command: path)
            }
            parsed.values[option.key, default: []].append(value)
        }
        let required = command.arguments.filter { !$0.optional }.count
        if parsed.positionals.count < required {
            let missing = command.arguments[parsed.positionals.count]
            throw UsageError("missing argument \(missing.name)", command: path)
        }
        if !(command.arguments.last?.variadic ?? false), parsed.positionals.count > command.arguments.count {
            throw UsageError("unexpected argument '\(parsed.positionals[command.arguments.count])'", command: path)
        }
        return .run(command, parsed)
    }

    /// The help text of a command, generated from its declaration.
    public static func help(for command: CommandSpec, path: String) -> String {
        var lines: [String] = []
        lines.append("OVERVIEW: \(command.summary)")
        if !command.discussion.isEmpty { lines.append(""); lines.append(command.discussion) }
        lines.append("")
        if !command.subcommands.isEmpty {
            lines.append("USAGE: \(path) <subcommand>")
            lines.append("")
            lines.append("SUBCOMMANDS:")
            let width = command.subcommands.map(\.name.count).max() ?? 0
            for sub in command.subcommands {
                lines.append("  " + sub.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + sub.summary)
            }
            lines.append("")
            lines.append("  See '\(path) help <subcommand>' for detailed help.")
        } else {
            var usage = "USAGE: \(path)"
            if !command.options.isEmpty { usage += " [options]" }
            for arg in command.arguments {
                let word = arg.variadic ? "\(arg.name)..." : arg.name
                usage += arg.optional ? " [\(word)]" : " \(word)"
            }
            lines.append(usage)
            if !command.arguments.isEmpty {
                lines.append("")
                lines.append("ARGUMENTS:")
                let width = command.arguments.map(\.name.count).max() ?? 0
                for arg in command.arguments {
                    lines.append("  " + arg.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + arg.help)
                }
            }
            lines.append("")
            lines.append("OPTIONS:")
            let rows = command.options.map { option -> (String, String) in
                var left = option.names.joined(separator: ", ")
                if let v = option.value { left += " \(v)" }
                var help = option.help
                if let c = option.choices { help += " (\(c.joined(separator: "|")))" }
                if option.repeatable { help += " (repeatable)" }
                return (left, help)
            } + [("-h, --help", "Show help for this command.")]
            let width = rows.map(\.0.count).max() ?? 0
            for (left, help) in rows {
                lines.append("  " + left.padding(toLength: width + 2, withPad: " ", startingAt: 0) + help)
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
