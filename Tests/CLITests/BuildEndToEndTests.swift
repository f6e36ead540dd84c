import Foundation
import Support
import TestHarness
import Testing

/// One registry (and busybox base image) for every build test of the process; each test uses its own repository.
let sharedRegistry: Result<(RegistryServer, String), Error> = Result {
    let server = try RegistryServer()
    return (server, try BuildHarness.pushBusyboxBase(to: server.host))
}

/// `coordinator build` end to end: real sshd hosts (one simulating Arm), buildah on them, the real registry,
/// skopeo reading back what was pushed.
@Suite(.serialized) final class BuildEndToEndTests {
    let fleet: TestFleet
    let registry: String
    let base: String
    let repo: String

    init() throws {
        let (server, base) = try sharedRegistry.get()
        registry = server.host
        self.base = base
        repo = "\(server.host)/e2e/app-\(UUID().uuidString.lowercased().prefix(8))"
        fleet = try TestFleet.start(count: 3, archs: ["x86_64", "aarch64", "aarch64"])
    }

    deinit { fleet.stop() }

    // MARK: helpers

    func context(_ dockerfile: String, files: [String: String] = [:]) throws -> String {
        let dir = fleet.dir + "/ctx-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try dockerfile.replacingOccurrences(of: "BASE", with: base).write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
        for (name, body) in files {
            let path = dir + "/" + name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try body.write(toFile: path, atomically: true, encoding: .utf8)
        }
        return dir
    }

    @discardableResult
    func coordinator(_ args: [String], timeout: Double = 240) throws -> (status: Int32, stdout: String, stderr: String) {
        var env = ProcessInfo.processInfo.environment
        env["COORDINATOR_STATE_DIR"] = fleet.dir + "/state"
        env["DOCKER_CONFIG"] = fleet.dir + "/docker-config"
        return try runLocal([try coordinatorBinary()] + args, env: env, timeout: timeout)
    }

    func build(_ ctx: String, tags: [String] = ["1.0"], extra: [String] = []) throws -> (status: Int32, report: [String: Any], stderr: String) {
        let meta = fleet.dir + "/meta-\(UUID().uuidString.prefix(8)).json"
        var args = ["build", "--hosts", fleet.inventoryPath, "--metadata-file", meta, "--progress", "plain"]
        for t in tags { args += ["-t", "\(repo):\(t)"] }
        let r = try coordinator(args + extra + [ctx])
        let report = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: meta)))) as? [String: Any] ?? [:]
        return (r.status, report, r.stderr)
    }

    func skopeo(_ args: [String]) throws -> String {
        let r = try runLocal(["skopeo"] + args, timeout: 60)
        guard r.status == 0 else { throw RegistryHarnessError("skopeo \(args.joined(separator: " ")): \(r.stderr)") }
        return r.stdout
    }

    func rawIndex(_ tag: String) throws -> (json: [String: Any], digest: String) {
        let raw = try skopeo(["inspect", "--tls-verify=false", "--raw", "docker://\(repo):\(tag)"])
        let json = try JSONSerialization.jsonObject(with: Data(raw.utf8)) as! [String: Any]
        // The digest an independent reader sees: SHA-256 of the exact bytes skopeo fetched.
        return (json, "sha256:" + Hashing.sha256Hex(Data(raw.utf8)))
    }

    func platforms(of index: [String: Any]) -> [String] {
        ((index["manifests"] as? [[String: Any]]) ?? []).compactMap { m in
            (m["platform"] as? [String: Any]).map { "\($0["os"]!)/\($0["architecture"]!)" }
        }.sorted()
    }

    func configArch(_ tag: String, arch: String) throws -> String {
        let cfg = try skopeo(["inspect", "--tls-verify=false", "--override-arch", arch, "--config", "docker://\(repo):\(tag)"])
        return (try JSONSerialization.jsonObject(with: Data(cfg.utf8)) as! [String: Any])["architecture"] as! String
    }

    /// Starts the coordinator without waiting for it (for signal and kill tests).
    func startInBackground(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try coordinatorBinary())
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["COORDINATOR_STATE_DIR"] = fleet.dir + "/state"
        env["DOCKER_CONFIG"] = fleet.dir + "/docker-config"
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Waits (≤ 30 s) until a process whose command line is `pattern` runs on this machine (the fleet's hosts).
    func waitForRemote(_ pattern: String) async throws -> Bool {
        for _ in 0..<300 {
            if try runLocal(["pgrep", "-f", pattern]).status == 0 { return true }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        return false
    }

    func section(_ report: [String: Any]) -> [String: Any] { report["coordinator"] as? [String: Any] ?? [:] }
    func platformResults(_ report: [String: Any]) -> [[String: Any]] { section(report)["platforms"] as? [[String: Any]] ?? [] }

    func remoteLeftovers() -> [String] {
        fleet.hosts.flatMap { h -> [String] in
            let runs = h.workDir + "/runs"
            return ((try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []).map { runs + "/" + $0 }
        }
    }

    // MARK: tests

    @Test func twoPlatformsPublishOneIndexUnderEveryTagReadBackBySkopeo() throws {
        let ctx = try context("FROM scratch\nCOPY hello.txt /hello.txt\n", files: ["hello.txt": "hi\n"])
        let r = try build(ctx, tags: ["1.0", "stable"])
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        let (index, digest) = try rawIndex("1.0")
        #expect(platforms(of: index) == ["linux/amd64", "linux/arm64"])
        #expect(try rawIndex("stable").digest == digest)
        #expect(r.report["containerimage.digest"] as? String == digest)
        #expect(try configArch("1.0", arch: "arm64") == "arm64")
        #expect(try configArch("1.0", arch: "amd64") == "amd64")
        #expect((index["annotations"] as? [String: String])?["org.opencontainers.image.created"] != nil)
        #expect(remoteLeftovers().isEmpty)
        // Rebuild with nothing changed: no context byte sent to any host.
        let again = try build(ctx, tags: ["1.0"])
        #expect(again.status == 0)
        #expect(platformResults(again.report).map { $0["contextBytesSent"] as? Int } == [0, 0])
    }

    @Test func platformSubsetBuildsOnlyThatPlatform() throws {
        let ctx = try context("FROM scratch\nCOPY a /a\n", files: ["a": "a"])
        let r = try build(ctx, extra: ["--platform", "arm64"])
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        #expect(platforms(of: try rawIndex("1.0").json) == ["linux/arm64"])
    }

    @Test func hostKilledMidBuildIsRebuiltOnTheOtherHostOfThatArch() async throws {
        // Only the arm64 build sleeps 9 s, so its `sleep 9` tells us h2 (the first arm64 host) is mid-build.
        let ctx = try context("FROM BASE\nARG TARGETARCH\nRUN if [ \"$TARGETARCH\" = arm64 ]; then sleep 9; fi\nRUN echo done > /done\n")
        let h2 = fleet.hosts[1]
        let fleet = self.fleet
        let killer = Task.detached {
            for _ in 0..<600 {
                if let r = try? runLocal(["pgrep", "-f", "^sleep 9$"]), r.status == 0 {
                    try? fleet.kill(h2)
                    return true
                }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
            return false
        }
        let r = try build(ctx)
        #expect(await killer.value)
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        let arm = platformResults(r.report).first { $0["platform"] as? String == "linux/arm64" }
        #expect(arm?["host"] as? String == "h3")
        #expect(arm?["attempts"] as? Int == 2)
        #expect(platforms(of: try rawIndex("1.0").json) == ["linux/amd64", "linux/arm64"])
    }

    @Test func everyHostOfAnArchDownLeavesTheTagOnItsOldDigestExit4() throws {
        let ctx = try context("FROM scratch\nCOPY v /v\n", files: ["v": "1"])
        #expect(try build(ctx).status == 0)
        let before = try rawIndex("1.0").digest
        try "2".write(toFile: ctx + "/v", atomically: true, encoding: .utf8)
        try fleet.kill(fleet.hosts[1])
        try fleet.kill(fleet.hosts[2])
        let r = try build(ctx)
        #expect(r.status == 4, "\(diagnosis(r.stderr))")
        #expect(try rawIndex("1.0").digest == before)
        #expect(section(r.report)["missingPlatforms"] as? [String] == ["linux/arm64"])
    }

    @Test func allowPartialPublishesWhatSucceededAndRecordsTheMissingPlatformExit3() throws {
        try fleet.kill(fleet.hosts[1])
        try fleet.kill(fleet.hosts[2])
        let ctx = try context("FROM scratch\nCOPY v /v\n", files: ["v": "p"])
        let r = try build(ctx, extra: ["--allow-partial"])
        #expect(r.status == 3, "\(diagnosis(r.stderr))")
        let (index, _) = try rawIndex("1.0")
        #expect(platforms(of: index) == ["linux/amd64"])
        #expect((index["annotations"] as? [String: String])?["dev.coordinator.missing-platforms"] == "linux/arm64")
        #expect(section(r.report)["missingPlatforms"] as? [String] == ["linux/arm64"])
        #expect(section(r.report)["exitCode"] as? Int == 3)
    }

    @Test func dockerfileErrorExits1AndIsTriedOnlyOnce() throws {
        let ctx = try context("FROM BASE\nRUN exit 3\n")
        let r = try build(ctx, extra: ["--platform", "linux/arm64"])
        #expect(r.status == 1, "\(diagnosis(r.stderr))")
        let arm = platformResults(r.report).first
        #expect(arm?["attempts"] as? Int == 1)
        #expect(arm?["status"] as? String == "build-failed")
        #expect(r.stderr.contains("RUN exit 3"))
        #expect(throws: (any Error).self) { try self.rawIndex("1.0") }
    }

    @Test func hostileBuildArgAndLabelArriveLiterallyAndNothingRuns() throws {
        let marker = fleet.dir + "/pwned-\(UUID().uuidString.prefix(6))"
        let hostile = "$(touch \(marker)) \"q\" 'x' ;|&"
        let ctx = try context("FROM scratch\nARG HOSTILE\nLABEL test.arg=\"$HOSTILE\"\nCOPY f /f\n", files: ["f": "f"])
        let r = try build(ctx, extra: ["--build-arg", "HOSTILE=\(hostile)", "--label", "test.label=\(hostile)", "--platform", "linux/amd64"])
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        let cfg = try skopeo(["inspect", "--tls-verify=false", "--override-arch", "amd64", "--config", "docker://\(repo):1.0"])
        let labels = ((try JSONSerialization.jsonObject(with: Data(cfg.utf8)) as! [String: Any])["config"] as? [String: Any])?["Labels"] as? [String: String]
        #expect(labels?["test.arg"] == hostile)
        #expect(labels?["test.label"] == hostile)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func symlinkInTheContextArrivesAsALink() throws {
        let ctx = try context("FROM scratch\nCOPY . /ctx/\n", files: ["real.txt": "r"])
        try FileManager.default.createSymbolicLink(atPath: ctx + "/passwd", withDestinationPath: "/etc/passwd")
        let r = try build(ctx, extra: ["--platform", "linux/amd64"])
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        let trees = fleet.hosts[0].workDir + "/cache/contexts"
        let tree = try FileManager.default.contentsOfDirectory(atPath: trees).first.map { trees + "/" + $0 }
        #expect(tree != nil)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree! + "/passwd") == "/etc/passwd")
    }

    @Test func sigtermMidBuildKillsRemoteBuildsAndLeavesNoRunFolderOrAuthFile() async throws {
        // Forwarded credentials make the coordinator place an auth file in each run folder.
        try FileManager.default.createDirectory(atPath: fleet.dir + "/docker-config", withIntermediateDirectories: true)
        try #"{"auths":{"\#(registry)":{"auth":"\#(Data("user:pass".utf8).base64EncodedString())"}}}"#
            .write(toFile: fleet.dir + "/docker-config/config.json", atomically: true, encoding: .utf8)
        let ctx = try context("FROM BASE\nRUN sleep 37\n")
        let p = try startInBackground(["build", "--hosts", fleet.inventoryPath, "-t", "\(repo):1.0", "--progress", "plain", ctx])
        #expect(try await waitForRemote("sleep 37"))
        let authFiles = remoteLeftovers().filter { FileManager.default.fileExists(atPath: $0 + "/auth.json") }
        #expect(!authFiles.isEmpty, "no auth file was forwarded")
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationStatus == 143)
        var clean = false
        for _ in 0..<100 {
            if try runLocal(["pgrep", "-f", "sleep 37"]).status != 0, remoteLeftovers().isEmpty { clean = true; break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(clean, "left: \(remoteLeftovers())")
        #expect(throws: (any Error).self) { try self.rawIndex("1.0") }
    }

    @Test func killedCoordinatorLeavesNoBuildAndTheNextRunTakesTheLockAndSweepsItsFolder() async throws {
        let ctx = try context("FROM BASE\nRUN sleep 41\n")
        let lock = fleet.dir + "/nightly.lock"
        let p = try startInBackground(["build", "--hosts", fleet.inventoryPath, "-t", "\(repo):1.0", "--lock", lock, "--progress", "plain", ctx])
        #expect(try await waitForRemote("sleep 41"))
        // While it runs, a second run exits 5 at once, naming the holder.
        let second = try coordinator(["build", "--hosts", fleet.inventoryPath, "-t", "\(repo):1.0", "--lock", lock, ctx])
        #expect(second.status == 5)
        #expect(second.stderr.contains("\(p.processIdentifier)"))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        // The remote builds die with their connection (watchdog), leaving their folders behind…
        var gone = false
        for _ in 0..<100 {
            if try runLocal(["pgrep", "-f", "sleep 41"]).status != 0 { gone = true; break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(gone, "remote build still running after its coordinator was killed")
        #expect(!remoteLeftovers().isEmpty)
        // …which the next run (lock free again) sweeps on contact.
        let next = try build(try context("FROM scratch\nCOPY f /f\n", files: ["f": "n"]), extra: ["--lock", lock])
        #expect(next.status == 0, "\(diagnosis(next.stderr))")
        #expect(remoteLeftovers().isEmpty, "left: \(remoteLeftovers())")
    }

    @Test func mislabelledResultFromTheEngineIsRejectedNeverRelabelled() throws {
        // Named fault injection: a buildah shim on both arm64 hosts that builds for linux/amd64 whatever it is asked.
        let shim = "#!/bin/sh\nfor a do shift; case \"$a\" in linux/arm64) set -- \"$@\" linux/amd64 ;; *) set -- \"$@\" \"$a\" ;; esac; done\nexec /usr/bin/buildah \"$@\"\n"
        try fleet.installShim("buildah", on: fleet.hosts[1], script: shim)
        try fleet.installShim("buildah", on: fleet.hosts[2], script: shim)
        let ctx = try context("FROM scratch\nCOPY f /f\n", files: ["f": "m"])
        let r = try build(ctx)
        #expect(r.status == 4, "\(diagnosis(r.stderr))")
        let arm = platformResults(r.report).first { $0["platform"] as? String == "linux/arm64" }
        #expect((arm?["reason"] as? String)?.contains("never relabelled") == true)
        #expect(throws: (any Error).self) { try self.rawIndex("1.0") }
    }

    @Test func ociOutputWritesOneLayoutWithBothPlatforms() throws {
        let ctx = try context("FROM scratch\nCOPY f /f\n", files: ["f": "o"])
        let out = fleet.dir + "/layout"
        let r = try coordinator(["build", "--hosts", fleet.inventoryPath, "--output", "oci:\(out)", "-t", "\(repo):2.0", "--progress", "plain", ctx])
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        let raw = try skopeo(["inspect", "--raw", "oci:\(out):2.0"])
        #expect(platforms(of: try JSONSerialization.jsonObject(with: Data(raw.utf8)) as! [String: Any]) == ["linux/amd64", "linux/arm64"])
        let cfg = try skopeo(["inspect", "--override-arch", "arm64", "--config", "oci:\(out):2.0"])
        #expect((try JSONSerialization.jsonObject(with: Data(cfg.utf8)) as! [String: Any])["architecture"] as? String == "arm64")
        #expect(throws: (any Error).self) { try self.rawIndex("2.0") }
    }

    @Test func planPrintsHostsFallbacksAndQuotedCommandsAndTouchesNothing() throws {
        let ctx = try context("FROM scratch\nCOPY f /f\n", files: ["f": "p"])
        let r = try coordinator(["plan", "--hosts", fleet.inventoryPath, "-t", "\(repo):1.0", "--build-arg", "X=$(id)", ctx])
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        #expect(r.stdout.contains("linux/arm64: h2"))
        #expect(r.stdout.contains("fallbacks: h3"))
        #expect(r.stdout.contains("'X=$(id)'"))
        #expect(remoteLeftovers().isEmpty)
        #expect(throws: (any Error).self) { try self.rawIndex("1.0") }
    }
}
