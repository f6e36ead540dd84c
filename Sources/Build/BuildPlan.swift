import Foundation
import Inventory
import OCI
import Support

/// A nightly plan: many images run as one queue over the fleet (schema: Inventory/plan.schema.json).
public struct BuildPlan: Sendable {
    /// One image of the plan.
    public struct Image: Sendable {
        /// Unique name (logs, metrics, report).
        public var name: String
        /// The build request, paths resolved against the plan's folder.
        public var request: BuildRequest

        /// An image.
        public init(name: String, request: BuildRequest) {
            self.name = name
            self.request = request
        }
    }

    /// The plan file.
    public var file: String
    /// Images in file order.
    public var images: [Image]

    static let topKeys: Set<String> = ["images"]
    static let imageKeys: Set<String> = ["name", "context", "dockerfile", "tags", "platforms", "buildArgs", "target", "labels",
                                         "annotations", "allowPartial", "timeout"]

    /// Loads and validates a plan against the fleet; errors name the file and JSON path (exit 2).
    public static func load(path: String, fleet: Fleet) throws -> BuildPlan {
        func fail(_ where_: String, _ message: String) -> PlanError { PlanError(file: path, path: where_, message: message) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("", "cannot read the plan file") }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data) } catch { throw fail("", "not valid JSON: \(error.localizedDescription)") }
        guard let top = json as? [String: Any] else { throw fail("", "expected an object with \"images\"") }
        if let extra = Set(top.keys).subtracting(topKeys).sorted().first { throw fail(extra, "unknown key; allowed: images") }
        guard let list = top["images"] as? [Any], !list.isEmpty else { throw fail("images", "expected a non-empty array") }
        let base = ((path as NSString).deletingLastPathComponent as NSString).standardizingPath
        var images: [Image] = []
        var names: Set<String> = []
        for (i, raw) in list.enumerated() {
            let at = "images[\(i)]"
            guard let o = raw as? [String: Any] else { throw fail(at, "expected an object") }
            if let extra = Set(o.keys).subtracting(imageKeys).sorted().first {
                throw fail("\(at).\(extra)", "unknown key; allowed: \(imageKeys.sorted().joined(separator: ", "))")
            }
            func string(_ k: String, required: Bool = false) throws -> String? {
                guard let v = o[k] else { if required { throw fail("\(at).\(k)", "required") }; return nil }
                guard let s = v as? String, !s.isEmpty else { throw fail("\(at).\(k)", "expected a non-empty string") }
                return s
            }
            func strings(_ k: String) throws -> [String] {
                guard let v = o[k] else { return [] }
                guard let a = v as? [String] else { throw fail("\(at).\(k)", "expected an array of strings") }
                return a
            }
            func pairs(_ k: String) throws -> [KeyValue] {
                guard let v = o[k] else { return [] }
                guard let d = v as? [String: String] else { throw fail("\(at).\(k)", "expected an object of strings") }
                return d.keys.sorted().map { KeyValue($0, d[$0]!) }
            }
            let name = try string("name", required: true)!
            guard names.insert(name).inserted else { throw fail("\(at).name", "duplicate image name \(name)") }
            func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : ((base as NSString).appendingPathComponent(p) as NSString).standardizingPath }
            let context = resolve(try string("context", required: true)!.expandingTilde)
            var tags: [Reference] = []
            for (j, t) in try strings("tags").enumerated() {
                do { tags.append(try Reference(parsing: t)) } catch { throw fail("\(at).tags[\(j)]", "\(error)") }
            }
            guard !tags.isEmpty else { throw fail("\(at).tags", "at least one tag is required") }
            var platforms: [Platform] = []
            for (j, p) in try strings("platforms").enumerated() {
                do { platforms.append(try Platform(parsing: p)) } catch let e as PlatformError { throw fail("\(at).platforms[\(j)]", e.description) }
            }
            if platforms.isEmpty { platforms = fleet.platforms }
            for (j, p) in platforms.enumerated() where !fleet.platforms.contains(p) {
                throw fail("\(at).platforms[\(j)]", "no host in \(fleet.file) offers \(p)")
            }
            var timeout: Double?
            if let t = o["timeout"] {
                guard let n = t as? Double, n > 0 else { throw fail("\(at).timeout", "expected seconds > 0") }
                timeout = n
            }
            var allowPartial = false
            if let a = o["allowPartial"] {
                guard let b = a as? Bool else { throw fail("\(at).allowPartial", "expected true or false") }
                allowPartial = b
            }
            let request = BuildRequest(context: context, dockerfile: try string("dockerfile").map { resolve($0.expandingTilde) },
                                       tags: tags, platforms: platforms, buildArgs: try pairs("buildArgs"),
                                       target: try string("target"), labels: try pairs("labels"), annotations: try pairs("annotations"),
                                       output: .registry, allowPartial: allowPartial, timeout: timeout)
            images.append(Image(name: name, request: request))
        }
        return BuildPlan(file: path, images: images)
    }
}

/// A plan problem: file, JSON path, message (exit 2).
public struct PlanError: UserFacingError, Equatable {
    /// The plan file.
    public var file: String
    /// JSON path, e.g. `images[2].tags[0]`.
    public var path: String
    /// What is wrong.
    public var message: String
    public var exitCode: ExitCode { .usage }
    public var description: String { "\(file)\(path.isEmpty ? "" : ": " + path): \(message)" }
}
