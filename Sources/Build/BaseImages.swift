import Foundation
import OCI

/// The base images a Dockerfile pulls, as far as they can be told without building: the `FROM` references
/// that are neither `scratch`, an earlier stage, nor built from `ARG`s (`$`). Forwarded credentials cover
/// their registries too, so a private base image pulls with the same login as the push.
public enum BaseImages {
    /// The registries (host[:port], `docker.io` for Docker Hub) of the `FROM` images of `dockerfile`, in order.
    public static func registries(dockerfile: String) -> [String] {
        var stages: Set<String> = []
        var registries: [String] = []
        for line in logicalLines(dockerfile) {
            var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard words.first?.uppercased() == "FROM" else { continue }
            words.removeFirst()
            words.removeAll { $0.hasPrefix("--") }
            guard let image = words.first else { continue }
            let lower = image.lowercased()
            if lower != "scratch", !image.contains("$"), !stages.contains(lower), let reference = try? Reference(parsing: image),
               !registries.contains(reference.registry) {
                registries.append(reference.registry)
            }
            if words.count >= 3, words[1].uppercased() == "AS" { stages.insert(words[2].lowercased()) }
        }
        return registries
    }

    /// Lines with `\` continuations joined and comments dropped.
    private static func logicalLines(_ text: String) -> [String] {
        var lines: [String] = []
        var current = ""
        // `isNewline`, not "\n": in Swift "\r\n" is one Character, so a CRLF file would be one line.
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            // Comments and blank lines are skipped, also inside a continuation (as BuildKit does).
            if line.hasPrefix("#") || (line.isEmpty && !current.isEmpty) { continue }
            if line.hasSuffix("\\") {
                current += line.dropLast() + " "
            } else {
                lines.append(current + line)
                current = ""
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }
}
