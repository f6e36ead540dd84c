import Foundation
import OCI
import Registry
import Support

/// `coordinator inspect`: what a tag or digest points at, per platform.
enum InspectCommand {
    static var spec: CommandSpec {
        CommandSpec(
            name: "inspect",
            summary: "Show the platforms, digests and sizes of an image or index in a registry.",
            options: [
                OptionSpec(["--raw"], help: "Print the exact manifest bytes the registry returned."),
                MergeCommand.registryOption,
            ],
            arguments: [ArgumentSpec("REF", help: "Image reference (REF or REF@sha256:…).")],
            run: run)
    }

    static func run(_ args: ParsedArguments) async throws -> ExitCode {
        let ref = try MergeCommand.reference(args.positionals[0], "REF", args)
        let client = RegistryClient(MergeCommand.settings(args))
        let document = try await client.fetchManifest(ref)
        if args.flag("--raw") {
            FileHandle.standardOutput.write(document.raw)
            return .success
        }
        var rows: [[String]] = [["PLATFORM", "DIGEST", "SIZE", "MEDIA TYPE"]]
        switch document.content {
        case .index(let index):
            for d in index.manifests {
                let platform = d.isAttestation ? "attestation" : (d.platform?.description ?? "-")
                rows.append([platform, d.digest.description, String(d.size), d.mediaType])
            }
        case .image(let manifest):
            let (config, _) = try await client.fetchConfig(ref.with(digest: document.digest), manifest: manifest)
            rows.append([config.platform.description, document.digest.description, String(document.raw.count), document.mediaType])
        }
        Console.shared.out("Name:      \(ref)")
        Console.shared.out("MediaType: \(document.mediaType)")
        Console.shared.out("Digest:    \(document.digest)")
        Console.shared.out("")
        Console.shared.out(table(rows))
        return .success
    }

    /// Left-aligned columns, two spaces apart.
    static func table(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined()
        }.joined(separator: "\n")
    }
}
