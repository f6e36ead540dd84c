// Build: everything between an inventory and a published index — preflight, contexts, engines, scheduling.
// Per-host outcomes are values (one dead host never hides the others); only run-stopping problems are thrown.
import Foundation
import Inventory
import OCI
import SSH
import Support

extension HostSpec {
    /// The SSH target for this host: `address` resolved through ssh_config (`sshConfig`, default
    /// `~/.ssh/config` if it exists) with its jump chain. Throws `SSHConfigError` (a usage error) for an
    /// ssh_config the coordinator refuses, or an unreadable `sshConfig`.
    public var sshTarget: SSHTarget {
        get throws { try sshConfigured().target }
    }

    /// `sshTarget` with where each value came from (`coordinator plan`) and what ssh_config said but is not used.
    /// Host-level inventory fields win over ssh_config; `defaults` and built-in defaults sit beneath it.
    public func sshConfigured(environment: SSHConfigEnvironment = .current) throws -> SSHConfiguredTarget {
        let config = try SSHConfig(file: sshConfig ?? "~/.ssh/config", optional: sshConfig == nil, environment: environment)
        let base = SSHTarget(name: name, address: address, port: port, user: user, identityFile: identityFile,
                             knownHosts: knownHosts, hostKeyPolicy: hostKeyPolicy == .acceptNew ? .acceptNew : .strict,
                             connectTimeout: connectTimeout, keepaliveInterval: keepaliveInterval,
                             keepaliveCountMax: keepaliveCountMax)
        let fields = Set(hostFields.compactMap { SSHTargetField(rawValue: $0) }).subtracting([.address, .proxyJump])
        func hops(_ list: [String]?) throws -> [JumpSpec]? {
            try list?.map { hop in
                guard let spec = JumpSpec(parsing: hop) else {
                    throw SSHConfigError(file: "inventory", message: "host \(name): jump hop '\(hop)' is not [user@]host[:port]")
                }
                return spec
            }
        }
        let ownJump = hostFields.contains("jump")
        return try config.configuredTarget(base, hostFields: fields, hostJump: ownJump ? try hops(jump) : nil,
                                           defaultsJump: ownJump ? nil : try hops(jump))
    }
}

/// The outcome of vetting one host: can it build its declared platforms natively, right now?
public struct HostCheck: Sendable, Codable, Equatable {
    /// Verdicts, worst last.
    public enum Status: String, Sendable, Codable {
        /// Usable.
        case ok
        /// Usable, with something worth knowing (`reason`).
        case warning
        /// Not reachable (refused, no route, timeout).
        case unreachable
        /// Host key unknown, changed or revoked.
        case hostKey = "host-key"
        /// Authentication refused.
        case auth
        /// `uname -m` disagrees with the declared platforms (building would mean emulation or a wrong label).
        case archMismatch = "arch-mismatch"
        /// The engine is missing or does not answer.
        case noEngine = "no-engine"
        /// Too little free disk in workDir.
        case disk
        /// The connection died during the checks.
        case lost
    }

    /// Host name.
    public var name: String
    /// `address:port`.
    public var address: String
    /// Declared platforms.
    public var platforms: [String]
    /// Verdict.
    public var status: Status
    /// Whether the host can take builds.
    public var usable: Bool { status == .ok || status == .warning }
    /// Why it is not ok, for a human.
    public var reason: String?
    /// `ssh-ed25519 SHA256:…` the host presented.
    public var hostKey: String?
    /// `uname -m`.
    public var machine: String?
    /// Engine name from the inventory.
    public var engine: String
    /// The engine's version line.
    public var engineVersion: String?
    /// For docker: `buildx` or `classic` (which build path the coordinator will use).
    public var engineMode: String?
    /// Free bytes in (the nearest existing parent of) workDir.
    public var freeDiskBytes: Int64?
    /// binfmt_misc handlers whose interpreter is QEMU (emulation could sneak in).
    public var qemuHandlers: [String]
    /// Milliseconds for TCP connect + handshake + auth.
    public var connectMilliseconds: Double?
    /// Milliseconds for one exec round trip (open channel, run `true`, close).
    public var roundTripMilliseconds: Double?
}

/// Vets hosts the way `hosts check` and the scheduler need: reachability, host key, auth, architecture,
/// engine, disk, binfmt.
public enum Preflight {
    /// Free space below which a host is refused.
    public static let minimumFreeBytes: Int64 = 1 << 30

    /// Checks every host at once (each on its own session thread).
    public static func check(_ hosts: [HostSpec]) async -> [HostCheck] {
        await withTaskGroup(of: (Int, HostCheck).self) { group in
            for (i, host) in hosts.enumerated() { group.addTask { (i, await check(host)) } }
            var results = [HostCheck?](repeating: nil, count: hosts.count)
            for await (i, r) in group { results[i] = r }
            return results.map { $0! }
        }
    }

    /// Checks one host; never throws: every failure is a status.
    public static func check(_ host: HostSpec, measureRoundTrip: Bool = true) async -> HostCheck {
        var result = HostCheck(name: host.name, address: "\(host.address):\(host.port)",
                               platforms: host.platforms.map(\.description), status: .ok, engine: host.engine.rawValue,
                               qemuHandlers: [])
        let connection: SSHConnection
        do {
            connection = try await SSHConnection.connect(host.sshTarget)
        } catch let error as SSHError {
            result.status = status(for: error)
            result.reason = error.message
            return result
        } catch {
            result.status = .unreachable
            result.reason = "\(error)"
            return result
        }
        result.hostKey = "\(connection.hostKeyType) \(connection.hostKeyFingerprint)"
        result.connectMilliseconds = connection.connectSeconds * 1000
        do {
            let probe = try await connection.runPlain(probeScript(for: host), timeout: 30)
            let facts = Probe(probe.stdoutText)
            if measureRoundTrip {
                let rttStart = Date()
                _ = try await connection.runPlain("true", timeout: 10)
                result.roundTripMilliseconds = Date().timeIntervalSince(rttStart) * 1000
            }
            judge(facts, host: host, into: &result)
        } catch let error as SSHError {
            result.status = error.kind == .timeout ? .lost : status(for: error)
            result.reason = error.message
        } catch {
            result.status = .lost
            result.reason = "\(error)"
        }
        // Awaited, never left running: a close still in flight when the process exits crashed `hosts check`.
        await connection.close()
        return result
    }

    static func status(for error: SSHError) -> HostCheck.Status {
        switch error.kind {
        case .unreachable, .timeout: return .unreachable
        case .hostKeyUnknown, .hostKeyChanged, .hostKeyRevoked: return .hostKey
        case .authFailed: return .auth
        case .hostLost, .protocolError: return .lost
        case .local: return .auth
        }
    }

    /// Applies the facts a probe found to a result.
    static func judge(_ facts: Probe, host: HostSpec, into result: inout HostCheck) {
        result.machine = facts["arch"]
        result.freeDiskBytes = facts["disk"].flatMap { Int64($0) }.map { $0 * 1024 }
        result.qemuHandlers = facts.all("binfmt")
        result.engineVersion = facts["engine"]
        result.engineMode = facts["mode"]
        var problems: [(HostCheck.Status, String)] = []
        let native = facts["arch"].flatMap { Platform.native(unameMachine: $0) }
        let foreign = host.platforms.filter { $0 != native }
        if !foreign.isEmpty {
            problems.append((.archMismatch, "uname -m says \(facts["arch"] ?? "?") (native \(native?.description ?? "unknown")), but the inventory declares \(foreign.map(\.description).joined(separator: ", ")): refused, no emulation"))
        }
        if facts["engine"] == nil {
            problems.append((.noEngine, "\(host.engine.rawValue) not usable: \(facts["engine-error"] ?? "not found")"))
        }
        if let free = result.freeDiskBytes, free < minimumFreeBytes {
            problems.append((.disk, "only \(free / (1 << 20)) MiB free in \(host.workDir) (need \(minimumFreeBytes >> 20) MiB)"))
        }
        if let worst = problems.first {
            result.status = worst.0
            result.reason = problems.map(\.1).joined(separator: "; ")
            return
        }
        if !result.qemuHandlers.isEmpty {
            result.status = .warning
            result.reason = "binfmt_misc has QEMU handlers (\(result.qemuHandlers.joined(separator: ", "))): builds stay native because coordinator only requests \(native?.description ?? "the host's platform"), but a FROM --platform of another arch would be emulated"
        }
    }

    /// The shell script that gathers a host's facts as `key=value` lines. Every inventory value in it is quoted.
    public static func probeScript(for host: HostSpec) -> String {
        let engine: String
        switch host.engine {
        case .docker:
            // The daemon must answer (DOCKER_HOST or the default socket); the mode is the path EngineScript takes:
            // buildx when `docker buildx version` works, else the classic builder.
            engine = """
            if v=$(docker version --format '{{.Server.Version}}' 2>&1); then \
            if b=$(docker buildx version 2>/dev/null); then echo "engine=docker $v, buildx $(echo "$b" | head -n 1)"; echo mode=buildx; \
            else echo "engine=docker $v"; echo mode=classic; fi; \
            else echo "engine-error=$(echo "$v" | grep -m 1 . || echo 'docker version failed')"; fi
            """
        case .podman, .buildah:
            let tool = host.engine.rawValue
            engine = "if v=$(\(tool) --version 2>&1); then echo \"engine=$v\"; else echo \"engine-error=$(echo \"$v\" | head -n 1)\"; fi"
        }
        return """
        echo "arch=$(uname -m)"
        \(engine)
        d=\(Shell.quote(host.workDir)); while [ ! -d "$d" ]; do d=$(dirname "$d"); done
        echo "disk=$(df -Pk "$d" | awk 'NR==2 {print $4}')"
        for f in /proc/sys/fs/binfmt_misc/*; do
          case "${f##*/}" in status|register|'*') continue ;; esac
          [ -f "$f" ] && grep -q '^enabled' "$f" && grep -qi '^interpreter .*qemu' "$f" && echo "binfmt=${f##*/}"
        done
        exit 0
        """
    }
}

/// `key=value` lines printed by a probe.
struct Probe {
    private var pairs: [(String, String)] = []

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            pairs.append((String(line[..<eq]), String(line[line.index(after: eq)...])))
        }
    }

    subscript(key: String) -> String? { pairs.first(where: { $0.0 == key })?.1 }
    func all(_ key: String) -> [String] { pairs.filter { $0.0 == key }.map(\.1) }
}
