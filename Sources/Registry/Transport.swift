import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import OCI

/// A parsed `WWW-Authenticate` challenge.
public struct AuthChallenge: Hashable, Sendable {
    /// `basic` or `bearer` (lowercased).
    public var scheme: String
    /// Parameters (`realm`, `service`, `scope`, …), keys lowercased.
    public var parameters: [String: String]

    /// Parses one challenge, e.g. `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`.
    public init?(header: String) {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard let space = trimmed.firstIndex(of: " ") ?? (trimmed.isEmpty ? nil : trimmed.endIndex) else { return nil }
        scheme = trimmed[..<space].lowercased()
        parameters = [:]
        var rest = trimmed[space...].drop(while: { $0 == " " })
        while !rest.isEmpty {
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if escaped { value.append(c); escaped = false; continue }
                    if c == "\\" { escaped = true; continue }
                    if c == "\"" { break }
                    value.append(c)
                }
                rest = rest.drop(while: { $0 != "," })
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<end].trimmingCharacters(in: .whitespaces)
                rest = rest[end...]
            }
            rest = rest.drop(while: { $0 == "," || $0 == " " })
            parameters[key] = value
        }
    }
}

/// Counts of the requests a client made, by kind (`manifest.get`, `blob.get`, `manifest.put`, …).
public struct RequestCounts: Sendable, Codable, Hashable {
    /// Requests by kind, retries included.
    public var byKind: [String: Int] = [:]
    /// Retries (attempts after the first).
    public var retries = 0
    /// Bytes of blob bodies downloaded or uploaded through this client.
    public var blobBytes: Int64 = 0

    /// All requests.
    public var total: Int { byKind.values.reduce(0, +) }
}

/// Thread-safe request counters.
final class RequestMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var counts = RequestCounts()

    func record(_ kind: String) { lock.withLock { counts.byKind[kind, default: 0] += 1 } }
    func retried() { lock.withLock { counts.retries += 1 } }
    func blobBytes(_ n: Int) { lock.withLock { counts.blobBytes += Int64(n) } }
    var snapshot: RequestCounts { lock.withLock { counts } }
}

/// One request to a registry, with what errors and auth need to know.
struct RegistryRequest: Sendable {
    var method: String
    var url: URL
    var registry: String
    var repository: String?
    /// Token scopes, e.g. `repository:team/app:pull,push`.
    var scopes: [String]
    /// Metrics bucket.
    var kind: String
    var headers: [String: String] = [:]
    var body: Data?
}

/// A response: status, headers (lowercased names), body.
struct RegistryResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data
    var url: URL

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Tokens and challenges learnt per registry.
actor AuthState {
    private var challenges: [String: AuthChallenge] = [:]
    private var tokens: [String: (token: String, expires: Date)] = [:]
    private var credentials: [String: Credential?] = [:]

    func challenge(for registry: String) -> AuthChallenge? { challenges[registry] }
    func learn(_ c: AuthChallenge, for registry: String) { challenges[registry] = c }
    func token(_ key: String) -> String? {
        guard let t = tokens[key], t.expires > Date() else { return nil }
        return t.token
    }
    func store(token: String, key: String, expires: Date) { tokens[key] = (token, expires) }
    func forget(_ key: String) { tokens[key] = nil }
    func credential(for registry: String, source: any CredentialSource) throws -> Credential? {
        if let c = credentials[registry] { return c }
        let c = try source.credential(for: registry)
        credentials[registry] = c
        return c
    }
}

/// swift-corelibs-foundation answers a 401 carrying a `Basic` challenge itself and, with no credential,
/// never completes the task. This delegate cancels every HTTP auth challenge and keeps the 401 it came
/// with, so `Transport` sees the response and does the auth (Basic and Bearer alike) itself.
final class ChallengeCatcher: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    static let header = "X-Coordinator-Request"
    private let lock = NSLock()
    private var caught: [String: HTTPURLResponse] = [:]

    func urlSession(_ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
                    completionHandler: @escaping @Sendable (URLSession.AuthChallengeDisposition, URLCredential?) -> Void) {
        guard let id = task.originalRequest?.value(forHTTPHeaderField: ChallengeCatcher.header),
              let response = challenge.failureResponse as? HTTPURLResponse
        else { return completionHandler(.performDefaultHandling, nil) }
        lock.withLock { caught[id] = response }
        completionHandler(.cancelAuthenticationChallenge, nil)
    }

    /// The 401 caught for request `id`, if any (removed).
    func take(_ id: String) -> HTTPURLResponse? { lock.withLock { caught.removeValue(forKey: id) } }
}

/// HTTP to registries: auth (Basic / Bearer), bounded retries with backoff, metrics.
final class Transport: Sendable {
    let settings: RegistrySettings
    let session: URLSession
    let catcher = ChallengeCatcher()
    let auth = AuthState()
    let metrics = RequestMetrics()

    init(settings: RegistrySettings) {
        self.settings = settings
        let config = URLSessionConfiguration.ephemeral
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        config.urlCache = nil
        config.httpCookieStorage = nil
        config.timeoutIntervalForRequest = settings.requestTimeout
        config.httpMaximumConnectionsPerHost = 8
        session = URLSession(configuration: config, delegate: catcher, delegateQueue: nil)
    }

    /// Sends `request`, authenticating on a 401 once and retrying temporary failures; returns any final response.
    func send(_ request: RegistryRequest) async throws -> RegistryResponse {
        var authRetried = false
        while true {
            var headers = request.headers
            if let value = try await authorization(for: request) { headers["Authorization"] = value }
            let response = try await perform(request, headers: headers)
            guard response.status == 401, !authRetried,
                  let header = response.header("www-authenticate"), let challenge = AuthChallenge(header: header)
            else { return response }
            authRetried = true
            await auth.learn(challenge, for: request.registry)
            if challenge.scheme == "bearer" {
                await auth.forget(tokenKey(request))
                var scoped = request
                if let s = challenge.parameters["scope"], !scoped.scopes.contains(s) { scoped.scopes.append(s) }
                _ = try await fetchToken(for: scoped, challenge: challenge)
                if scoped.scopes != request.scopes { return try await send(scoped) }
            } else if challenge.scheme == "basic" {
                if headers["Authorization"]?.hasPrefix("Basic ") == true { return response }  // refused
                guard try await credential(request.registry) != nil else { return response }
            } else {
                return response
            }
        }
    }

    private func tokenKey(_ r: RegistryRequest) -> String { r.registry + " " + r.scopes.sorted().joined(separator: " ") }

    private func credential(_ registry: String) async throws -> Credential? {
        do { return try await auth.credential(for: registry, source: settings.credentials) } catch let e as CredentialError {
            throw RegistryError(.unauthorized, registry: registry, detail: e.message)
        }
    }

    private func authorization(for request: RegistryRequest) async throws -> String? {
        guard let challenge = await auth.challenge(for: request.registry) else { return nil }
        switch challenge.scheme {
        case "basic": return try await credential(request.registry)?.basicHeader
        case "bearer":
            if let t = await auth.token(tokenKey(request)) { return "Bearer " + t }
            return "Bearer " + (try await fetchToken(for: request, challenge: challenge))
        default: return nil
        }
    }

    /// The token flow: GET the realm with service and scopes (Basic auth when there is a credential),
    /// or POST an OAuth2 refresh-token grant for identity tokens.
    private func fetchToken(for request: RegistryRequest, challenge: AuthChallenge) async throws -> String {
        guard let realm = challenge.parameters["realm"], var components = URLComponents(string: realm), components.scheme != nil else {
            throw RegistryError(.invalidResponse, registry: request.registry, repository: request.repository,
                                detail: "Bearer challenge without a usable realm")
        }
        let service = challenge.parameters["service"]
        let credential = try await credential(request.registry)
        var token = RegistryRequest(method: "GET", url: URL(string: realm)!, registry: request.registry,
                                    repository: request.repository, scopes: [], kind: "token")
        if case .identityToken(let refresh) = credential {
            var form = URLComponents()
            form.queryItems = [URLQueryItem(name: "grant_type", value: "refresh_token"), URLQueryItem(name: "refresh_token", value: refresh),
                               URLQueryItem(name: "client_id", value: "coordinator")]
                + (service.map { [URLQueryItem(name: "service", value: $0)] } ?? [])
                + (request.scopes.isEmpty ? [] : [URLQueryItem(name: "scope", value: request.scopes.joined(separator: " "))])
            token.method = "POST"
            token.body = Data((form.percentEncodedQuery ?? "").utf8)
            token.headers["Content-Type"] = "application/x-www-form-urlencoded"
        } else {
            var items = components.queryItems ?? []
            if let service { items.append(URLQueryItem(name: "service", value: service)) }
            items += request.scopes.map { URLQueryItem(name: "scope", value: $0) }
            components.queryItems = items
            token.url = components.url!
            if let basic = credential?.basicHeader { token.headers["Authorization"] = basic }
        }
        let response = try await perform(token, headers: token.headers)
        guard response.status == 200 else {
            var e = RegistryError.from(status: response.status, body: response.body, registry: request.registry,
                                       repository: request.repository, method: token.method, url: token.url)
            e.detail = "the token service at \(components.host ?? "?") refused"
            if e.kind == .http, response.status == 400 || response.status == 401 { e.kind = .unauthorized }
            throw e
        }
        struct Reply: Decodable { var token: String?; var access_token: String?; var expires_in: Double? }
        guard let reply = try? JSONDecoder().decode(Reply.self, from: response.body),
              let value = reply.token ?? reply.access_token, !value.isEmpty else {
            throw RegistryError(.invalidResponse, registry: request.registry, repository: request.repository,
                                detail: "the token service answered without a token")
        }
        let lifetime = max(reply.expires_in ?? 60, 60)
        await auth.store(token: value, key: tokenKey(request), expires: Date().addingTimeInterval(lifetime - 10))
        return value
    }

    /// One request with retries of 408 / 429 / 5xx and connection failures, bounded by the policy.
    func perform(_ request: RegistryRequest, headers: [String: String]) async throws -> RegistryResponse {
        let policy = settings.retry
        let start = Date()
        var attempt = 0
        while true {
            attempt += 1
            var r = URLRequest(url: request.url)
            r.httpMethod = request.method
            r.timeoutInterval = settings.requestTimeout
            r.setValue(settings.userAgent, forHTTPHeaderField: "User-Agent")
            for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
            r.httpBody = request.body
            let id = UUID().uuidString
            r.setValue(id, forHTTPHeaderField: ChallengeCatcher.header)
            metrics.record(request.kind)
            var retryAfter: Double?
            var failure: RegistryError
            do {
                let (data, response): (Data, URLResponse)
                do { (data, response) = try await session.data(for: r) } catch let e as URLError where e.code == .cancelled {
                    guard let caught = catcher.take(id) else { throw e }
                    (data, response) = (Data(), caught)
                }
                guard let http = response as? HTTPURLResponse else {
                    throw RegistryError(.invalidResponse, registry: request.registry, repository: request.repository, detail: "not HTTP")
                }
                var fields: [String: String] = [:]
                for (k, v) in http.allHeaderFields { if let k = k as? String, let v = v as? String { fields[k.lowercased()] = v } }
                let result = RegistryResponse(status: http.statusCode, headers: fields, body: data, url: http.url ?? request.url)
                let temporary = http.statusCode == 408 || http.statusCode == 429 || (500...599).contains(http.statusCode)
                guard temporary else { return result }
                failure = RegistryError.from(status: http.statusCode, body: data, registry: request.registry,
                                             repository: request.repository, method: request.method, url: request.url)
                retryAfter = RetryPolicy.parseRetryAfter(result.header("retry-after"))
            } catch let e as URLError {
                failure = Transport.transportError(e, request: request)
                guard failure.isTemporary else { throw failure }
            }
            let wait = policy.delay(afterAttempt: attempt, retryAfter: retryAfter)
            guard attempt < policy.maxAttempts, Date().timeIntervalSince(start) + wait <= policy.maxTotal else {
                if attempt > 1 { failure.detail += (failure.detail.isEmpty ? "" : "; ") + "gave up after \(attempt) attempts" }
                throw failure
            }
            metrics.retried()
            try await Task.sleep(nanoseconds: UInt64(wait * 1_000_000_000))
        }
    }

    static func transportError(_ e: URLError, request: RegistryRequest) -> RegistryError {
        let temporary: Set<URLError.Code> = [.networkConnectionLost, .timedOut, .cannotConnectToHost, .badServerResponse,
                                            .cannotParseResponse, .zeroByteResource, .notConnectedToInternet, .dnsLookupFailed]
        let reason: String
        switch e.code {
        case .cannotConnectToHost: reason = "connection refused"
        case .networkConnectionLost: reason = "connection reset"
        case .timedOut: reason = "timed out"
        case .cannotFindHost, .dnsLookupFailed: reason = "unknown host"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate, .serverCertificateNotYetValid,
             .serverCertificateHasUnknownRoot, .clientCertificateRejected:
            reason = "TLS failure (if it speaks plain HTTP, mark it insecure)"
        default:
            // libcurl's own words (e.g. "SSL certificate problem: self-signed certificate"): never holds a secret.
            let text = e.localizedDescription
            reason = text.contains("SSL") || text.contains("certificate")
                ? "TLS failure: \(text.prefix(200))" : "network error \(e.code.rawValue): \(text.prefix(200))"
        }
        return RegistryError(.transport, registry: request.registry, repository: request.repository, method: request.method,
                             path: request.url.path, detail: reason, isTemporary: temporary.contains(e.code))
    }
}
