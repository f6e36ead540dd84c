import Build
import Foundation
import Inventory
import OCI
import Support

/// The text `coordinator plan` prints: per platform the host chosen and its fallbacks, the exact remote
/// script, and the tags. Secrets never appear: the auth file is referenced by path only.
enum PlanRenderer {
    static func render(fleet: Fleet, request: BuildRequest, context: PreparedContext, runID: String, insecure: Bool) -> String {
        var lines: [String] = []
        lines.append("plan for \(request.context) (context digest \(context.manifest.digest), \(context.manifest.entries.count) entries, \(context.manifest.contentBytes) bytes)")
        switch request.output {
        case .registry:
            lines.append("publish: one index under \(request.tags.map(\.description).joined(separator: ", "))" + (request.allowPartial ? " (partial allowed)" : " (only when every platform succeeds)"))
        case .ociLayout(let d):
            lines.append("output: OCI image layout in \(d)")
        }
        for platform in request.platforms {
            let candidates = fleet.hosts.filter { $0.platforms.contains(platform) }
            lines.append("")
            lines.append("\(platform): " + (candidates.isEmpty ? "no host offers it" :
                "\(candidates[0].name) (\(candidates[0].address):\(candidates[0].port), \(candidates[0].engine.rawValue))" +
                (candidates.count > 1 ? "; fallbacks: " + candidates.dropFirst().map(\.name).joined(separator: ", ") : "")))
            guard let host = candidates.first else { continue }
            if let configured = try? host.sshConfigured() {
                lines.append("  connection to \(host.name)" + (configured.proxyJump.isEmpty ? "" : " via \(configured.proxyJump.map(\.description).joined(separator: ","))") + ":")
                for l in configured.provenanceLines { lines.append("    " + l) }
            }
            let job = EngineScript(engine: host.engine, platform: platform,
                                   runDir: host.workDir + "/runs/" + runID + "-" + platform.description.replacingOccurrences(of: "/", with: "-"),
                                   contextDir: ContextCache(workDir: host.workDir).treePath(context.manifest),
                                   dockerfile: context.dockerfilePath, request: request,
                                   hasAuthFile: host.credentials == .forward, insecureRegistry: insecure,
                                   layerCache: host.layerCache)
            lines.append("  remote script on \(host.name) (credentials: \(host.credentials.rawValue)\(host.credentials == .forward ? ", auth file 0600 in the run folder, removed after" : "")):")
            for l in job.render().split(separator: "\n") { lines.append("    " + l) }
        }
        return lines.joined(separator: "\n")
    }
}
