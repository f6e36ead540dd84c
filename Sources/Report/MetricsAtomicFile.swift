#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Support

/// A file write that failed; names the file and the C call.
public struct FileWriteError: UserFacingError, Equatable {
    /// The file that was being written.
    public var path: String
    /// The failing call (`mkstemp`, `write`, `fsync`, `rename`).
    public var function: String
    /// strerror's text.
    public var message: String

    /// `.infrastructure` (4): the run's own machine could not store its results.
    public var exitCode: ExitCode { .infrastructure }

    /// One line for the operator.
    public var description: String { "cannot write \(path): \(function): \(message)" }
}

/// Whole-file replacement that readers never see half-written (node_exporter, `coordinator runs`).
public enum AtomicFile {
    /// Writes `data` to a temp file beside `path` (a dot name, so the textfile collector's `*.prom` glob skips
    /// it), fsyncs it, renames it over `path` and fsyncs the folder, so a crash leaves the old or the new file.
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var template = Array("\(dir)/.\(url.lastPathComponent).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw failure(path, "mkstemp") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let tempPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var ok = false
        defer {
            if !ok { unlink(tempPath) }
        }
        do {
            defer { close(fd) }
            try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
                var offset = 0
                while offset < buf.count {
                    let n = Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw failure(path, "write")
                    }
                    offset += n
                }
            }
            // mkstemp creates 0600; the textfile collector usually runs as another user.
            guard fchmod(fd, mode) == 0 else { throw failure(path, "fchmod") }
            guard fsync(fd) == 0 else { throw failure(path, "fsync") }
        }
        guard rename(tempPath, path) == 0 else { throw failure(path, "rename") }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    private static func failure(_ path: String, _ function: String) -> FileWriteError {
        FileWriteError(path: path, function: function, message: String(cString: strerror(errno)))
    }
}
