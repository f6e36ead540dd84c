import Foundation

/// A tool the registry tests need is missing or failed: the test fails (never skips).
public struct RegistryHarnessError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    /// An error.
    public init(_ description: String) { self.description = description }
}

/// Runs the real tools the registry tests use (docker-registry, buildah, skopeo, htpasswd, openssl).
public enum RegistryTools {
    /// The absolute path of `name` on PATH, or an error saying it must be installed.
    public static func require(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        throw RegistryHarnessError("\(name) is not installed (apt-get install the package that provides it); the registry tests need it")
    }

    /// The output of one finished command.
    public struct Output: Sendable {
        /// Exit status.
        public var status: Int32
        /// Standard output.
        public var stdout: Data
        /// Standard error, as text.
        public var stderr: String
        /// Standard output, as text.
        public var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs `tool args` to the end; `input` goes to stdin.
    @discardableResult
    public static func run(_ tool: String, _ args: [String], environment: [String: String]? = nil, input: Data? = nil,
                           check: Bool = true) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool.hasPrefix("/") ? tool : try require(tool))
        process.arguments = args
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inp
        try process.run()
        if let input { inp.fileHandleForWriting.write(input) }
        try? inp.fileHandleForWriting.close()
        // Read both pipes at once so a chatty tool never blocks on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        Thread.detachNewThread {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        let result = Output(status: process.terminationStatus, stdout: outData, stderr: String(decoding: errData, as: UTF8.self))
        if check, result.status != 0 {
            throw RegistryHarnessError("\(tool) \(args.joined(separator: " ")) exited \(result.status): \(result.stderr.suffix(2000))")
        }
        return result
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory(_ prefix: String) throws -> URL {
        try Scratch.directory(prefix)
    }

    /// A TCP port on 127.0.0.1 free right now.
    public static func freePort() throws -> Int {
        guard let (fd, port) = bindLoopback() else { throw RegistryHarnessError("cannot find a free port") }
        close(fd)
        return port
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`.
    public static func waitForPort(_ port: Int, timeout: Double = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let fd = connectLoopback(port: port) {
                close(fd)
                return
            }
            usleep(50_000)
        }
        throw RegistryHarnessError("nothing listens on 127.0.0.1:\(port) after \(timeout) s")
    }

    /// A socket connected to 127.0.0.1:`port` (the caller closes it), or nil when nothing listens.
    public static func connectLoopback(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 { return fd }
        close(fd)
        return nil
    }

    /// Binds a new TCP socket to 127.0.0.1:`port` (0: any free port); returns it and the port bound.
    public static func bindLoopback(port: Int = 0) -> (fd: Int32, port: Int)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = loopbackAddress(port: port)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { close(fd); return nil }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    static func loopbackAddress(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }
}
