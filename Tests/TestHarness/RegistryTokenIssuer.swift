import Foundation

/// A small token service for the registry's `auth: token` mode: checks Basic credentials and issues
/// RS256 JWTs (x5c header, signed with openssl) granting the scopes asked for.
public final class RegistryTokenIssuer: @unchecked Sendable {
    /// The folder with the signing key and certificate.
    public let directory: URL
    /// The certificate the registry must trust (`rootcertbundle`).
    public var certificatePath: String { directory.appendingPathComponent("cert.pem").path }
    /// `service` the registry announces.
    public let service = "harness-registry"
    /// `issuer` in every token.
    public let issuer = "harness-issuer"
    private let user: String, password: String
    /// The OAuth2 refresh token (docker's `identitytoken`) the issuer also accepts, by POST.
    public let refreshToken = "refresh-" + UUID().uuidString
    private let certificateDER: String
    private let lock = NSLock()
    private var log: [(authorized: Bool, scopes: [String])] = []
    private var server: RegistryHTTPServer!

    /// An issuer accepting `user` / `password`.
    public init(user: String, password: String) throws {
        self.user = user
        self.password = password
        directory = try RegistryTools.temporaryDirectory("token-issuer")
        let key = directory.appendingPathComponent("key.pem").path
        let cert = directory.appendingPathComponent("cert.pem").path
        try RegistryTools.run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                                          "-days", "2", "-subj", "/CN=harness-issuer"])
        certificateDER = try RegistryTools.run("openssl", ["x509", "-in", cert, "-outform", "DER"]).stdout.base64EncodedString()
        server = try RegistryHTTPServer { [unowned self] request in self.answer(request) }
    }

    /// The realm URL to configure the registry with.
    public var realm: String { "http://\(server.host)/token" }

    /// Token requests so far, and whether each carried valid credentials.
    public var requests: [(authorized: Bool, scopes: [String])] { lock.withLock { log } }

    /// Stops the service and removes its keys.
    public func stop() {
        server.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    private func answer(_ request: RegistryHTTPServer.Request) -> RegistryHTTPServer.Reply {
        let expected = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        var given = request.headers["authorization"]
        var scopes = request.query.filter { $0.name == "scope" }.compactMap(\.value)
        if request.method == "POST" {
            // OAuth2 refresh-token grant: form body, scopes space-separated.
            let form = URLComponents(string: "http://x/?" + String(decoding: request.body, as: UTF8.self))?.queryItems ?? []
            func field(_ name: String) -> String? { form.first { $0.name == name }?.value }
            scopes = (field("scope") ?? "").split(separator: " ").map(String.init)
            given = field("grant_type") == "refresh_token" && field("refresh_token") == refreshToken ? expected : "refused"
        }
        lock.withLock { log.append((given == expected, scopes)) }
        if given != nil, given != expected {
            return .response(status: 401, headers: ["Content-Type": "application/json"],
                             body: Data(#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.utf8))
        }
        // Anonymous callers get a token that grants nothing.
        let access: [[String: Any]] = given == nil ? [] : scopes.compactMap { scope in
            let parts = scope.split(separator: ":")
            guard parts.count == 3 else { return nil }
            return ["type": String(parts[0]), "name": String(parts[1]), "actions": parts[2].split(separator: ",").map(String.init)]
        }
        let now = Int(Date().timeIntervalSince1970)
        let claims: [String: Any] = ["iss": issuer, "sub": given == nil ? "" : user, "aud": service, "exp": now + 300,
                                     "nbf": now - 10, "iat": now, "jti": UUID().uuidString, "access": access]
        let header: [String: Any] = ["alg": "RS256", "typ": "JWT", "x5c": [certificateDER]]
        do {
            let signingInput = try Self.base64URL(JSONSerialization.data(withJSONObject: header)) + "."
                + Self.base64URL(JSONSerialization.data(withJSONObject: claims))
            let signature = try RegistryTools.run("openssl", ["dgst", "-sha256", "-sign", directory.appendingPathComponent("key.pem").path],
                                                  input: Data(signingInput.utf8)).stdout
            let token = signingInput + "." + Self.base64URL(signature)
            let key = request.method == "POST" ? "access_token" : "token"
            let body = try JSONSerialization.data(withJSONObject: [key: token, "expires_in": 300])
            return .response(status: 200, headers: ["Content-Type": "application/json"], body: body)
        } catch {
            return .response(status: 500, headers: [:], body: Data("\(error)".utf8))
        }
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
