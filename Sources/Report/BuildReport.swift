// Report: what a run tells people and machines afterwards — the metadata file (buildx keys + ours), the
// summary table, metrics. It renders values; it must not decide outcomes.
import Build
import Foundation
import Support

/// The metadata file of DESIGN.md §6: buildx's keys plus a `coordinator` section.
public struct BuildReport: Encodable, Sendable {
    /// Index digest, when one was pushed or written.
    public var indexDigest: String?
    /// Tags, comma separated.
    public var imageName: String
    /// Our section.
    public var coordinator: Section

    /// The `coordinator` section.
    public struct Section: Encodable, Sendable {
        /// Per-platform results.
        public var platforms: [PlatformResult]
        /// Platforms not in the index.
        public var missingPlatforms: [String]
        /// Tags that now point at the index.
        public var tags: [String]
        /// The run's exit code.
        public var exitCode: Int32
        /// Run id (names the remote run folders and the local log folder).
        public var runID: String
        /// Local log folder.
        public var logDirectory: String
        /// `--output` value.
        public var output: String
        /// Why the run ended as it did, when not success.
        public var error: String?

        /// A section.
        public init(platforms: [PlatformResult], missingPlatforms: [String], tags: [String], exitCode: Int32, runID: String,
                    logDirectory: String, output: String, error: String?) {
            self.platforms = platforms
            self.missingPlatforms = missingPlatforms
            self.tags = tags
            self.exitCode = exitCode
            self.runID = runID
            self.logDirectory = logDirectory
            self.output = output
            self.error = error
        }
    }

    enum CodingKeys: String, CodingKey {
        case indexDigest = "containerimage.digest"
        case imageName = "image.name"
        case coordinator
    }

    /// A report.
    public init(indexDigest: String?, tags: [String], section: Section) {
        self.indexDigest = indexDigest
        imageName = tags.joined(separator: ",")
        coordinator = section
    }

    /// The summary table printed at the end of a build.
    public func summary() -> String {
        var t = TextTable(["PLATFORM", "HOST", "STATUS", "ATTEMPTS", "TIME", "DIGEST"])
        for p in coordinator.platforms {
            t.append([p.platform, p.host ?? "-", p.status.rawValue, String(p.attempts), String(format: "%.1fs", p.durationSeconds),
                      p.digest.map { String($0.prefix(19)) + "…" } ?? (p.reason ?? "")])
        }
        var s = t.render()
        if let d = indexDigest { s += "index \(d) pushed as \(imageName.isEmpty ? "(no tags)" : imageName)\n" }
        if !coordinator.missingPlatforms.isEmpty { s += "missing: \(coordinator.missingPlatforms.joined(separator: ", "))\n" }
        if let e = coordinator.error { s += e + "\n" }
        return s
    }
}
