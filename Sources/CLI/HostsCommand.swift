import Support
enum HostsCommand {
    static var spec: CommandSpec { CommandSpec(name: "hosts", summary: "Inspect the build fleet.", subcommands: []) }
}
