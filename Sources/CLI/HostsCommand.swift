enum HostsCommand { static var spec: CommandSpec { CommandSpec(name: "hosts", summary: "x") } }
