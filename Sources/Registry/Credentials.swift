import Foundation
import OCI

/// A registry credential. Its description never shows the secret.
public enum Credential: Sendable, Hashable, CustomStringConvertible {
    /// Username and password (or a token used as a password).
    case basic(username: String, password: String)
    /// An OAuth2 refresh token (`identitytoken` in config.json, or a helper's `<token>` user).
    case identityToken(String)

    public var description: String {
        switch self {
        case .basic(let u, _): return "basic(\(u), ***)"
        case .identityToken: return "identity-token(***)"
        }
    }

    /// The `Authorization: Basic` value, for a basic credential.
    var basicHeader: String? {
        guard case .basic(let u, let p) = self else { return nil }
        return "Basic " + Data("\(u):\(p)".utf8).base64EncodedString()
    }
}

extension Credential {
    /// A containers `auth.json` / docker `config.json` holding `credentials` (mode 0600 is the writer's job):
    /// what `credentials: forward` hands a build host for the length of a run.
    public static func authFile(_ credentials: [String: Credential]) throws -> Data {
        var auths: [String: [String: String]] = [:]
        for (registry, credential) in credentials {
            switch credential {
            case .basic(let u, let p): auths[DockerCredentials.serverURL(registry)] = ["auth": Data("\(u):\(p)".utf8).base64EncodedString()]
            case .identityToken(let t): auths[DockerCredentials.serverURL(registry)] = ["identitytoken": t]
            }
        }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try e.encode(["auths": auths])
    }
}

/// Where credentials come from.
public protocol CredentialSource: Sendable {
    /// The credential for `registry` (host[:port]), nil for anonymous.
    func credential(for registry: String) throws -> Credential?
}

/// Fixed credentials by registry (tests, or credentials resolved once and forwarded).
public struct StaticCredentials: CredentialSource {
    /// Credentials by registry host[:port].
    public var byRegistry: [String: Credential]

    /// A table of credentials.
    public init(_ byRegistry: [String: Credential] = [:]) { self.byRegistry = byRegistry }

    public func credential(for registry: String) throws -> Credential? { byRegistry[registry] }
}

/// A credential file or helper that could not be used; names the file or helper, never the secret.
public struct CredentialError: Error, Equatable, CustomStringConvertible {
    /// What failed.
    public var message: String
    public var description: String { message }
}

/// Credentials the way docker and podman find them: containers' `auth.json` (`REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`), then docker's `config.json` (`$DOCKER_CONFIG`, else
/// `~/.docker`) with `credHelpers`, `credsStore` and `auths`. Helpers speak docker's
/// `docker-credential-NAME get` protocol (server URL on stdin, JSON on stdout).
public struct DockerCredentials: CredentialSource {
    /// The environment to read paths and `PATH` from.
    public var environment: [String: String]

    /// Reads the process environment unless given another.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) { self.environment = environment }

    /// The files consulted, in order.
    public var files: [String] {
        var out: [String] = []
        if let f = environment["REGISTRY_AUTH_FILE"], !f.isEmpty {
            out.append(f)
        } else if let run = environment["XDG_RUNTIME_DIR"], !run.isEmpty {
            out.append(run + "/containers/auth.json")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        out.append((environment["DOCKER_CONFIG"].map { $0.isEmpty ? home + "/.docker" : $0 } ?? home + "/.docker") + "/config.json")
        return out
    }

    struct ConfigFile: Decodable {
        struct Entry: Decodable {
            var auth: String?
            var username: String?
            var password: String?
            var identitytoken: String?
        }
        var auths: [String: Entry]?
        var credsStore: String?
        var credHelpers: [String: String]?
    }

    public func credential(for registry: String) throws -> Credential? {
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let config: ConfigFile
            do { config = try JSONDecoder().decode(ConfigFile.self, from: data) } catch {
                throw CredentialError(message: "cannot read credentials file \(path): not valid JSON")
            }
            if let helper = config.credHelpers?[registry] ?? config.credHelpers?[DockerCredentials.serverURL(registry)] {
                if let c = try runHelper(helper, registry: registry) { return c }
                continue
            }
            if let entry = config.auths?.first(where: { DockerCredentials.normalise($0.key) == registry })?.value,
               let c = try DockerCredentials.credential(from: entry, path: path) {
                return c
            }
            if let store = config.credsStore, !store.isEmpty, let c = try runHelper(store, registry: registry) { return c }
        }
        return nil
    }

    /// The key docker stores a registry's credential under (`https://index.docker.io/v1/` for Docker Hub).
    public static func serverURL(_ registry: String) -> String {
        registry == Reference.dockerHub ? "https://index.docker.io/v1/" : registry
    }

    /// `https://host:port/v1/` → `host:port`; Docker Hub's legacy names → `docker.io`.
    static func normalise(_ key: String) -> String {
        var k = Substring(key)
        if let r = k.range(of: "://") { k = k[r.upperBound...] }
        if let slash = k.firstIndex(of: "/") { k = k[..<slash] }
        let host = String(k)
        return ["index.docker.io", "registry-1.docker.io"].contains(host) ? Reference.dockerHub : host
    }

    static func credential(from entry: ConfigFile.Entry, path: String) throws -> Credential? {
        if let token = entry.identitytoken, !token.isEmpty { return .identityToken(token) }
        if let auth = entry.auth, !auth.isEmpty {
            guard let raw = Data(base64Encoded: auth), let text = String(data: raw, encoding: .utf8),
                  let colon = text.firstIndex(of: ":") else {
                throw CredentialError(message: "credentials file \(path): an 'auth' entry is not base64 of user:password")
            }
            return .basic(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
        }
        if let u = entry.username, let p = entry.password { return .basic(username: u, password: p) }
        return nil
    }

    /// Runs `docker-credential-NAME get`; nil when the helper has nothing for this registry.
    func runHelper(_ name: String, registry: String) throws -> Credential? {
        let program = "docker-credential-" + name
        let dirs = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        guard let exe = dirs.map({ "\($0)/\(program)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CredentialError(message: "credential helper \(program) not found on PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = ["get"]
        process.environment = environment
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch { throw CredentialError(message: "cannot run credential helper \(program): \(error.localizedDescription)") }
        input.fileHandleForWriting.write(Data(DockerCredentials.serverURL(registry).utf8))
        try? input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        _ = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        // Helpers say "credentials not found" with a non-zero exit; their output is never shown (it may hold a secret).
        guard process.terminationStatus == 0 else { return nil }
        struct Reply: Decodable { var Username: String?; var Secret: String? }
        guard let reply = try? JSONDecoder().decode(Reply.self, from: out), let secret = reply.Secret, !secret.isEmpty else {
            throw CredentialError(message: "credential helper \(program) returned an unreadable answer for \(registry)")
        }
        if reply.Username == "<token>" { return .identityToken(secret) }
        return .basic(username: reply.Username ?? "", password: secret)
    }
}
