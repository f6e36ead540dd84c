import Foundation
import Support
import TestHarness
import Testing

/// `coordinator build --plan`: many images as one queue over the fleet, with locks, metrics and run records.
@Suite(.serialized) final class NightlyPlanTests {
    let fleet: TestFleet
    let registry: String
    let base: String
    let prefix: String

    init() throws {
        let (server, base) = try sharedRegistry.get()
        registry = server.host
        self.base = base
        prefix = "\(server.host)/nightly-\(UUID().uuidString.lowercased().prefix(6))"
        fleet = try TestFleet.start(count: 4, archs: ["x86_64", "aarch64"])
    }

    deinit { fleet.stop() }

    /// The fleet's inventory with per-host maxJobs (h1, h2: 1; h3, h4: 2), and a concurrency recorder on every
    /// host: a buildah shim (named instrumentation) that logs start/end of each `bud` to a host-side file.
    func instrumentedInventory() throws -> String {
        var inv = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fleet.inventoryPath))) as! [String: Any]
        var hosts = inv["hosts"] as! [[String: Any]]
        for i in hosts.indices { hosts[i]["maxJobs"] = i < 2 ? 1 : 2 }
        inv["hosts"] = hosts
        let path = fleet.dir + "/inventory-maxjobs.json"
        try JSONSerialization.data(withJSONObject: inv).write(to: URL(fileURLWithPath: path))
        for h in fleet.hosts {
            try fleet.installShim("buildah", on: h, script: """
                #!/bin/sh
                [ "$1" = bud ] || exec /usr/bin/buildah "$@"
                echo "start $(date +%s.%N) $$" >> \(h.dir)/builds.log
                /usr/bin/buildah "$@"; rc=$?
                echo "end $(date +%s.%N) $$" >> \(h.dir)/builds.log
                exit $rc
                """)
        }
        return path
    }

    func maxConcurrency(_ host: TestHost) throws -> Int {
        let text = (try? String(contentsOfFile: host.dir + "/builds.log", encoding: .utf8)) ?? ""
        var events: [(Double, Int)] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let t = Double(f[1]) else { continue }
            events.append((t, f[0] == "start" ? 1 : -1))
        }
        var now = 0, peak = 0
        for e in events.sorted(by: { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }) { now += e.1; peak = max(peak, now) }
        return peak
    }

    func writePlan(_ images: [(name: String, dockerfile: String)]) throws -> String {
        var entries: [[String: Any]] = []
        for img in images {
            let dir = fleet.dir + "/plan-ctx/" + img.name
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try img.dockerfile.replacingOccurrences(of: "BASE", with: base).write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
            try img.name.write(toFile: dir + "/name.txt", atomically: true, encoding: .utf8)
            entries.append(["name": img.name, "context": "plan-ctx/" + img.name, "tags": ["\(prefix)/\(img.name):nightly"]])
        }
        let path = fleet.dir + "/plan.json"
        try JSONSerialization.data(withJSONObject: ["images": entries]).write(to: URL(fileURLWithPath: path))
        return path
    }

    func coordinator(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        var env = ProcessInfo.processInfo.environment
        env["COORDINATOR_STATE_DIR"] = fleet.dir + "/state"
        return try runLocal([try coordinatorBinary()] + args, env: env, timeout: 300)
    }

    func published(_ name: String) -> Bool {
        (try? runLocal(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(prefix)/\(name):nightly"]).status) == 0
    }

    @Test func sixImagesOnFourHostsAreAllPublishedAndNoHostExceedsMaxJobs() throws {
        let inventory = try instrumentedInventory()
        let plan = try writePlan((1...6).map { ("img\($0)", "FROM BASE\nCOPY name.txt /name.txt\nRUN sleep 1\n") })
        let metrics = fleet.dir + "/coordinator.prom"
        let r = try coordinator(["build", "--hosts", inventory, "--plan", plan, "--lock", fleet.dir + "/lock",
                                 "--metrics-file", metrics, "--metadata-file", fleet.dir + "/report.json", "--progress", "plain"])
        #expect(r.status == 0, "\(diagnosis(r.stderr))")
        for i in 1...6 { #expect(published("img\(i)"), "img\(i) not published") }
        for (i, h) in fleet.hosts.enumerated() {
            let limit = i < 2 ? 1 : 2
            #expect(try maxConcurrency(h) <= limit, "\(h.name) ran more than \(limit) builds at once")
        }
        #expect(try fleet.hosts.map(maxConcurrency).reduce(0, +) > 0)
        // Metrics: strict parse of every sample line; one success sample per image and platform.
        let text = try String(contentsOfFile: metrics, encoding: .utf8)
        let samples = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
        for s in samples {
            #expect(s.range(of: #"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$"#, options: .regularExpression) != nil, "bad sample: \(s)")
        }
        #expect(samples.filter { $0.hasPrefix("coordinator_build_success{") && $0.hasSuffix(" 1") }.count == 12)
        // The run is recorded and listed.
        let runs = try coordinator(["runs", "list", "--format", "json"])
        let list = try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]]
        #expect(list?.first?["exitCode"] as? Int == 0)
    }

    @Test func oneBrokenImageFailsAloneAndTheRunExits1() throws {
        let plan = try writePlan([("good1", "FROM scratch\nCOPY name.txt /n\n"), ("broken", "FROM BASE\nRUN exit 7\n"),
                                  ("good2", "FROM scratch\nCOPY name.txt /n\n")])
        let report = fleet.dir + "/report.json"
        let r = try coordinator(["build", "--hosts", fleet.inventoryPath, "--plan", plan, "--metadata-file", report, "--lock", fleet.dir + "/lock"])
        #expect(r.status == 1, "\(diagnosis(r.stderr))")
        #expect(published("good1"))
        #expect(published("good2"))
        #expect(!published("broken"))
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any]
        let images = doc?["images"] as? [[String: Any]] ?? []
        let broken = images.first { $0["name"] as? String == "broken" }
        #expect(((broken?["report"] as? [String: Any])?["coordinator"] as? [String: Any])?["exitCode"] as? Int == 1)
        #expect(doc?["exitCode"] as? Int == 1)
    }

    @Test func planErrorsNameTheFileAndPathAndContactNothing() throws {
        let path = fleet.dir + "/bad-plan.json"
        try #"{"images":[{"name":"a","context":".","tags":["x/y:1"],"platforms":["sparc"]}]}"#.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try coordinator(["build", "--hosts", fleet.inventoryPath, "--plan", path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("bad-plan.json: images[0].platforms[0]"))
    }
}
