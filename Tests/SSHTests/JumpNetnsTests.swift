// Jump hosts against real sshd: a target that only a bastion can reach, in network namespaces.
//
// Topology (test addresses only on the veths, 10.201.X.0/30 and 10.201.X.4/30):
//   this process --veth 10.201.X.1 / .2--> [netns B: bastion sshd on 10.201.X.2:22]
//                                          [netns B] --veth 10.201.X.5 / .6--> [netns T: target sshd on 10.201.X.6:22
//                                                                               and :2200, and 127.0.0.1:2201]
// The bastion sits in a namespace of its own, not on the host side: a bastion sharing this process's routing
// table would let this process reach the target directly too. The host gets an `unreachable` route for
// 10.201.X.4/30, so a direct connection fails at once.
import Foundation
import Support
import TestHarness
import Testing
@testable import SSH

/// Two namespaces, two sshd, keys and a known_hosts; torn down (processes by pid, namespaces, route) by `stop()`.
final class JumpLab: @unchecked Sendable {
    let dir: String
    let x: Int
    let bastionNS: String
    let targetNS: String
    var clientKey: String { dir + "/id_ed25519" }
    var knownHosts: String { dir + "/known_hosts" }
    var bastionAddress: String { "10.201.\(x).2" }
    var targetAddress: String { "10.201.\(x).6" }
    private var stopped = false

    private static let counter = LabCounter()

    init() throws {
        _ = try JumpLab.must(["ip", "-V"], "the ip tool (iproute2) is required for the jump tests")
        dir = NSTemporaryDirectory() + "coordinator-jump-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let n = JumpLab.counter.next()
        var chosen: Int?
        let used = try JumpLab.must(["ip", "-o", "addr"], "ip addr").stdout + (try JumpLab.must(["ip", "route"], "ip route").stdout)
        for attempt in 0..<250 {
            let candidate = (Int(getpid()) &* 7 + n * 13 + attempt) % 250 + 1
            if !used.contains("10.201.\(candidate).") { chosen = candidate; break }
        }
        x = try #require(chosen)
        bastionNS = "cjb\(getpid())n\(n)"
        targetNS = "cjt\(getpid())n\(n)"
        do { try setUp() } catch { stop(); throw error }
    }

    deinit { stop() }

    private func setUp() throws {
        let b = bastionNS, t = targetNS, x = self.x
        let script = """
            set -e
            ip netns add \(b); ip netns add \(t)
            ip link add cjh\(x) type veth peer name cjb\(x) netns \(b)
            ip addr add 10.201.\(x).1/30 dev cjh\(x); ip link set cjh\(x) up
            ip -n \(b) addr add 10.201.\(x).2/30 dev cjb\(x); ip -n \(b) link set cjb\(x) up; ip -n \(b) link set lo up
            ip -n \(b) link add cjc\(x) type veth peer name cjt\(x) netns \(t)
            ip -n \(b) addr add 10.201.\(x).5/30 dev cjc\(x); ip -n \(b) link set cjc\(x) up
            ip -n \(t) addr add 10.201.\(x).6/30 dev cjt\(x); ip -n \(t) link set cjt\(x) up; ip -n \(t) link set lo up
            ip route add unreachable 10.201.\(x).4/30
            mkdir -p /run/sshd
            ssh-keygen -q -t ed25519 -N '' -C jump-client -f \(dir)/id_ed25519 </dev/null
            for h in bastion target; do
              mkdir -p \(dir)/$h
              ssh-keygen -q -t ed25519 -N '' -C $h -f \(dir)/$h/host_key </dev/null
              cp \(dir)/id_ed25519.pub \(dir)/$h/authorized_keys
            done
            """
        _ = try JumpLab.must(["bash", "-c", script], "setting up the namespaces")
        try sshdConfig("bastion", listen: ["\(bastionAddress):22"])
        try sshdConfig("target", listen: ["\(targetAddress):22", "\(targetAddress):2200", "127.0.0.1:2201"])
        var lines = ""
        for (h, names) in [("bastion", [bastionAddress]), ("target", [targetAddress, "[\(targetAddress)]:2200", "[127.0.0.1]:2201"])] {
            let pub = try String(contentsOfFile: "\(dir)/\(h)/host_key.pub", encoding: .utf8).split(separator: " ")
            for name in names { lines += "\(name) \(pub[0]) \(pub[1])\n" }
        }
        try lines.write(toFile: knownHosts, atomically: true, encoding: .utf8)
        for (h, ns) in [("bastion", bastionNS), ("target", targetNS)] {
            _ = try JumpLab.must(["ip", "netns", "exec", ns, "/usr/sbin/sshd", "-f", "\(dir)/\(h)/sshd_config", "-E", "\(dir)/\(h)/sshd.log"], "starting the \(h) sshd")
        }
        // sshd writes its PidFile once it listens.
        let deadline = Date().addingTimeInterval(10)
        for h in ["bastion", "target"] {
            while !FileManager.default.fileExists(atPath: "\(dir)/\(h)/sshd.pid") {
                guard Date() < deadline else { throw JumpLabError("the \(h) sshd did not start: \(log(h))") }
                usleep(20_000)
            }
        }
    }

    private func sshdConfig(_ h: String, listen: [String]) throws {
        let d = "\(dir)/\(h)"
        try """
            \(listen.map { "ListenAddress \($0)" }.joined(separator: "\n"))
            HostKey \(d)/host_key
            PidFile \(d)/sshd.pid
            AuthorizedKeysFile \(d)/authorized_keys
            StrictModes no
            UsePAM no
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            AllowTcpForwarding yes
            LogLevel ERROR
            PrintMotd no
            UseDNS no
            MaxStartups 64
            MaxSessions 64
            SetEnv HOME=\(d)/home TMPDIR=\(d)/tmp CONTAINERS_STORAGE_CONF=\(d)/storage.conf BUILDAH_ISOLATION=chroot

            """.write(toFile: "\(d)/sshd_config", atomically: true, encoding: .utf8)
        // Its own buildah storage, so a real build can run on a host reachable only through the bastion.
        for sub in ["home", "tmp", "work"] { try FileManager.default.createDirectory(atPath: "\(d)/\(sub)", withIntermediateDirectories: true) }
        try "[storage]\ndriver = \"vfs\"\ngraphroot = \"\(d)/storage/graph\"\nrunroot = \"\(d)/storage/run\"\n"
            .write(toFile: "\(d)/storage.conf", atomically: true, encoding: .utf8)
    }

    func log(_ h: String) -> String { (try? String(contentsOfFile: "\(dir)/\(h)/sshd.log", encoding: .utf8)) ?? "" }

    /// A target as the inventory would give it (fleet key, known_hosts, strict policy).
    func target(_ name: String, _ address: String, port: Int = 22, knownHosts: String? = nil, keepalive: Double = 5,
                jump: [SSHTarget] = []) -> SSHTarget {
        SSHTarget(name: name, address: address, port: port, user: "root", identityFile: clientKey,
                  knownHosts: knownHosts ?? self.knownHosts, connectTimeout: 15, keepaliveInterval: keepalive,
                  keepaliveCountMax: 3, jump: jump)
    }

    var bastion: SSHTarget { target("bastion", bastionAddress) }

    /// Pids of every process inside `ns`.
    func pids(_ ns: String) -> [Int32] {
        let out = (try? runLocal(["ip", "netns", "pids", ns], timeout: 10))?.stdout ?? ""
        return out.split(separator: "\n").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Sends `signal` to every process of the namespace.
    func signal(_ ns: String, _ signal: Int32) { for pid in pids(ns) { kill(pid, signal) } }

    /// Kills the processes by pid (CONT, TERM, KILL after 2 s), deletes namespaces (their veths go with them)
    /// and the route, removes the folder. Bounded: every step has a timeout.
    func stop() {
        guard !stopped else { return }
        stopped = true
        for ns in [bastionNS, targetNS] {
            signal(ns, SIGCONT)
            signal(ns, SIGTERM)
        }
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline, !(pids(bastionNS) + pids(targetNS)).isEmpty { usleep(50_000) }
        for ns in [bastionNS, targetNS] { signal(ns, SIGKILL) }
        _ = try? runLocal(["bash", "-c", "ip netns del \(targetNS); ip netns del \(bastionNS); ip link del cjh\(x) 2>/dev/null; ip route del unreachable 10.201.\(x).4/30; true"], timeout: 20)
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    static func must(_ argv: [String], _ what: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let r: (status: Int32, stdout: String, stderr: String)
        do { r = try runLocal(argv, timeout: 60) } catch { throw JumpLabError("\(what): \(error)") }
        guard r.status == 0 else { throw JumpLabError("\(what) failed (\(r.status)): \(r.stderr)") }
        return r
    }
}

private final class LabCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}

@Suite(.serialized) final class JumpNetnsTests {
    let lab: JumpLab

    init() throws { lab = try JumpLab() }
    deinit { lab.stop() }

    func eventually(_ seconds: Double = 5, _ condition: () async -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return true }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        return await condition()
    }

    @Test func directConnectionFails() async throws {
        do {
            let c = try await SSHConnection.connect(lab.target("target", lab.targetAddress))
            await c.close()
            Issue.record("the target was reachable directly")
        } catch let e as SSHError {
            #expect(e.kind == .unreachable || e.kind == .timeout, "\(e)")
        }
    }

    @Test func jumpPathRunsCommandsAndMovesDataBothWays() async throws {
        let c = try await SSHConnection.connect(lab.target("target", lab.targetAddress, jump: [lab.bastion]))
        let out = try await c.run("echo $SSH_CONNECTION; echo err >&2; exit 3")
        // The target sees the connection come from the bastion's inner address.
        #expect(out.stdoutText.hasPrefix("10.201.\(lab.x).5 "), "\(out.stdoutText)")
        #expect(out.stderrText == "err\n")
        #expect(out.status.exitStatus == 3)
        #expect(c.jumpChain == "root@\(lab.bastionAddress):22")
        let payload = Data((0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
        let up = try await c.run("sha256sum | cut -d' ' -f1", input: .data(payload))
        #expect(up.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == sha256Hex(payload))
        let down = try await c.run("head -c 9000000 /dev/zero")
        #expect(down.stdout.count == 9_000_000)
        await c.close()
        #expect(await eventually { await JumpHosts.activeSessions().isEmpty })
    }

    @Test func droppedConnectionGivesItsBastionBackBeforeDrainReturns() async throws {
        var c: SSHConnection? = try await SSHConnection.connect(lab.target("target", lab.targetAddress, jump: [lab.bastion]))
        #expect(try await c?.run("echo up").stdoutText == "up\n")
        let key = "root@\(lab.bastionAddress):22"
        #expect(await JumpHosts.activeSessions()[key] == 1)
        weak var gone = c
        c = nil  // never closed: the lease's deinit gives the bastion back on its own
        // The session thread may hold it for a moment after its last command.
        #expect(await eventually { gone == nil })
        await JumpHosts.drain()
        #expect(await JumpHosts.activeSessions()[key] == nil)
    }

    @Test func bastionWithAnUnknownHostKeyRefusesTheWholePath() async throws {
        // The bastion checks against its own known_hosts (which lacks it); the target's would be fine.
        let onlyTarget = lab.dir + "/known_hosts.target-only"
        let lines = try String(contentsOfFile: lab.knownHosts, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix(lab.bastionAddress + " ") }
        try (lines.joined(separator: "\n") + "\n").write(toFile: onlyTarget, atomically: true, encoding: .utf8)
        var bastion = lab.bastion
        bastion.knownHosts = onlyTarget
        do {
            let c = try await SSHConnection.connect(lab.target("target", lab.targetAddress, jump: [bastion]))
            await c.close()
            Issue.record("connected through a bastion with an unknown host key")
        } catch let e as SSHError {
            #expect(e.kind == .hostKeyUnknown, "\(e)")
            #expect(e.host == "target")
            #expect(e.message.contains("via jump host bastion (root@\(lab.bastionAddress):22)"), "\(e.message)")
            #expect(e.message.contains("not in \(onlyTarget)"), "\(e.message)")
        }
        #expect(await JumpHosts.activeSessions().isEmpty)
    }

    @Test func targetWithAnUnknownHostKeyIsRefusedOnItsOwn() async throws {
        let onlyBastion = lab.dir + "/known_hosts.bastion-only"
        let lines = try String(contentsOfFile: lab.knownHosts, encoding: .utf8).split(separator: "\n")
            .filter { $0.hasPrefix(lab.bastionAddress + " ") }
        try (lines.joined(separator: "\n") + "\n").write(toFile: onlyBastion, atomically: true, encoding: .utf8)
        do {
            let c = try await SSHConnection.connect(lab.target("target", lab.targetAddress, knownHosts: onlyBastion,
                                                               jump: [lab.bastion]))
            await c.close()
            Issue.record("connected to a target with an unknown host key")
        } catch let e as SSHError {
            #expect(e.kind == .hostKeyUnknown, "\(e)")
            #expect(!e.message.contains("via jump host"), "\(e.message)")
        }
        #expect(await eventually { await JumpHosts.activeSessions().isEmpty })
    }

    @Test func twoTargetsBehindOneBastionShareOneSession() async throws {
        let key = "root@\(lab.bastionAddress):22"
        let t1 = lab.target("t1", lab.targetAddress, jump: [lab.bastion])
        let t2 = lab.target("t2", lab.targetAddress, port: 2200, jump: [lab.bastion])
        async let first = SSHConnection.connect(t1)
        async let second = SSHConnection.connect(t2)
        let (a, b) = try await (first, second)
        #expect(await JumpHosts.activeSessions() == [key: 2])
        // The bastion's sshd serves exactly one session (its listener plus one session process pair at most).
        async let ra = a.run("echo a")
        async let rb = b.run("echo b")
        let (outA, outB) = try await (ra, rb)
        #expect(outA.stdoutText == "a\n")
        #expect(outB.stdoutText == "b\n")
        await a.close()
        #expect(await JumpHosts.activeSessions() == [key: 1])
        #expect(try await b.run("echo still").stdoutText == "still\n")
        await b.close()
        #expect(await eventually { await JumpHosts.activeSessions().isEmpty })
    }

    @Test func chainOfTwoHopsReachesAnAddressOnlyTheSecondHopSees() async throws {
        // 127.0.0.1:2201 inside the target namespace: hop 2 (the target's sshd on :22) is reached through hop 1.
        let hop2 = lab.target("inner", lab.targetAddress)
        let c = try await SSHConnection.connect(lab.target("deep", "127.0.0.1", port: 2201, jump: [lab.bastion, hop2]))
        let out = try await c.run("echo $SSH_CONNECTION")
        #expect(out.stdoutText.hasPrefix("127.0.0.1 "), "\(out.stdoutText)")
        let sessions = await JumpHosts.activeSessions()
        #expect(sessions == ["root@\(lab.bastionAddress):22": 1, "root@\(lab.bastionAddress):22,root@\(lab.targetAddress):22": 1])
        await c.close()
        #expect(await eventually { await JumpHosts.activeSessions().isEmpty })
    }

    @Test func frozenBastionIsDetectedEndToEnd() async throws {
        let c = try await SSHConnection.connect(lab.target("target", lab.targetAddress, keepalive: 1, jump: [lab.bastion]))
        #expect(try await c.run("echo up").stdoutText == "up\n")
        lab.signal(lab.bastionNS, SIGSTOP)
        defer { lab.signal(lab.bastionNS, SIGCONT) }
        let start = Date()
        do {
            _ = try await c.run("sleep 30")
            Issue.record("a command finished through a frozen bastion")
        } catch let e as SSHError {
            #expect(e.kind == .hostLost, "\(e)")
        }
        #expect(Date().timeIntervalSince(start) < 10)
        await c.close()
    }

    @Test func coordinatorBuildsThroughTheBastionOnAHostItCannotReachDirectly() async throws {
        let lab = try JumpLab()
        defer { lab.stop() }
        let ctx = lab.dir + "/ctx"
        try FileManager.default.createDirectory(atPath: ctx, withIntermediateDirectories: true)
        try "FROM scratch\nCOPY f /f\n".write(toFile: ctx + "/Dockerfile", atomically: true, encoding: .utf8)
        try "behind the bastion\n".write(toFile: ctx + "/f", atomically: true, encoding: .utf8)
        let inventory: [String: Any] = [
            "defaults": ["user": "root", "identityFile": lab.clientKey, "knownHosts": lab.knownHosts, "engine": "buildah",
                         "workDir": lab.dir + "/target/work", "sshConfig": lab.dir + "/no-ssh-config"],
            "hosts": [["name": "hidden", "address": lab.targetAddress, "platforms": ["linux/amd64"], "jump": "root@" + lab.bastionAddress]],
        ]
        FileManager.default.createFile(atPath: lab.dir + "/no-ssh-config", contents: Data())
        try JSONSerialization.data(withJSONObject: inventory).write(to: URL(fileURLWithPath: lab.dir + "/inventory.json"))
        let layout = lab.dir + "/layout"
        var env = ProcessInfo.processInfo.environment
        env["COORDINATOR_STATE_DIR"] = lab.dir + "/state"
        let r = try runLocal([try coordinatorBinary(), "build", "--hosts", lab.dir + "/inventory.json", "--output", "oci:\(layout)",
                              "-t", "example.com/team/hidden:1", "--progress", "plain", ctx], env: env, timeout: 180)
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        let raw = try runLocal(["skopeo", "inspect", "--raw", "oci:\(layout):1"])
        #expect(raw.status == 0, "\(raw.stderr)")
        let index = try JSONSerialization.jsonObject(with: Data(raw.stdout.utf8)) as? [String: Any]
        let platforms = (index?["manifests"] as? [[String: Any]])?.compactMap { ($0["platform"] as? [String: Any])?["architecture"] as? String }
        #expect(platforms == ["amd64"], "\(raw.stdout)")
    }

    @Test func unreachableTargetBehindTheBastionNamesIt() async throws {
        do {
            let c = try await SSHConnection.connect(lab.target("nowhere", "10.201.\(lab.x).6", port: 2999, jump: [lab.bastion]))
            await c.close()
            Issue.record("connected to a closed port")
        } catch let e as SSHError {
            #expect(e.kind == .unreachable, "\(e)")
            #expect(e.message.contains("cannot reach 10.201.\(lab.x).6:2999"), "\(e.message)")
        }
    }
}

func sha256Hex(_ data: Data) -> String {
    let dir = NSTemporaryDirectory() + "sha-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: dir, contents: data)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return (try? runLocal(["sha256sum", dir]))?.stdout.split(separator: " ").first.map(String.init) ?? ""
}

/// The lab could not be set up (a test fails, never skips).
struct JumpLabError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
