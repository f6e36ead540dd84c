import Foundation
import Support

/// A pull-based stdin: each call returns the next chunk (bounded), nil at the end. Matches the SSH layer's
/// `ExecInput.producer`.
public typealias ChunkProducer = @Sendable () throws -> Data?

/// One command for a host's exec channel, with what to feed its stdin.
public struct RemoteStep: Sendable {
    /// What the step does.
    public enum Kind: Sendable, Equatable {
        /// Asks which blobs are missing (or whether the tree is already there); read its stdout.
        case probe
        /// Sends `count` missing blobs (`contentBytes` of file content) into the host's cache.
        case sendBlobs(count: Int, contentBytes: Int64)
        /// Builds the tree from the cache; exit `ContextCache.missingBlobStatus` means probe again.
        case materialise
    }

    /// What the step does.
    public let kind: Kind
    /// The remote command line (POSIX sh, every value quoted).
    public let command: String
    /// The exact number of bytes the producer yields (for progress and reports).
    public let inputBytes: Int64
    private let makeProducer: @Sendable () -> ChunkProducer

    init(kind: Kind, command: String, inputBytes: Int64, makeProducer: @escaping @Sendable () -> ChunkProducer) {
        self.kind = kind
        self.command = command
        self.inputBytes = inputBytes
        self.makeProducer = makeProducer
    }

    /// A fresh stdin producer, from the first byte: call once per run of the step (a retry needs a new one).
    /// It reads local files lazily, on whatever thread pulls it.
    public func input() -> ChunkProducer { makeProducer() }
}

/// Upload-once as the SSH layer runs it: `probe`, then `steps(afterProbe:)` — nothing when the host already
/// has the tree, else send the missing blobs (when any) and materialise. Run each step's `command` on an
/// exec channel with `input()` as stdin; a step fails when its command exits non-zero. Afterwards the
/// engine's CONTEXT is `treePath`. A materialise exit of `ContextCache.missingBlobStatus` (a blob was
/// collected meanwhile) means: start again from `probe`.
public struct ContextUploadPlan: Sendable {
    /// The context to upload.
    public let context: PreparedContext
    /// The host's cache.
    public let cache: ContextCache
    /// The largest chunk a producer returns.
    public let chunkSize: Int

    /// A plan for `context` into `cache`; producers return chunks of at most `chunkSize` bytes.
    public init(context: PreparedContext, cache: ContextCache, chunkSize: Int = TarStream.defaultChunkSize) {
        self.context = context
        self.cache = cache
        self.chunkSize = max(512, chunkSize)
    }

    /// Where the tree is on the host once the steps succeeded: the engine's CONTEXT argument.
    public var treePath: String { cache.treePath(context.manifest) }

    /// Step 1: its stdout goes to `steps(afterProbe:)`.
    public var probe: RemoteStep {
        let bytes = Data(cache.probeInput(context.manifest).utf8)
        let size = chunkSize
        return RemoteStep(kind: .probe, command: cache.probeCommand(context.manifest), inputBytes: Int64(bytes.count)) {
            let offset = Locked(0)
            return {
                offset.withLock { start in
                    guard start < bytes.count else { return nil }
                    let end = min(bytes.count, start + size)
                    defer { start = end }
                    return bytes.subdata(in: start..<end)
                }
            }
        }
    }

    /// The steps after a probe that printed `stdout` (and exited 0); nil when the answer was cut short
    /// (the host was lost: retry or fail over).
    public func steps(afterProbe stdout: String) -> [RemoteStep]? {
        ContextCache.parseProbe(stdout).map(steps(after:))
    }

    /// The steps after a probe answer: [] when the tree is present, else send-blobs (when any are missing)
    /// and materialise.
    public func steps(after probe: ContextCache.ProbeResult) -> [RemoteStep] {
        guard case .missing(let hexes) = probe else { return [] }
        var steps: [RemoteStep] = []
        let missing = Set(hexes)
        if !missing.isEmpty {
            let members = TarStream.blobMembers(missing, of: context)
            let content = members.reduce(Int64(0)) { total, m in
                if case .file(_, let size, _) = m.body { return total + size }
                return total
            }
            steps.append(step(.sendBlobs(count: members.count, contentBytes: content),
                              command: cache.receiveBlobsCommand(), members: members))
        }
        steps.append(step(.materialise, command: cache.materialiseCommand(), members: cache.materialiseMembers(context.manifest)))
        return steps
    }

    /// Bytes of file content the steps after `probe` send: 0 for an unchanged context.
    public func contentBytes(after probe: ContextCache.ProbeResult) -> Int64 {
        guard case .missing(let hexes) = probe else { return 0 }
        return context.manifest.missing(present: Set(context.manifest.blobDigests).subtracting(hexes)).reduce(0) { $0 + $1.size }
    }

    private func step(_ kind: RemoteStep.Kind, command: String, members: [TarMember]) -> RemoteStep {
        let size = chunkSize
        return RemoteStep(kind: kind, command: command, inputBytes: TarStream.archiveSize(members)) {
            let stream = Locked(TarStream(members: members, chunkSize: size))
            return { try stream.withLock { try $0.nextData() } }
        }
    }
}

/// A value guarded by a lock, so a `@Sendable` producer can own a non-Sendable stream; the SSH layer
/// pulls from one thread at a time, the lock only makes that safe to state.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
