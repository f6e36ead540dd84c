import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import OCI

/// A distribution-API client: manifests, configs, blob mounts, manifest pushes. Every fetched byte is
/// checked against its digest. Safe to share between tasks.
public final class RegistryClient: Sendable {
    /// The settings it was made with.
    public let settings: RegistrySettings
    let transport: Transport

    /// A client.
    public init(_ settings: RegistrySettings = RegistrySettings()) {
        self.settings = settings
        transport = Transport(settings: settings)
    }

    /// Requests made so far, by kind.
    public var requestCounts: RequestCounts { transport.metrics.snapshot }

    // MARK: Reading

    /// `GET /v2/`: checks the registry answers and that we may talk to it (auth included).
    public func ping(registry: String) async throws {
        let url = try url(registry: registry, path: "/v2/")
        let r = try await transport.send(RegistryRequest(method: "GET", url: url, registry: registry, scopes: [], kind: "ping"))
        guard r.status == 200 else { throw error(r, method: "GET", registry: registry, repository: nil) }
    }

    /// `HEAD` of a manifest: its descriptor, or nil when the registry does not have it.
    public func headManifest(_ ref: Reference) async throws -> Descriptor? {
        let r = try await transport.send(request("HEAD", ref, path: "manifests/\(ref.manifestIdentifier)", push: false, kind: "manifest.head",
                                                 headers: ["Accept": MediaType.allManifests.joined(separator: ", ")]))
        if r.status == 404 { return nil }
        guard r.status == 200 else { throw error(r, method: "HEAD", ref: ref) }
        guard let d = r.header("docker-content-digest").flatMap({ try? Digest(parsing: $0) }) else {
            throw RegistryError(.invalidResponse, registry: ref.registry, repository: ref.repository, method: "HEAD",
                                path: r.url.path, status: r.status, detail: "no Docker-Content-Digest header")
        }
        let size = Int64(r.header("content-length") ?? "") ?? 0
        let type = (r.header("content-type") ?? "").split(separator: ";").first.map(String.init) ?? ""
        return Descriptor(mediaType: type, digest: d, size: size)
    }

    /// `GET` of a manifest or index with the full `Accept` list; the bytes are kept exactly and verified
    /// against the reference's digest (or the `Docker-Content-Digest` header for a tag).
    public func fetchManifest(_ ref: Reference) async throws -> ManifestDocument {
        let r = try await transport.send(request("GET", ref, path: "manifests/\(ref.manifestIdentifier)", push: false, kind: "manifest.get",
                                                 headers: ["Accept": MediaType.allManifests.joined(separator: ", ")]))
        guard r.status == 200 else { throw error(r, method: "GET", ref: ref) }
        let expected = ref.digest ?? r.header("docker-content-digest").flatMap { try? Digest(parsing: $0) }
        do {
            if let expected { return try ManifestDocument(raw: r.body, mediaType: r.header("content-type"), expecting: expected) }
            return try ManifestDocument(raw: r.body, mediaType: r.header("content-type"))
        } catch let e as OCIError {
            let kind: RegistryError.Kind = if case .digestMismatch = e { .digestMismatch } else { .invalidResponse }
            throw RegistryError(kind, registry: ref.registry, repository: ref.repository, method: "GET", path: r.url.path,
                                status: r.status, detail: e.description)
        }
    }

    /// `GET` of a blob, verified against its digest.
    public func fetchBlob(_ repository: Reference, digest: Digest) async throws -> Data {
        let r = try await transport.send(request("GET", repository, path: "blobs/\(digest)", push: false, kind: "blob.get"))
        guard r.status == 200 else { throw error(r, method: "GET", ref: repository) }
        transport.metrics.blobBytes(r.body.count)
        guard digest.matches(r.body) else {
            throw RegistryError(.digestMismatch, registry: repository.registry, repository: repository.repository, method: "GET",
                                path: r.url.path, status: r.status, detail: "blob \(digest) hashes to \(Digest.sha256(of: r.body))")
        }
        return r.body
    }

    /// The image config of `manifest` (in `repository`), parsed, with its raw bytes.
    public func fetchConfig(_ repository: Reference, manifest: ImageManifest) async throws -> (ImageConfig, Data) {
        let data = try await fetchBlob(repository, digest: manifest.config.digest)
        do { return (try ImageConfig(parsing: data), data) } catch let e as OCIError {
            throw RegistryError(.invalidResponse, registry: repository.registry, repository: repository.repository,
                                detail: "config \(manifest.config.digest): \(e.description)")
        }
    }

    /// `HEAD` of a blob: whether the repository has it.
    public func blobExists(_ repository: Reference, digest: Digest) async throws -> Bool {
        let r = try await transport.send(request("HEAD", repository, path: "blobs/\(digest)", push: false, kind: "blob.head"))
        if r.status == 404 { return false }
        guard r.status == 200 else { throw error(r, method: "HEAD", ref: repository) }
        return true
    }

    // MARK: Writing

    /// `PUT` of a manifest under `ref`'s tag or digest, with `Content-Type` = `mediaType`; checks the
    /// registry's `Docker-Content-Digest` equals the digest of `raw`. Returns that digest.
    @discardableResult
    public func putManifest(_ raw: Data, mediaType: String, to ref: Reference) async throws -> Digest {
        let digest = Digest.sha256(of: raw)
        if let d = ref.digest, d != digest {
            throw RegistryError(.digestMismatch, registry: ref.registry, repository: ref.repository,
                                detail: "manifest hashes to \(digest), not \(d)")
        }
        var req = request("PUT", ref, path: "manifests/\(ref.manifestIdentifier)", push: true, kind: "manifest.put",
                          headers: ["Content-Type": mediaType])
        req.body = raw
        let r = try await transport.send(req)
        guard r.status == 201 || r.status == 200 else { throw error(r, method: "PUT", ref: ref) }
        if let served = r.header("docker-content-digest"), served != digest.description {
            throw RegistryError(.digestMismatch, registry: ref.registry, repository: ref.repository, method: "PUT",
                                path: r.url.path, status: r.status, detail: "registry stored \(served), we sent \(digest)")
        }
        return digest
    }

    /// Makes `blob` present in `target` by a cross-repository mount from `source` (same registry);
    /// when the registry answers 202 instead, copies it (GET from source, monolithic PUT). Returns true when mounted.
    @discardableResult
    public func mountBlob(_ blob: Descriptor, from source: Reference, to target: Reference) async throws -> Bool {
        var components = URLComponents(url: try url(registry: target.registry, path: "/v2/\(target.repository)/blobs/uploads/"),
                                       resolvingAgainstBaseURL: false)!
        components.queryItems = [URLQueryItem(name: "mount", value: blob.digest.description), URLQueryItem(name: "from", value: source.repository)]
        var req = request("POST", target, path: "blobs/uploads/", push: true, kind: "blob.mount")
        req.url = components.url!
        req.scopes.append("repository:\(source.repository):pull")
        req.headers["Content-Length"] = "0"
        req.body = Data()
        let r = try await transport.send(req)
        if r.status == 201 { return true }
        guard r.status == 202, let location = r.header("location") else { throw error(r, method: "POST", ref: target) }
        let data = try await fetchBlob(source, digest: blob.digest)
        try await upload(data, digest: blob.digest, location: location, relativeTo: r.url, target: target, scopes: req.scopes)
        return false
    }

    /// Uploads `data` as a blob into `target` (POST then monolithic PUT), unless it is there already.
    public func pushBlob(_ data: Data, to target: Reference) async throws -> Descriptor {
        let digest = Digest.sha256(of: data)
        let descriptor = Descriptor(mediaType: "application/octet-stream", digest: digest, size: Int64(data.count))
        if try await blobExists(target, digest: digest) { return descriptor }
        var req = request("POST", target, path: "blobs/uploads/", push: true, kind: "blob.upload")
        req.headers["Content-Length"] = "0"
        req.body = Data()
        let r = try await transport.send(req)
        guard r.status == 202, let location = r.header("location") else { throw error(r, method: "POST", ref: target) }
        try await upload(data, digest: digest, location: location, relativeTo: r.url, target: target, scopes: req.scopes)
        return descriptor
    }

    private func upload(_ data: Data, digest: Digest, location: String, relativeTo base: URL, target: Reference, scopes: [String]) async throws {
        guard let resolved = URL(string: location, relativeTo: base)?.absoluteURL,
              var put = URLComponents(url: resolved, resolvingAgainstBaseURL: true) else {
            throw RegistryError(.invalidResponse, registry: target.registry, repository: target.repository, detail: "bad upload Location")
        }
        put.queryItems = (put.queryItems ?? []) + [URLQueryItem(name: "digest", value: digest.description)]
        var req = RegistryRequest(method: "PUT", url: put.url!, registry: target.registry, repository: target.repository,
                                  scopes: scopes, kind: "blob.put",
                                  headers: ["Content-Type": "application/octet-stream", "Content-Length": String(data.count)], body: data)
        req.body = data
        transport.metrics.blobBytes(data.count)
        let r = try await transport.send(req)
        guard r.status == 201 else { throw error(r, method: "PUT", ref: target) }
    }

    // MARK: Plumbing

    func url(registry: String, path: String) throws -> URL {
        guard let u = URL(string: settings.baseURL(registry) + path) else {
            throw RegistryError(.unsupported, registry: registry, detail: "cannot form a URL for \(path)")
        }
        return u
    }

    func request(_ method: String, _ ref: Reference, path: String, push: Bool, kind: String,
                 headers: [String: String] = [:]) -> RegistryRequest {
        let url = URL(string: settings.baseURL(ref.registry) + "/v2/\(ref.repository)/\(path)")!
        return RegistryRequest(method: method, url: url, registry: ref.registry, repository: ref.repository,
                               scopes: ["repository:\(ref.repository):\(push ? "pull,push" : "pull")"], kind: kind, headers: headers)
    }

    func error(_ r: RegistryResponse, method: String, ref: Reference) -> RegistryError {
        error(r, method: method, registry: ref.registry, repository: ref.repository)
    }

    func error(_ r: RegistryResponse, method: String, registry: String, repository: String?) -> RegistryError {
        var e = RegistryError.from(status: r.status, body: r.body, registry: registry, repository: repository, method: method, url: r.url)
        if e.kind == .http, e.has(code: "MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN") { e.kind = .notFound }
        if e.kind == .http, e.has(code: "DENIED") { e.kind = .denied }
        return e
    }
}
