import Foundation
import OCI
import Support

/// Writes one multi-arch OCI image layout from per-platform layouts downloaded from the hosts — the
/// `--output oci:DIR` sink (regclient's idea: a registry and a layout behind one publishing step).
public enum OCILayoutWriter {
    /// Reads the single image of a per-platform layout and checks its config's platform.
    public static func verify(_ platform: Platform, layout: String) -> Scheduler.VerifiedChild {
        do {
            let (desc, config) = try image(in: layout)
            let got = Platform(os: config.os, architecture: config.architecture, variant: config.variant)
            guard got.os == platform.os, got.architecture == platform.architecture, got.variant == platform.variant else {
                return .rejected("image config says \(got), but \(platform) was requested: rejected, never relabelled")
            }
            return .accepted(mediaType: desc.mediaType, size: desc.size)
        } catch {
            return .rejected("unreadable OCI layout from host: \(error)")
        }
    }

    /// Merges per-platform layouts into `directory`: blobs copied, an index blob assembled, index.json pointing at it.
    public static func write(layouts: [(Platform, String)], to directory: String, refName: String, annotations: [String: String]) throws -> Digest {
        let fm = FileManager.default
        let blobs = directory + "/blobs/sha256"
        try fm.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        var entries: [IndexEntry] = []
        for (platform, layout) in layouts {
            let (desc, _) = try image(in: layout)
            for name in try fm.contentsOfDirectory(atPath: layout + "/blobs/sha256") where !fm.fileExists(atPath: blobs + "/" + name) {
                try fm.copyItem(atPath: layout + "/blobs/sha256/" + name, toPath: blobs + "/" + name)
            }
            entries.append(IndexEntry(descriptor: Descriptor(mediaType: desc.mediaType, digest: desc.digest, size: desc.size), platform: platform))
        }
        let index = try IndexAssembler(annotations: annotations).assemble(entries)
        let doc = index.document
        try doc.raw.write(to: URL(fileURLWithPath: blobs + "/" + doc.digest.description.replacingOccurrences(of: "sha256:", with: "")))
        let top = ImageIndex(mediaType: MediaType.ociIndex, manifests: [
            Descriptor(mediaType: doc.mediaType, digest: doc.digest, size: Int64(doc.raw.count),
                       annotations: ["org.opencontainers.image.ref.name": refName]),
        ])
        try JSONOutput.encode(top, compact: true).write(to: URL(fileURLWithPath: directory + "/index.json"))
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: directory + "/oci-layout"))
        return doc.digest
    }

    static func image(in layout: String) throws -> (Descriptor, ImageConfig) {
        let indexData = try Data(contentsOf: URL(fileURLWithPath: layout + "/index.json"))
        let index = try JSONDecoder().decode(ImageIndex.self, from: indexData)
        guard let desc = index.manifests.first else { throw OCIError.invalidDocument("empty index.json in \(layout)") }
        let raw = try Data(contentsOf: URL(fileURLWithPath: layout + "/blobs/sha256/" + desc.digest.description.replacingOccurrences(of: "sha256:", with: "")))
        let doc = try ManifestDocument(raw: raw, mediaType: desc.mediaType, expecting: desc.digest)
        guard case .image(let manifest) = doc.content else { throw OCIError.invalidDocument("\(desc.digest) is not an image manifest") }
        let configData = try Data(contentsOf: URL(fileURLWithPath: layout + "/blobs/sha256/" + manifest.config.digest.description.replacingOccurrences(of: "sha256:", with: "")))
        guard manifest.config.digest.matches(configData) else { throw OCIError.invalidDocument("config digest mismatch in \(layout)") }
        return (desc, try ImageConfig(parsing: configData))
    }
}
