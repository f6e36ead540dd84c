import Foundation
import Support
import TestHarness
import Testing
@testable import SSH

/// The faults the SSH layer owns, each against real sshd hosts of a test fleet.
@Suite(.serialized) final class SSHFleetTests {
    let fleet: TestFleet

    init() throws { fleet = try TestFleet.start(count: 3, archs: ["x86_64", "aarch64", "x86_64"]) }
    deinit { fleet.stop() }

    func target(_ host: TestHost, knownHosts: String? = nil, policy: SSHTarget.HostKeyPolicy = .strict,
                identity: String? = nil, connectTimeout: Double = 5, keepalive: Double = 5) -> SSHTarget {
        SSHTarget(name: host.name, address: host.address, port: host.port, user: "root",
                  identityFile: identity ?? fleet.clientKey, knownHosts: knownHosts ?? fleet.knownHosts,
                  hostKeyPolicy: policy, connectTimeout: connectTimeout, keepaliveInterval: keepalive, keepaliveCountMax: 3)
    }

    func tempFile(_ contents: String) throws -> String {
        let path = fleet.dir + "/tmp-\(UUID().uuidString)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func hostKeyLine(_ host: TestHost, type: String = "ssh-ed25519") throws -> String {
        let all = try String(contentsOfFile: fleet.knownHosts, encoding: .utf8).split(separator: "\n")
        return String(all.first { $0.hasPrefix("[\(host.address)]:\(host.port) \(type) ") }!)
    }

    func expectSSHError(_ kind: SSHError.Kind, _ body: () async throws -> Void) async -> SSHError? {
        do {
            try await body()
            Issue.record("expected \(kind), got success")
        } catch let e as SSHError {
            #expect(e.kind == kind, "\(e)")
            return e
        } catch {
            Issue.record("expected SSHError \(kind), got \(error)")
        }
        return nil
    }

    @Test func connectsAuthenticatesAndRunsACommand() async throws {
        let c = try await SSHConnection.connect(target(fleet.hosts[1]))
        let out = try await c.run("uname -m; echo oops >&2; exit 7")
        #expect(out.stdoutText == "aarch64\n")
        #expect(out.stderrText == "oops\n")
        #expect(out.status == ExecStatus(exitStatus: 7, signal: nil))
        #expect(c.hostKeyFingerprint.hasPrefix("SHA256:"))
        await c.close()
    }

    @Test func unknownHostKeyIsRefusedUnderYesAndKnownHostsUntouched() async throws {
        let empty = try tempFile("")
        let err = await expectSSHError(.hostKeyUnknown) { _ = try await SSHConnection.connect(self.target(self.fleet.hosts[0], knownHosts: empty)) }
        #expect(err?.message.contains("SHA256:") == true)
        #expect(try String(contentsOfFile: empty, encoding: .utf8) == "")
    }

    @Test func acceptNewRecordsTheKeyThenRefusesAChangedOne() async throws {
        let file = try tempFile("")
        let h = fleet.hosts[0]
        let c = try await SSHConnection.connect(target(h, knownHosts: file, policy: .acceptNew))
        await c.close()
        let recorded = try String(contentsOfFile: file, encoding: .utf8)
        #expect(recorded.hasPrefix("[\(h.address)]:\(h.port) \(c.hostKeyType) "))
        // Recorded key now works under strict checking.
        let again = try await SSHConnection.connect(target(h, knownHosts: file, policy: .strict))
        await again.close()
        // The same name with another host's key = a changed key: refused even under accept-new.
        let other = try hostKeyLine(fleet.hosts[2]).split(separator: " ")
        let forged = try tempFile("[\(h.address)]:\(h.port) \(other[1]) \(other[2])\n")
        let err = await expectSSHError(.hostKeyChanged) { _ = try await SSHConnection.connect(self.target(h, knownHosts: forged, policy: .acceptNew)) }
        // The error shows the fingerprint the host presented (its real ed25519 key, the type known_hosts names).
        let real = try hostKeyLine(h).split(separator: " ")
        #expect(err?.message.contains(sshFingerprint([UInt8](Data(base64Encoded: String(real[2]))!))) == true)
        #expect(try String(contentsOfFile: forged, encoding: .utf8).split(separator: "\n").count == 1)
    }

    @Test func revokedKeyIsRefused() async throws {
        let h = fleet.hosts[0]
        let line = try hostKeyLine(h).split(separator: " ")
        let file = try tempFile(try String(contentsOfFile: fleet.knownHosts, encoding: .utf8) + "@revoked * \(line[1]) \(line[2])\n")
        _ = await expectSSHError(.hostKeyRevoked) { _ = try await SSHConnection.connect(self.target(h, knownHosts: file)) }
    }

    @Test func hashedKnownHostsEntryIsAccepted() async throws {
        let file = try tempFile(try String(contentsOfFile: fleet.knownHosts, encoding: .utf8))
        let r = try runLocal(["/usr/bin/ssh-keygen", "-H", "-f", file])
        #expect(r.status == 0)
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix("|1|"))
        let c = try await SSHConnection.connect(target(fleet.hosts[2], knownHosts: file))
        await c.close()
    }

    @Test func rsaKeyGetsTheLibssh2LimitExplained() async throws {
        let key = fleet.dir + "/rsa-\(UUID().uuidString)"
        #expect(try runLocal(["/usr/bin/ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", key]).status == 0)
        let h = fleet.hosts[0]
        try fleet.authorize(publicKey: try String(contentsOfFile: key + ".pub", encoding: .utf8), on: h)
        let err = await expectSSHError(.authFailed) { _ = try await SSHConnection.connect(self.target(h, identity: key)) }
        #expect(err?.message.contains("OpenSSH ≥ 8.8") == true)
        #expect(err?.message.contains("ed25519") == true)
    }

    @Test func refusedKeyShowsOfferedMethods() async throws {
        let key = fleet.dir + "/stranger-\(UUID().uuidString)"
        #expect(try runLocal(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key]).status == 0)
        let err = await expectSSHError(.authFailed) { _ = try await SSHConnection.connect(self.target(self.fleet.hosts[0], identity: key)) }
        #expect(err?.message.contains("server offers: publickey") == true)
    }

    @Test func hostDownIsReportedWithinConnectTimeout() async throws {
        let h = fleet.hosts[2]
        try fleet.kill(h)
        defer { try? fleet.restart(h) }
        let start = Date()
        _ = await expectSSHError(.unreachable) { _ = try await SSHConnection.connect(self.target(h, connectTimeout: 3)) }
        // Refused at once; the bound is connectTimeout plus slack for a loaded 2-core machine running every test.
        #expect(Date().timeIntervalSince(start) < 3 + 1.5)
    }

    @Test func frozenHostTimesOutTheHandshakeWithinConnectTimeout() async throws {
        let h = fleet.hosts[2]
        try fleet.freeze(h)
        defer { try? fleet.thaw(h) }
        let start = Date()
        _ = await expectSSHError(.timeout) { _ = try await SSHConnection.connect(self.target(h, connectTimeout: 2)) }
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 1.9 && elapsed < 2 + 1.5, "took \(elapsed) s")
    }

    @Test func hostFrozenMidCommandIsDetectedWithinThreeKeepalives() async throws {
        let h = fleet.hosts[1]
        let c = try await SSHConnection.connect(target(h, keepalive: 1))
        let start = Date()
        let result = Task { try await c.run("sleep 60") }
        try await Task.sleep(nanoseconds: 500_000_000)
        try fleet.freeze(h)
        defer { try? fleet.thaw(h) }
        _ = await expectSSHError(.hostLost) { _ = try await result.value }
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 0.5 + 3 + 1.5, "took \(elapsed) s")
        await c.close()
    }

    @Test func cancelledRemoteCommandLeavesNoProcess() async throws {
        let c = try await SSHConnection.connect(target(fleet.hosts[0]))
        let marker = "600.\(Int.random(in: 100_000...999_999))"
        let task = Task { try await c.run("sleep \(marker)") }
        for _ in 0..<50 where try runLocal(["/usr/bin/pgrep", "-f", "^sleep \(marker)$"]).status != 0 {
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(try runLocal(["/usr/bin/pgrep", "-f", "^sleep \(marker)$"]).status == 0, "the remote sleep never started")
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        var gone = false
        for _ in 0..<50 {
            if try runLocal(["/usr/bin/pgrep", "-f", "^sleep \(marker)$"]).status != 0 { gone = true; break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(gone, "remote sleep still running 5 s after cancel")
        // The session stays usable after a cancelled command.
        #expect(try await c.run("echo still-here").stdoutText == "still-here\n")
        await c.close()
    }

    @Test func threeMegabytesOnEachStreamAtOnceArriveIntact() async throws {
        let c = try await SSHConnection.connect(target(fleet.hosts[0]))
        let script = "head -c 3145728 /dev/urandom > /tmp/.o$$; head -c 3145728 /dev/urandom > /tmp/.e$$; " +
            "sha256sum /tmp/.o$$ /tmp/.e$$ > /tmp/.s$$; (cat /tmp/.e$$ >&2 & cat /tmp/.o$$; wait); " +
            "cat /tmp/.s$$ >&2; rm -f /tmp/.o$$ /tmp/.e$$ /tmp/.s$$"
        let out = try await c.run(script)
        #expect(out.status.succeeded)
        #expect(out.stdout.count == 3_145_728)
        let sums = String(decoding: out.stderr.suffix(from: 3_145_728), as: UTF8.self).split(separator: "\n").map { String($0.prefix(64)) }
        #expect(sums.count == 2)
        #expect(Hashing.sha256Hex(out.stdout) == sums.first)
        #expect(Hashing.sha256Hex(out.stderr.prefix(3_145_728)) == sums.last)
        await c.close()
    }

    @Test func stdinIsStreamedInAndExitSignalReported() async throws {
        let c = try await SSHConnection.connect(target(fleet.hosts[0]))
        let payload = Data((0..<5_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let out = try await c.run("sha256sum", input: .data(payload))
        #expect(out.stdoutText.hasPrefix(Hashing.sha256Hex(payload)))
        let killed = try await c.runPlain("kill -KILL $$")
        #expect(killed.status.signal == "KILL")
        await c.close()
    }

    /// Bulk data both ways at once, with keepalives every second, stays byte-exact. (The half-sent-packet hazard
    /// this guards against is rare on loopback, so this is an integrity check, not a reproducer.)
    @Test func echoOf32MiBThroughCatIsByteExactBothWays() async throws {
        let c = try await SSHConnection.connect(target(fleet.hosts[0], keepalive: 1))
        var payload = Data(count: 32 << 20)
        payload.withUnsafeMutableBytes { raw in
            var x: UInt64 = 0x9E3779B97F4A7C15
            for i in 0..<raw.count { x ^= x << 13; x ^= x >> 7; x ^= x << 17; raw[i] = UInt8(truncatingIfNeeded: x) }
        }
        let out = try await c.run("cat", input: .data(payload))
        #expect(out.status.succeeded)
        #expect(out.stdout.count == payload.count)
        #expect(Hashing.sha256Hex(out.stdout) == Hashing.sha256Hex(payload))
        await c.close()
    }

    @Test func uploadOfATreeKeepsContentsModesAndSymlinks() async throws {
        let src = fleet.dir + "/up-src-\(UUID().uuidString)"
        let dst = fleet.dir + "/up-dst-\(UUID().uuidString)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: src + "/a/b", withIntermediateDirectories: true)
        try Data(repeating: 7, count: 300_000).write(to: URL(fileURLWithPath: src + "/a/b/blob"))
        try "#!/bin/sh\necho hi\n".write(toFile: src + "/run.sh", atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: src + "/run.sh")
        try fm.createSymbolicLink(atPath: src + "/passwd", withDestinationPath: "/etc/passwd")
        let c = try await SSHConnection.connect(target(fleet.hosts[0]))
        let seen = SentBox()
        for codec in [UploadCompression.none, .gzip, .zstd] {
            let stats = try await c.upload(directory: src, to: dst + "-\(codec.rawValue)", compression: codec, progress: { seen.set($0) })
            #expect(stats.compression == codec)
            let d = dst + "-\(codec.rawValue)"
            #expect(fm.contents(atPath: d + "/a/b/blob") == Data(repeating: 7, count: 300_000))
            #expect(try fm.destinationOfSymbolicLink(atPath: d + "/passwd") == "/etc/passwd")
            #expect((try fm.attributesOfItem(atPath: d + "/run.sh")[.posixPermissions] as? Int) == 0o755)
        }
        #expect(seen.value > 0)
        // A host whose tar is busybox's (no `-b`) unpacks the same stream with its own defaults.
        try fleet.installShim("tar", on: fleet.hosts[0], script: "#!/bin/sh\nexec /bin/busybox tar \"$@\"\n")
        defer { try? fm.removeItem(atPath: fleet.hosts[0].dir + "/bin/tar") }
        let d = dst + "-busybox"
        _ = try await c.upload(directory: src, to: d, compression: .zstd)
        #expect(fm.contents(atPath: d + "/a/b/blob") == Data(repeating: 7, count: 300_000))
        #expect(try fm.destinationOfSymbolicLink(atPath: d + "/passwd") == "/etc/passwd")
        #expect((try fm.attributesOfItem(atPath: d + "/run.sh")[.posixPermissions] as? Int) == 0o755)
        await c.close()
    }

    @Test(.timeLimit(.minutes(1))) func uploadWhoseRemoteUnpackFailsAtOnceEndsWithItsErrorNotAHang() async throws {
        // More than the pipes and the channel window hold, so the local tar is still writing when the host
        // gives up (it cannot create the folder).
        let src = fleet.dir + "/up-big-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        for i in 0..<4 {
            try Data((0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i &+ $0 >> 11) })
                .write(to: URL(fileURLWithPath: src + "/blob\(i)"))
        }
        let c = try await SSHConnection.connect(target(fleet.hosts[0]))
        for codec in [UploadCompression.none, .zstd] {
            do {
                _ = try await c.upload(directory: src, to: "/proc/coordinator-cannot-exist/dest", compression: codec, streams: 1)
                Issue.record("\(codec): the upload into /proc succeeded")
            } catch let e as SSHError {
                #expect(e.message.contains("coordinator-cannot-exist"), "\(codec): \(e)")
            }
        }
        await c.close()
    }

    @Test func twentyParallelSessionsOnOneHostAllSucceed() async throws {
        let h = fleet.hosts[0]
        let t = target(h)
        let results = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<20 {
                group.addTask {
                    let c = try await SSHConnection.connect(t)
                    defer { Task { await c.close() } }
                    return try await c.run("sleep 0.5; echo \(i)").stdoutText
                }
            }
            var all: [String] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(Set(results) == Set((0..<20).map { "\($0)\n" }))
    }
}

final class SentBox: @unchecked Sendable {
    private let lock = NSLock()
    private var v: Int64 = 0
    func set(_ n: Int64) { lock.lock(); v = max(v, n); lock.unlock() }
    var value: Int64 { lock.lock(); defer { lock.unlock() }; return v }
}
