import Foundation
import Report
import Support

/// `coordinator runs`: past runs from the run records (plan, report, per-platform logs).
enum RunsCommand {
    static var spec: CommandSpec {
        CommandSpec(name: "runs", summary: "List past runs, or show one (its report and log files).",
                    discussion: "Records live under $COORDINATOR_STATE_DIR/runs, else $XDG_STATE_HOME/coordinator/runs, /var/lib/coordinator/runs as root, ~/.local/state/coordinator/runs otherwise.",
                    subcommands: [list, show])
    }

    static var list: CommandSpec {
        CommandSpec(name: "list", summary: "One line per run, newest first.",
                    options: [OptionSpec(["--format"], value: "FORMAT", help: "Output format.", choices: ["table", "json"])],
                    run: { args in
                        let runs = try RunRecords(stateDir: BuildCommand.recordsDirectory()).list()
                        if args.value("--format") == "json" {
                            Console.shared.out(try JSONOutput.string(runs))
                            return .success
                        }
                        var t = TextTable(["RUN", "STARTED", "STATE", "EXIT", "IMAGES"])
                        let f = ISO8601DateFormatter()
                        for r in runs {
                            t.append([r.id, f.string(from: r.start), r.state.rawValue, r.exitCode.map(String.init) ?? "-", r.images.map(String.init) ?? "-"])
                        }
                        Console.shared.out(t.render() + "\(runs.count) runs")
                        return .success
                    })
    }

    static var show: CommandSpec {
        CommandSpec(name: "show", summary: "A run's report and the files it kept.",
                    arguments: [ArgumentSpec("RUN", help: "Run id (from `coordinator runs list`).")],
                    run: { args in
                        let detail = try RunRecords(stateDir: BuildCommand.recordsDirectory()).show(args.positionals[0])
                        Console.shared.out("run \(detail.summary.id) (\(detail.summary.state.rawValue), exit \(detail.summary.exitCode.map(String.init) ?? "-")) in \(detail.folder.path)")
                        for f in detail.files { Console.shared.out("  " + f) }
                        if let report = detail.report { Console.shared.out(String(decoding: report, as: UTF8.self)) }
                        return .success
                    })
    }
}
