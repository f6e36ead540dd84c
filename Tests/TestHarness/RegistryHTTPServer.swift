import Foundation

/// A tiny HTTP/1.1 server on a loopback port, one request per connection, for test helpers that stand
/// beside the real registry (token issuer, fault-injecting proxy). Threads, POSIX sockets, no outside code.
public final class RegistryHTTPServer: @unchecked Sendable {
    /// A request as received.
    public struct Request: Sendable {
        /// `GET`, `PUT`, …
        public var method: String
        /// Path and query as sent.
        public var target: String
        /// Header fields, names lowercased.
        public var headers: [String: String]
        /// The body (Content-Length bytes).
        public var body: Data
        /// The exact bytes received.
        public var raw: Data
        /// The path without query.
        public var path: String { String(target.split(separator: "?", maxSplits: 1).first ?? "") }
        /// Query items.
        public var query: [URLQueryItem] { URLComponents(string: "http://x" + target)?.queryItems ?? [] }
    }

    /// What to send back.
    public enum Reply: Sendable {
        /// A response with `Connection: close`.
        case response(status: Int, headers: [String: String], body: Data)
        /// These exact bytes.
        case raw(Data)
        /// Close the connection with a TCP reset, sending nothing.
        case reset
    }

    /// The port.
    public let port: Int
    private let listener: Int32
    private let handler: @Sendable (Request) -> Reply
    private let lock = NSLock()
    private var stopped = false

    /// Listens on 127.0.0.1 (free port) and serves each request with `handler` on its own thread.
    public init(handler: @escaping @Sendable (Request) -> Reply) throws {
        self.handler = handler
        guard let (fd, port) = RegistryTools.bindLoopback(), listen(fd, 64) == 0 else {
            throw RegistryHarnessError("test HTTP server cannot listen")
        }
        listener = fd
        self.port = port
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// `127.0.0.1:PORT`.
    public var host: String { "127.0.0.1:\(port)" }

    /// Stops listening. Idempotent.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { stop() }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            Thread.detachNewThread { [self] in serve(client) }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        guard let request = RegistryHTTPServer.readRequest(fd) else { return }
        switch handler(request) {
        case .reset:
            var l = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        case .raw(let data):
            RegistryHTTPServer.writeAll(fd, data)
        case .response(let status, let headers, let body):
            var head = "HTTP/1.1 \(status) \(status < 400 ? "OK" : "Error")\r\n"
            var fields = headers
            fields["Content-Length"] = String(body.count)
            fields["Connection"] = "close"
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) { head += "\(k): \(v)\r\n" }
            head += "\r\n"
            RegistryHTTPServer.writeAll(fd, Data(head.utf8) + body)
        }
    }

    /// Reads one request (head and Content-Length body) from `fd`.
    static func readRequest(_ fd: Int32) -> Request? {
        var buffer = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        let separator = Data("\r\n\r\n".utf8)
        var headEnd: Range<Data.Index>?
        while headEnd == nil {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
            headEnd = buffer.range(of: separator)
        }
        let head = String(decoding: buffer[..<headEnd!.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let first = lines.removeFirst().split(separator: " ")
        guard first.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        let bodyStart = headEnd!.upperBound
        while buffer.count - bodyStart < length {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
        let body = buffer[bodyStart..<(bodyStart + length)]
        return Request(method: String(first[0]), target: String(first[1]), headers: headers, body: Data(body),
                       raw: Data(buffer[..<(bodyStart + length)]))
    }

    static func writeAll(_ fd: Int32, _ data: Data) {
        data.withUnsafeBytes { buf in
            var offset = 0
            while offset < buf.count {
                let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// Sends `request` to 127.0.0.1:`port` with `Connection: close` and returns the raw response bytes.
    static func forward(_ request: Request, toPort port: Int) -> Data? {
        guard let fd = RegistryTools.connectLoopback(port: port) else { return nil }
        defer { close(fd) }
        var head = "\(request.method) \(request.target) HTTP/1.1\r\n"
        for (k, v) in request.headers where k != "connection" && k != "keep-alive" { head += "\(k): \(v)\r\n" }
        head += "connection: close\r\n\r\n"
        writeAll(fd, Data(head.utf8) + request.body)
        var out = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}

/// A proxy in front of a real registry that injects faults into matching requests (the only fake the
/// registry tests use): statuses such as 429 with `Retry-After` or 503, and connection resets.
public final class RegistryFaultProxy: @unchecked Sendable {
    /// One injected fault.
    public enum Fault: Sendable {
        /// Answer with `status` (and `Retry-After` when given) and a spec error body.
        case status(Int, retryAfter: String? = nil, code: String = "UNAVAILABLE")
        /// Reset the connection.
        case reset
        /// Forward without the query string (a registry that declines `?mount=` answers 202: start an upload).
        case forwardWithoutQuery
    }

    private let lock = NSLock()
    private var faults: [(matches: @Sendable (RegistryHTTPServer.Request) -> Bool, fault: Fault)] = []
    private var seen: [String] = []
    private var server: RegistryHTTPServer!

    /// A proxy forwarding to 127.0.0.1:`upstreamPort`.
    public init(upstreamPort: Int) throws {
        server = try RegistryHTTPServer { [unowned self] request in
            self.lock.lock()
            self.seen.append("\(request.method) \(request.path)")
            var fault: Fault?
            if let i = self.faults.firstIndex(where: { $0.matches(request) }) { fault = self.faults.remove(at: i).fault }
            self.lock.unlock()
            switch fault {
            case .reset: return .reset
            case .status(let status, let retryAfter, let code):
                var headers = ["Content-Type": "application/json"]
                if let retryAfter { headers["Retry-After"] = retryAfter }
                let body = Data(#"{"errors":[{"code":"\#(code)","message":"injected by the test proxy"}]}"#.utf8)
                return .response(status: status, headers: headers, body: body)
            case .forwardWithoutQuery:
                var plain = request
                plain.target = request.path
                return RegistryHTTPServer.forward(plain, toPort: upstreamPort).map { .raw($0) } ?? .reset
            case nil:
                guard let data = RegistryHTTPServer.forward(request, toPort: upstreamPort) else { return .reset }
                return .raw(data)
            }
        }
    }

    /// `127.0.0.1:PORT` of the proxy.
    public var host: String { server.host }

    /// Queues `fault` for the next request that `matches` (each fault is used once, in order).
    public func inject(_ fault: Fault, when matches: @escaping @Sendable (RegistryHTTPServer.Request) -> Bool) {
        lock.withLock { faults.append((matches, fault)) }
    }

    /// `METHOD path` of every request seen, in order.
    public var requests: [String] { lock.withLock { seen } }

    /// Faults not yet used.
    public var pendingFaults: Int { lock.withLock { faults.count } }

    /// Stops the proxy.
    public func stop() { server.stop() }
}
