import Foundation
import Support

/// The `coordinator` command tree and its entry point: the one place outcomes become exit codes.
public enum CoordinatorCLI {
    /// The version `--version` prints.
    public static let version = "0.1.0"

    /// Every top-level command, in help order.
    static var commands: [CommandSpec] {
        [BuildCommand.build, BuildCommand.plan, HostsCommand.spec, MergeCommand.spec, InspectCommand.spec, RunsCommand.spec]
    }

    /// The root of the command tree.
    public static var root: CommandSpec {
        CommandSpec(
            name: "coordinator",
            summary: "Build container images natively on remote x86-64 and Arm hosts over SSH and publish one multi-arch index.",
            options: [OptionSpec(["--version"], help: "Print the version.")],
            subcommands: commands)
    }

    /// Runs the command the process arguments select and exits with its code.
    public static func main() async {
        let code = await run(Array(CommandLine.arguments.dropFirst()))
        exit(code.rawValue)
    }

    /// Runs `words` and returns the documented exit code (printing errors to stderr).
    public static func run(_ words: [String]) async -> ExitCode {
        do {
            switch try ArgumentParser.parse(words, root: root) {
            case .help(let text):
                Console.shared.out(text)
                return .success
            case .version:
                Console.shared.out("coordinator \(version)")
                return .success
            case .run(let command, let parsed):
                guard let run = command.run else { return .usage }
                return try await run(parsed)
            }
        } catch let error as UserFacingError {
            Console.shared.err(error.description.hasPrefix("error:") ? error.description : "error: \(error.description)")
            return error.exitCode
        } catch {
            Console.shared.err("error: \(error)")
            return .infrastructure
        }
    }
}
