import Foundation
import Inventory
import OCI
import Testing
@testable import Build

/// Nightly plan files: the shipped example loads; errors name file and JSON path.
@Suite struct BuildPlanLoading {
    let fleet = Fleet(file: "inv.json", hosts: [
        HostSpec(name: "x", address: "10.0.0.1", platforms: [Platform(architecture: "amd64")]),
        HostSpec(name: "g", address: "10.0.0.2", platforms: [Platform(architecture: "arm64")]),
    ])
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func shippedExampleLoadsWithPathsResolvedAgainstThePlan() throws {
        let plan = try BuildPlan.load(path: Self.root + "/Inventory/plans/nightly-plan.json", fleet: fleet)
        #expect(plan.images.map(\.name) == ["hello", "web"])
        #expect(plan.images[0].request.context == Self.root + "/Deploy/examples/hello")
        #expect(plan.images[0].request.platforms == fleet.platforms)
        #expect(plan.images[1].request.tags.map(\.description) == ["registry.example.com/team/web:nightly", "registry.example.com/team/web:latest"])
        #expect(plan.images[1].request.timeout == 1800)
        #expect(plan.images[1].request.buildArgs == [KeyValue("NODE_ENV", "production")])
    }

    @Test(arguments: [
        (#"{"images":[]}"#, "images: expected a non-empty array"),
        (#"{"images":[{"name":"a","context":"c","tags":["r/a:1"]}],"extra":1}"#, "extra: unknown key"),
        (#"{"images":[{"name":"a","context":"c","tags":["r/a:1"],"colour":"red"}]}"#, "images[0].colour: unknown key"),
        (#"{"images":[{"name":"a","context":"c"}]}"#, "images[0].tags: at least one tag"),
        (#"{"images":[{"name":"a","context":"c","tags":["r/a:1"]},{"name":"a","context":"c","tags":["r/b:1"]}]}"#, "images[1].name: duplicate"),
        (#"{"images":[{"name":"a","context":"c","tags":["r/a:1"],"platforms":["linux/s390x"]}]}"#, "images[0].platforms[0]: no host"),
        (#"{"images":[{"name":"a","context":"c","tags":["r/a:1"],"buildArgs":{"K":1}}]}"#, "images[0].buildArgs: expected an object of strings"),
    ]) func badPlansAreRefusedWithFileAndPath(_ text: String, _ message: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID()).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect { try BuildPlan.load(path: path, fleet: fleet) } throws: { error in
            guard let e = error as? PlanError else { return false }
            return e.description.hasPrefix(path) && e.description.contains(message) && e.exitCode == .usage
        }
    }
}
