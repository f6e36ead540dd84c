import Foundation
import OCI
import Registry
import Support

/// `coordinator merge`: one index from per-arch images already in a registry (like `buildx imagetools create`).
enum MergeCommand {
    static var spec: CommandSpec {
        CommandSpec(
            name: "merge",
            summary: "Merge per-arch images (or indexes) into one multi-arch index and push it under each tag.",
            discussion: """
            Each SOURCE is REF or REF@sha256:…; indexes are flattened and attestation manifests kept. Platforms are read
            from each image's config, never from the command line. Children in other repositories of the same registry
            are mounted into the target repository. Prints the index digest; with --dry-run, prints the exact index JSON
            on stdout (its digest on stderr) and writes nothing.
            """,
            options: [
                OptionSpec(["-t", "--tag"], value: "REF", help: "Tag to push the index under.", repeatable: true),
                OptionSpec(["--annotation"], value: "K=V", help: "Index annotation (forces an OCI index).", repeatable: true),
                OptionSpec(["--dry-run"], help: "Print the index and its digest; push nothing."),
                registryOption,
            ],
            arguments: [ArgumentSpec("SOURCE", help: "Image or index to include.", variadic: true)],
            run: run)
    }

    /// The option naming registries spoken to over plain HTTP (loopback ones always are).
    static let registryOption = OptionSpec(["--insecure-registry"], value: "HOST[:PORT]",
                                           help: "Registry to reach over plain HTTP although not on loopback.", repeatable: true)

    /// Registry settings from the shared options.
    static func settings(_ args: ParsedArguments) -> RegistrySettings {
        RegistrySettings(insecureRegistries: Set(args.all("--insecure-registry")))
    }

    /// Parses a reference, or a usage error naming the option it came from.
    static func reference(_ text: String, _ what: String, _ args: ParsedArguments) throws -> Reference {
        do { return try Reference(parsing: text) } catch let e as OCIError {
            throw UsageError("\(what): \(e.description)", command: args.commandPath)
        }
    }

    static func run(_ args: ParsedArguments) async throws -> ExitCode {
        let tags = try args.all("--tag").map { try reference($0, "-t", args) }
        guard !tags.isEmpty else { throw UsageError("missing required option -t/--tag", command: args.commandPath) }
        for t in tags where t.digest != nil {
            throw UsageError("-t \(t): a target must be a tag, not a digest", command: args.commandPath)
        }
        let sources = try args.positionals.map { try reference($0, "SOURCE", args) }
        guard !sources.isEmpty else { throw UsageError("missing argument SOURCE", command: args.commandPath) }
        var annotations: [String: String] = [:]
        for (k, v) in try args.pairs("--annotation") { annotations[k] = v }
        let registry = tags[0].registry
        for r in tags + sources where r.registry != registry {
            throw UsageError("\(r): every source and tag must be on one registry (\(registry))", command: args.commandPath)
        }
        let merger = Merger(client: RegistryClient(settings(args)))
        let plan = try await merger.plan(sources: sources, targets: tags, annotations: annotations)
        let document = plan.index.document
        let summary = plan.index.images.map { "\($0.platform?.description ?? "?") \($0.digest)" }
        if args.flag("--dry-run") {
            FileHandle.standardOutput.write(document.raw)
            FileHandle.standardOutput.write(Data("\n".utf8))
            for line in summary { Console.shared.err("  \(line)") }
            if !plan.index.attestations.isEmpty { Console.shared.err("  + \(plan.index.attestations.count) attestation manifest(s)") }
            Console.shared.err("digest: \(document.digest) (\(document.mediaType), \(document.raw.count) bytes; dry run, nothing pushed)")
            return .success
        }
        let outcome = try await merger.push(plan)
        for line in summary { Console.shared.err("  \(line)") }
        for t in outcome.tags { Console.shared.err("pushed \(t)@\(outcome.digest)") }
        for t in outcome.unchanged { Console.shared.err("unchanged \(t) (already \(outcome.digest))") }
        Console.shared.out(outcome.digest.description)
        return .success
    }
}
