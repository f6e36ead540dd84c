import Build
import Foundation
import Inventory
import SSH
import Support

/// `coordinator hosts …`: vet the fleet.
enum HostsCommand {
    static var spec: CommandSpec {
        CommandSpec(name: "hosts", summary: "Inspect the build fleet.", subcommands: [check])
    }

    static var check: CommandSpec {
        CommandSpec(
            name: "check",
            summary: "Check every host in parallel: reachable, host key, auth, architecture, engine, disk, binfmt.",
            discussion: """
            Exit status: 0 when every host is usable, 4 when any is not, 2 on an inventory or usage error.
            A host is usable when its host key and login are accepted, `uname -m` matches every platform it
            declares (no emulation), its engine answers, and workDir has at least 1 GiB free. QEMU handlers in
            binfmt_misc give a warning, not a refusal.
            """,
            options: [
                OptionSpec(["--hosts"], value: "FILE", help: "Inventory file (JSON)."),
                OptionSpec(["--format"], value: "FORMAT", help: "Output format.", choices: ["table", "json"]),
            ],
            run: { args in
                let fleet = try Fleet.load(path: try args.require("--hosts"))
                for host in fleet.hosts { _ = try host.sshConfigured() }
                let results = await Preflight.check(fleet.hosts)
                // Bastion sessions given back during the checks are disconnected before output and exit.
                await JumpHosts.drain()
                if args.value("--format") == "json" {
                    Console.shared.out(try JSONOutput.string(HostCheckReport(results)))
                } else {
                    Console.shared.out(render(results))
                }
                return results.allSatisfy(\.usable) ? .success : .infrastructure
            })
    }

    /// The JSON form of `hosts check`.
    struct HostCheckReport: Encodable {
        var hosts: [HostCheck]
        var total: Int
        var usable: Int
        init(_ hosts: [HostCheck]) {
            self.hosts = hosts
            total = hosts.count
            usable = hosts.filter(\.usable).count
        }
    }

    static func render(_ results: [HostCheck]) -> String {
        var table = TextTable(["HOST", "ADDRESS", "PLATFORMS", "STATUS", "ARCH", "ENGINE", "FREE", "RTT", "REASON"])
        for r in results {
            table.append([
                r.name, r.address, r.platforms.joined(separator: ","), r.status.rawValue, r.machine ?? "-",
                r.engineVersion.map { v in r.engineMode.map { "\(v) (\($0))" } ?? v } ?? "-",
                r.freeDiskBytes.map { String(format: "%.1fG", Double($0) / 1_073_741_824) } ?? "-",
                r.roundTripMilliseconds.map { String(format: "%.0fms", $0) } ?? "-",
                r.reason ?? "",
            ])
        }
        let usable = results.filter(\.usable).count
        return table.render() + "\(usable)/\(results.count) hosts usable"
    }
}
