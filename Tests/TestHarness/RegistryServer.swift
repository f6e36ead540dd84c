import Foundation

/// A real `docker-registry` (distribution) on a free loopback port with filesystem storage in a temp
/// dir; optionally with htpasswd or token auth. Stopped by pid in `stop()` (and deinit).
public final class RegistryServer: @unchecked Sendable {
    /// How clients must authenticate.
    public enum Auth: Sendable {
        /// Anonymous.
        case none
        /// htpasswd (bcrypt) with one user.
        case htpasswd(user: String, password: String)
        /// Token auth: the registry trusts tokens signed by `certificate` (PEM path) from `realm`.
        case token(realm: String, service: String, issuer: String, certificate: String)
    }

    /// The port.
    public let port: Int
    /// Its folder (config, storage, log).
    public let directory: URL
    /// `127.0.0.1:PORT`.
    public var host: String { "127.0.0.1:\(port)" }
    private let process: Process
    private let lock = NSLock()
    private var stopped = false

    /// Starts a registry and waits until it accepts connections.
    public init(auth: Auth = .none) throws {
        let exe = try RegistryTools.require("docker-registry")
        directory = try RegistryTools.temporaryDirectory("registry")
        port = try RegistryTools.freePort()
        var authBlock = ""
        switch auth {
        case .none: break
        case .htpasswd(let user, let password):
            let line = try RegistryTools.run("htpasswd", ["-Bbn", user, password]).text
            let file = directory.appendingPathComponent("htpasswd")
            try Data(line.utf8).write(to: file)
            authBlock = "auth:\n  htpasswd:\n    realm: test-realm\n    path: \(file.path)\n"
        case .token(let realm, let service, let issuer, let certificate):
            authBlock = "auth:\n  token:\n    realm: \(realm)\n    service: \(service)\n    issuer: \(issuer)\n    rootcertbundle: \(certificate)\n"
        }
        let config = """
        version: 0.1
        log:
          level: info
          accesslog:
            disabled: true
        storage:
          filesystem:
            rootdirectory: \(directory.path)/data
          delete:
            enabled: true
        http:
          addr: 127.0.0.1:\(port)
          secret: harness-secret
        \(authBlock)
        """
        let configFile = directory.appendingPathComponent("config.yml")
        try Data(config.utf8).write(to: configFile)
        let log = directory.appendingPathComponent("registry.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = ["serve", configFile.path]
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // A registry shared by the whole process (a global) is never deinitialised: stop it at exit.
        AtExit.register { [weak self] in self?.stop() }
        do { try RegistryTools.waitForPort(port) } catch {
            stop()
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw RegistryHarnessError("docker-registry did not start: \(text.suffix(1500))")
        }
    }

    /// The registry's log so far (requests, errors).
    public var log: String { (try? String(contentsOf: directory.appendingPathComponent("registry.log"), encoding: .utf8)) ?? "" }

    /// Stops the registry by its pid and removes its folder. Idempotent.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            let pid = process.processIdentifier
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning, Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
