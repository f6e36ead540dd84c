import Foundation
import Support
import TestHarness
import Testing

/// A registry that requires a login (htpasswd), holding the busybox base: only forwarded credentials reach it.
let privateRegistry: Result<(RegistryServer, String), Error> = Result {
    let server = try RegistryServer(auth: .htpasswd(user: "nightly", password: privateRegistryPassword))
    return (server, try BuildHarness.pushBusyboxBase(to: server.host, credentials: "nightly:" + privateRegistryPassword))
}
let privateRegistryPassword = "pw-\(UUID().uuidString.prefix(8))"

/// The same builds on every engine (issue 6, item 1): each engine on its own 2-host fleet (x86_64 + simulated
/// aarch64), the shared registry, skopeo reading back. Missing engines or daemons fail the test, never skip it.
@Suite(.serialized) struct EngineEndToEndTests {
    /// One fleet of one engine, and what a test asks of it.
    final class EngineRun {
        let engine: String
        let fleet: TestFleet
        let base: String
        let repo: String

        init(_ engine: String) throws {
            let (server, base) = try sharedRegistry.get()
            self.engine = engine
            self.base = base
            repo = "\(server.host)/engines/\(engine)-\(UUID().uuidString.lowercased().prefix(8))"
            fleet = try TestFleet.start(count: 2, archs: ["x86_64", "aarch64"], engine: engine)
        }

        deinit { fleet.stop() }

        func context(_ dockerfile: String, files: [String: String]) throws -> String {
            let dir = fleet.dir + "/ctx-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try dockerfile.replacingOccurrences(of: "BASE", with: base).write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
            for (name, body) in files { try body.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
            return dir
        }

        func coordinator(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            var env = ProcessInfo.processInfo.environment
            env["COORDINATOR_STATE_DIR"] = fleet.dir + "/state"
            env["DOCKER_CONFIG"] = fleet.dir + "/docker-config"
            return try runLocal([try coordinatorBinary()] + args, env: env, timeout: 180)
        }

        /// Builds `ctx` for both platforms under every tag; returns the exit status, the report's index digest and stderr.
        func build(_ ctx: String, tags: [String]) throws -> (status: Int32, digest: String?, stderr: String) {
            let meta = fleet.dir + "/meta-\(UUID().uuidString.prefix(8)).json"
            let r = try coordinator(["build", "--hosts", fleet.inventoryPath, "--metadata-file", meta, "--progress", "plain"]
                + tags.flatMap { ["-t", "\(repo):\($0)"] } + [ctx])
            let report = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: meta)))) as? [String: Any]
            return (r.status, report?["containerimage.digest"] as? String, r.stderr)
        }

        func skopeo(_ args: [String]) throws -> String {
            let r = try runLocal(["skopeo"] + args, timeout: 60)
            guard r.status == 0 else { throw RegistryHarnessError("skopeo \(args.joined(separator: " ")): \(r.stderr)") }
            return r.stdout
        }

        /// The JSON, the SHA-256 and the size of the exact bytes the registry serves for `tag` or `@digest`.
        func raw(_ reference: String) throws -> (json: [String: Any], digest: String, size: Int) {
            let separator = reference.hasPrefix("sha256:") ? "@" : ":"
            let bytes = Data(try skopeo(["inspect", "--tls-verify=false", "--raw", "docker://\(repo)\(separator)\(reference)"]).utf8)
            return (try JSONSerialization.jsonObject(with: bytes) as! [String: Any], "sha256:" + Hashing.sha256Hex(bytes), bytes.count)
        }

        func config(_ childDigest: String) throws -> [String: Any] {
            let text = try skopeo(["inspect", "--tls-verify=false", "--config", "docker://\(repo)@\(childDigest)"])
            return try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        }

        /// Checks the index semantics every engine must give: both platforms, each child served by the registry
        /// under exactly its index digest with a config of its platform, every tag on the index digest.
        func expectIndex(tags: [String], reportDigest: String?, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let (index, digest, _) = try raw(tags[0])
            #expect(reportDigest == digest, sourceLocation: sourceLocation)
            for tag in tags.dropFirst() { #expect(try raw(tag).digest == digest, "tag \(tag)", sourceLocation: sourceLocation) }
            let children = (index["manifests"] as? [[String: Any]]) ?? []
            var seen: [String] = []
            for child in children {
                let platform = child["platform"] as? [String: Any] ?? [:]
                let (os, arch) = (platform["os"] as? String ?? "?", platform["architecture"] as? String ?? "?")
                seen.append("\(os)/\(arch)")
                let childDigest = child["digest"] as? String ?? "?"
                let served = try raw(childDigest)
                #expect(served.digest == childDigest, "\(engine) \(os)/\(arch): registry serves other bytes", sourceLocation: sourceLocation)
                #expect(child["size"] as? Int == served.size, sourceLocation: sourceLocation)
                let cfg = try config(childDigest)
                #expect(cfg["architecture"] as? String == arch, "\(engine) \(os)/\(arch) config", sourceLocation: sourceLocation)
                #expect(cfg["os"] as? String == os, sourceLocation: sourceLocation)
                #expect(cfg["variant"] == nil, "\(engine) \(os)/\(arch) has a variant", sourceLocation: sourceLocation)
            }
            #expect(seen.sorted() == ["linux/amd64", "linux/arm64"], "\(engine)", sourceLocation: sourceLocation)
        }

        /// `FROM scratch` + `COPY` under two tags, then the busybox base + `RUN` (pulled from the loopback registry).
        func buildBoth() throws {
            let scratch = try context("FROM scratch\nCOPY hello.txt /hello.txt\n", files: ["hello.txt": "hello \(engine)\n"])
            let r1 = try build(scratch, tags: ["1.0", "stable"])
            #expect(r1.status == 0, "\(engine): \(r1.stderr)")
            try expectIndex(tags: ["1.0", "stable"], reportDigest: r1.digest)

            let run = try context("FROM BASE\nRUN echo built-by-\(engine) > /engine.txt\nCOPY f /f\n", files: ["f": "f"])
            let r2 = try build(run, tags: ["run"])
            #expect(r2.status == 0, "\(engine): \(r2.stderr)")
            try expectIndex(tags: ["run"], reportDigest: r2.digest)
            // The RUN step ran on each host: the history of each child's config names its command.
            let (index, _, _) = try raw("run")
            for child in (index["manifests"] as? [[String: Any]]) ?? [] {
                let history = (try config(child["digest"] as! String)["history"] as? [[String: Any]]) ?? []
                #expect(history.contains { ($0["created_by"] as? String)?.contains("built-by-\(engine)") == true }, "\(engine)")
            }

            // A Dockerfile error is the Dockerfile's (exit 1, tried once), on every engine; the tag is not created.
            let bad = try context("FROM BASE\nRUN exit 3\n", files: [:])
            let r3 = try build(bad, tags: ["bad"])
            #expect(r3.status == 1, "\(engine): \(r3.stderr)")
            #expect(r3.stderr.contains("RUN exit 3"), "\(engine): \(r3.stderr)")
            #expect(throws: (any Error).self) { try self.raw("bad") }
        }

        /// `credentials: forward` (the default) on a private registry: the base image is pulled and the result
        /// pushed with the credential from the coordinator's docker config only (the hosts have no login).
        /// With `pushToShared`, the tags go to the shared registry (which accepts any login): the base's registry
        /// is then known only from the Dockerfile's `FROM`, and its credential travels in the same auth file.
        func buildFromAPrivateBaseWithForwardedCredentials(pushToShared: Bool = false) throws {
            let (server, privateBase) = try privateRegistry.get()
            let login = "nightly:" + privateRegistryPassword
            let shared = try sharedRegistry.get().0.host
            var auths = [server.host: ["auth": Data(login.utf8).base64EncodedString()]]
            if pushToShared { auths[shared] = ["auth": Data("anyone:anything".utf8).base64EncodedString()] }
            try FileManager.default.createDirectory(atPath: fleet.dir + "/docker-config", withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: ["auths": auths]).write(to: URL(fileURLWithPath: fleet.dir + "/docker-config/config.json"))
            let ctx = try context("FROM \(privateBase)\nRUN echo private-\(engine) > /p.txt\n", files: [:])
            let pushTo = pushToShared ? shared : server.host
            let target = "\(pushTo)/private/\(engine)-\(UUID().uuidString.lowercased().prefix(8))"
            let meta = fleet.dir + "/meta-private.json"
            let r = try coordinator(["build", "--hosts", fleet.inventoryPath, "--metadata-file", meta, "--progress", "plain",
                                     "-t", target + ":1", ctx])
            #expect(r.status == 0, "\(engine): \(diagnosis(r.stderr))")
            #expect(!r.stderr.contains(privateRegistryPassword), "\(engine): the password reached the log")
            let raw = try runLocal(["skopeo", "inspect", "--tls-verify=false", "--creds", login, "--raw", "docker://\(target):1"], timeout: 60)
            #expect(raw.status == 0, "\(engine): \(raw.stderr)")
            let index = (try? JSONSerialization.jsonObject(with: Data(raw.stdout.utf8))) as? [String: Any]
            #expect((index?["manifests"] as? [Any])?.count == 2, "\(engine): \(raw.stdout)")
            // Without the credential the registry refuses: the build did need what was forwarded.
            let anonymous = try runLocal(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(pushToShared ? privateBase : target + ":1")"], timeout: 60)
            #expect(anonymous.status != 0)
        }

        func hostsCheck() throws -> [[String: Any]] {
            let r = try coordinator(["hosts", "check", "--hosts", fleet.inventoryPath, "--format", "json"])
            let json = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
            return json?["hosts"] as? [[String: Any]] ?? []
        }

        /// The dockerd pid of every host, from its pidfile.
        func dockerdPIDs() -> [Int32] {
            fleet.hosts.compactMap { h in
                (try? String(contentsOfFile: h.dir + "/docker/dockerd.pid", encoding: .utf8))
                    .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
        }

        /// `docker ps -a` (container ids) of each host's daemon.
        func dockerContainers() throws -> [String] {
            try fleet.hosts.flatMap { h -> [String] in
                let env = try String(contentsOfFile: h.dir + "/docker.env", encoding: .utf8)
                let sock = try #require(env.split(separator: "\n").first { $0.hasPrefix("DOCKER_SOCK=") }?
                    .dropFirst("DOCKER_SOCK=".count).trimmingCharacters(in: CharacterSet(charactersIn: "'")))
                let r = try runLocal(["docker", "-H", "unix://" + sock, "ps", "-aq"], timeout: 30)
                #expect(r.status == 0, "\(diagnosis(r.stderr))")
                return r.stdout.split(separator: "\n").map(String.init)
            }
        }

        /// Mount points the fleet's daemons left under the fleet folder.
        func mountsLeft() -> [String] {
            let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            return info.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ")
                return fields.count > 4 && fields[4].hasPrefix(fleet.dir + "/") ? String(fields[4]) : nil
            }
        }
    }

    @Test func buildahBuildsScratchAndRunImagesIntoOneIndex() throws {
        let run = try EngineRun("buildah")
        #expect(try run.hostsCheck().map { $0["status"] as? String } == ["ok", "ok"])
        try run.buildBoth()
        // First, while the hosts do not hold the private base yet.
        try run.buildFromAPrivateBaseWithForwardedCredentials(pushToShared: true)
        try run.buildFromAPrivateBaseWithForwardedCredentials()
    }

    @Test func podmanBuildsScratchAndRunImagesIntoOneIndex() throws {
        let run = try EngineRun("podman")
        let check = try run.hostsCheck()
        #expect(check.map { $0["status"] as? String } == ["ok", "ok"], "\(check)")
        #expect(check.allSatisfy { ($0["engineVersion"] as? String)?.hasPrefix("podman version") == true })
        try run.buildBoth()
        try run.buildFromAPrivateBaseWithForwardedCredentials()
    }

    @Test func dockerClassicBuildsScratchAndRunImagesIntoOneIndexAndStopsItsDaemonsByPID() throws {
        let run = try EngineRun("docker")
        let pids = run.dockerdPIDs()
        #expect(pids.count == 2 && pids.allSatisfy(processIsRunning), "one dockerd per host: \(pids)")
        let check = try run.hostsCheck()
        #expect(check.map { $0["status"] as? String } == ["ok", "ok"], "\(check)")
        // No buildx plugin is packaged here: the classic builder is what a build will use.
        #expect(check.map { $0["engineMode"] as? String } == ["classic", "classic"])
        #expect(check.allSatisfy { ($0["engineVersion"] as? String)?.hasPrefix("docker ") == true })
        try run.buildBoth()
        try run.buildFromAPrivateBaseWithForwardedCredentials()
        #expect(try run.dockerContainers().isEmpty, "containers left behind (classic builder without --force-rm?)")
        run.fleet.stop()
        #expect(!pids.contains(where: processIsRunning), "dockerd left running")
        #expect(run.mountsLeft().isEmpty, "\(run.mountsLeft())")
    }

    @Test func dockerHostWhoseDaemonIsDownIsRefusedAndComesBackWithRestart() throws {
        let run = try EngineRun("docker")
        let h2 = run.fleet.hosts[1]
        let pid = try #require(run.dockerdPIDs().last)
        try run.fleet.kill(h2)
        #expect(!processIsRunning(pid))
        try run.fleet.restart(h2)
        let fresh = try #require(run.dockerdPIDs().last)
        #expect(fresh != pid && processIsRunning(fresh))
        // Now stop only the daemon: sshd answers, the engine does not.
        #expect(kill(fresh, SIGTERM) == 0)
        for _ in 0..<150 where processIsRunning(fresh) { usleep(100_000) }
        let check = try run.hostsCheck()
        #expect(check.map { $0["status"] as? String } == ["ok", "no-engine"], "\(check)")
        #expect((check.last?["reason"] as? String)?.contains("Cannot connect to the Docker daemon") == true, "\(check)")
    }
}
