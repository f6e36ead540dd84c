import Foundation
import Support

/// The host side of upload-once, as shell text: a content-addressed cache under `workDir/cache` holding
/// blobs (`blobs/sha256/<hex>`, mode 0644, plus copies `blobs/mode/<mode>/<hex>` for other modes) and
/// materialised trees (`contexts/<hex>` → `contexts/<hex>.d.<pid>`, built from hard links to the blobs by
/// one `tar -x`), with work folders under `incoming/`. Every script is POSIX sh (plus `ln -n`, `readlink`,
/// `touch -h`, `find … -exec {} +` and `xargs`, which GNU, busybox and BSD all have); user data travels on
/// stdin or Shell-quoted, never unquoted on a command line.
public struct ContextCache: Sendable, Equatable {
    /// The cache folder on the host.
    public let directory: String

    /// The cache of a host whose inventory `workDir` is `workDir`.
    public init(workDir: String) { directory = workDir.hasSuffix("/") ? workDir + "cache" : workDir + "/cache" }

    /// A cache at exactly `directory`.
    public init(directory: String) { self.directory = directory }

    /// Where the materialised tree of `manifest` lives on the host: the CONTEXT argument for the engine.
    public func treePath(_ manifest: ContextManifest) -> String { directory + "/contexts/" + manifest.digestHex }

    // MARK: Probe

    /// What the host said to a probe.
    public enum ProbeResult: Sendable, Equatable {
        /// The tree is already materialised: send nothing.
        case treePresent
        /// These blob digests (hex) are missing; send them, then materialise.
        case missing([String])
    }

    /// Command whose stdin is `probeInput(manifest)`: prints `present` when the tree exists (and marks it
    /// used), else the missing blob digests, then `end`.
    public func probeCommand(_ manifest: ContextManifest) -> String {
        let script = """
            set -eu; c=$1; h=$2
            if [ -d "$c/contexts/$h" ]; then touch -h "$c/contexts/$h" 2>/dev/null || :; echo present; exit 0; fi
            while IFS= read -r d; do
              case $d in ''|*[!0-9a-f]*) continue;; esac
              [ -f "$c/blobs/sha256/$d" ] || echo "$d"
            done
            echo end
            """
        return Shell.join(["sh", "-c", script, "sh", directory, manifest.digestHex])
    }

    /// The blob digests, one per line, for `probeCommand`'s stdin.
    public func probeInput(_ manifest: ContextManifest) -> String {
        manifest.blobDigests.map { $0 + "\n" }.joined()
    }

    /// Reads a probe's output; nil when it is cut short (the host died mid-answer).
    public static func parseProbe(_ output: String) -> ProbeResult? {
        let lines = output.split(separator: "\n").map(String.init)
        if lines == ["present"] { return .treePresent }
        guard lines.last == "end" else { return nil }
        return .missing(Array(lines.dropLast()))
    }

    // MARK: Blobs

    /// Command whose stdin is `TarStream(blobs:of:)`: unpacks into a private staging folder and renames each
    /// blob into place, so a cut-off upload never leaves a partial blob under a digest name.
    public func receiveBlobsCommand() -> String {
        let script = """
            set -eu; c=$1
            mkdir -p "$c/blobs/sha256" "$c/incoming"
            t="$c/incoming/$$"; rm -rf "$t"; mkdir "$t"; trap 'rm -rf "$t"' EXIT
            tar -x -f - -C "$t"
            [ -d "$t/blobs/sha256" ] || exit 0
            TZ=UTC0 find "$t/blobs/sha256" -type f -exec touch -t \(Self.touchTime) {} +
            find "$t/blobs/sha256" -type f -exec sh -c 'mv -f "$@" "$0"' "$c/blobs/sha256" {} +
            """
        return Shell.join(["sh", "-c", script, "sh", directory])
    }

    // MARK: Materialise

    /// Exit status of `materialiseCommand` when a blob is missing (collected since the probe): probe again.
    public static let missingBlobStatus: Int32 = 3

    /// Command whose stdin is `materialiseInput(manifest)`: it unpacks that small tar (`run.sh` plus
    /// `links.tar`) into a private work folder under `incoming/` and runs `run.sh`, which checks every blob
    /// is cached (exit 3 before building anything otherwise), makes the per-mode copies a batch at a time,
    /// then builds the whole tree with ONE `tar -x` of hard links into the cache, so no process is started per
    /// file. Links refused (EMLINK, another file system) fall back to copies. The tree is published
    /// atomically under `treePath`; the work folder is always removed. Needs only POSIX sh, tar (GNU or
    /// busybox), find, xargs, cp, ln, mv, touch, chmod.
    public func materialiseCommand() -> String {
        let script = """
            set -eu; mkdir -p "$1/incoming" "$1/contexts"; c=$(CDPATH= cd -- "$1" && pwd)
            w="$c/incoming/m.$$"; s=
            trap 'rm -rf "$w" ${s:+"$s"} 2>/dev/null || { chmod -R u+w "$w" ${s:+"$s"}; rm -rf "$w" ${s:+"$s"}; }' EXIT
            rm -rf "$w"; mkdir "$w"
            tar -x -f - -C "$w"
            . "$w/run.sh"
            """
        return Shell.join(["sh", "-c", script, "sh", directory])
    }

    /// The stdin of `materialiseCommand`: a tar of `run.sh` and `links.tar` (folders, symlinks and hard
    /// links into the blob cache, rooted at `t/`), streamed in chunks of at most `chunkSize` bytes.
    public func materialiseInput(_ manifest: ContextManifest, chunkSize: Int = TarStream.defaultChunkSize) -> TarStream {
        TarStream(members: materialiseMembers(manifest), chunkSize: chunkSize)
    }

    /// The members of `materialiseInput` (their `TarStream.archiveSize` is its exact length).
    public func materialiseMembers(_ manifest: ContextManifest) -> [TarMember] {
        [TarMember(name: "run.sh", mode: 0o644, body: .data(Array(materialiseScript(manifest).utf8))),
         TarMember(name: "links.tar", mode: 0o644, body: .archive(Self.linkMembers(manifest)))]
    }

    /// Where a file's hard link points, relative to the cache's `blobs` folder: the blob itself for mode
    /// 0644, else its copy with that mode (an inode carries one mode, so each mode needs its own copy).
    static func blobPath(_ entry: ContextEntry) -> String {
        let hex = entry.digestHex ?? ""
        let mode = octal(entry.mode)
        return mode == "0644" ? "sha256/" + hex : "mode/" + mode + "/" + hex
    }

    /// Folders get owner rwx in the tar (so no tar, root or not, is locked out of a read-only folder while
    /// it works); `run.sh` sets the real mode afterwards.
    static func workingMode(_ mode: UInt32) -> UInt32 { (mode & 0o7777) | 0o700 }

    /// Folders whose real mode is not what `tar -x` (as root, or under umask 022) leaves them with.
    static func needsChmod(_ mode: UInt32) -> Bool { mode & 0o7777 != workingMode(mode) & 0o755 }

    /// `t/`, then every entry under `t/`: folders, hard links to `b/<blobPath>` (`b` is a symlink the script
    /// makes to the cache's blobs folder, so targets are relative, with no `..`, as every tar wants), symlinks.
    static func linkMembers(_ manifest: ContextManifest) -> [TarMember] {
        var members = [TarMember(name: "t", mode: 0o755, body: .directory)]
        members.reserveCapacity(manifest.entries.count + 1)
        for e in manifest.entries {
            let name = "t/" + e.path
            switch e.kind {
            case .directory: members.append(TarMember(name: name, mode: workingMode(e.mode), body: .directory))
            case .file: members.append(TarMember(name: name, mode: e.mode, body: .hardLink(target: "b/" + blobPath(e))))
            case .symlink: members.append(TarMember(name: name, mode: 0o777, body: .symlink(target: e.linkTarget ?? "")))
            }
        }
        return members
    }

    /// `run.sh`, sourced by `materialiseCommand` with `$c` (the cache, absolute), `$w` (the work folder,
    /// holding `links.tar`) and `$s` (what the exit trap removes besides `$w`) set.
    func materialiseScript(_ manifest: ContextManifest) -> String {
        var s = """
            H=\(manifest.digestHex); B="$c/blobs"; D="$c/contexts/$H"; T="$w/t"
            umask 022; TZ=UTC0; export TZ
            [ -d "$D" ] && exit 0
            m=0
            n() { for h; do [ -f "$B/sha256/$h" ] || { echo "missing blob sha256:$h" >&2; m=1; }; done; }

            """
        for batch in Self.wordBatches(manifest.blobDigests) { s += "n" + batch + "\n" }
        s += """
            [ "$m" = 0 ] || exit \(Self.missingBlobStatus)
            p() {
              o=$1; shift; d="$B/mode/$o"; mkdir -p "$d"
              for h; do [ -f "$d/$h" ] || echo "$h"; done >"$w/need"
              [ -s "$w/need" ] || return 0
              rm -rf "$w/c"; mkdir "$w/c"
              (cd "$B/sha256" && xargs sh -c 'o=$1; d=$2; shift 2; cp -p -- "$@" "$0/" && cd "$0" && touch -t \(Self.touchTime) -- "$@" && chmod "$o" -- "$@" && mv -f -- "$@" "$d/"' "$w/c" "$o" "$d") <"$w/need"
            }

            """
        var byMode: [String: Set<String>] = [:]
        for e in manifest.entries where e.kind == .file && Self.octal(e.mode) != "0644" {
            byMode[Self.octal(e.mode), default: []].insert(e.digestHex ?? "")
        }
        // One call per mode (a function takes any number of words; xargs keeps each cp under ARG_MAX).
        for (mode, hexes) in byMode.sorted(by: { $0.key < $1.key }) {
            s += "p \(mode) " + hexes.sorted().joined(separator: " ") + "\n"
        }
        // Finishing: mtimes while every folder is still owner-rwx, then real folder modes deepest first.
        s += """
            fin() {
              S="$D.d.$$"; rm -rf "$S"; mv "$T" "$S"; s=$S; T=$S
              find "$T" -type l -exec touch -h -t \(Self.touchTime) {} + 2>/dev/null || :
              find "$T" -type d -exec touch -t \(Self.touchTime) {} +

            """
        let dirs = manifest.entries.filter { $0.kind == .directory }
        var byModeRuns: [(UInt32, [String])] = []
        for d in dirs.reversed() where Self.needsChmod(d.mode) {
            if byModeRuns.last?.0 == d.mode { byModeRuns[byModeRuns.count - 1].1.append(d.path) } else { byModeRuns.append((d.mode, [d.path])) }
        }
        for (mode, paths) in byModeRuns {
            for batch in Self.batches(paths) { s += "  chmod \(Self.octal(mode)) --" + batch + "\n" }
        }
        s += """
              ln -sn "$H.d.$$" "$D" 2>/dev/null && s= || [ -d "$D" ]
            }
            ln -s ../../blobs "$w/b"
            if tar -x -f "$w/links.tar" -C "$w" 2>"$w/err"; then fin; exit 0; fi
            echo "materialise: tar could not link every file ($(head -n 1 "$w/err")); copying the rest" >&2
            d() { [ -d "$T/$2" ] || mkdir -m "$1" -- "$T/$2"; }
            f() {
              [ -f "$T/$2" ] || ln -- "$B/$1" "$T/$2" 2>/dev/null || cp -p -- "$B/$1" "$T/$2" || {
                [ -f "$B/$1" ] && exit 1; echo "missing blob $1 (collected meanwhile)" >&2; exit \(Self.missingBlobStatus); }
            }
            l() { [ -h "$T/$2" ] || ln -s -- "$1" "$T/$2"; }
            [ -d "$T" ] || mkdir -m 0755 -- "$T"

            """
        // Only read when the tar failed: the same entries, each made by hand if it is not there.
        for e in manifest.entries {
            let path = Shell.quote(e.path)
            switch e.kind {
            case .directory: s += "d \(Self.octal(Self.workingMode(e.mode))) \(path)\n"
            case .file: s += "f \(Self.blobPath(e)) \(path)\n"
            case .symlink: s += "l \(Shell.quote(e.linkTarget ?? "")) \(path)\n"
            }
        }
        s += "fin\n"
        return s
    }

    // MARK: Garbage collection

    /// Command that removes cached trees beyond the `keep` most recently used or unused for more than
    /// `days` days, half-built trees and work folders older than a day, and blobs and mode copies no tree
    /// links to (unchanged for `days`). A tree named in a run folder's `.context` file under `runs` (a build
    /// on this host that may still read it, of this coordinator or another) is never removed.
    public func collectGarbageCommand(keep: Int, days: Int, runs: String? = nil) -> String {
        let script = """
            set -eu; c=$1; keep=$2; days=$3; runs=${4:-}
            inuse() { [ -n "$runs" ] && cat "$runs"/*/.context 2>/dev/null | grep -qxF "$1"; }
            r() { rm -rf "$@" 2>/dev/null || { chmod -R u+w "$@" 2>/dev/null || :; rm -rf "$@"; }; }
            for t in "$c/incoming"/*; do
              [ -e "$t" ] && [ -n "$(find "$t" -prune -mtime +0)" ] && r "$t"
            done
            [ -d "$c/contexts" ] || exit 0
            cd "$c/contexts"; i=0
            for h in $(ls -t); do
              case $h in *.*) continue;; esac
              [ -h "$h" ] || continue
              i=$((i+1))
              if { [ "$i" -gt "$keep" ] || [ -n "$(find "$h" -prune -mtime +"$days")" ]; } && ! inuse "$h"; then
                t=$(readlink "$h"); rm -f "$h"; r "./$t"
              fi
            done
            for t in *.d.*; do
              [ -d "$t" ] || continue
              [ "$(readlink "${t%%.d.*}" 2>/dev/null || :)" = "$t" ] && continue
              [ -n "$(find "$t" -prune -mtime +0)" ] && r "./$t"
            done
            [ -d "$c/blobs" ] && find "$c/blobs" -type f -links 1 -ctime +"$days" -exec rm -f {} +
            exit 0
            """
        return Shell.join(["sh", "-c", script, "sh", directory, String(keep), String(days)] + (runs.map { [$0] } ?? []))
    }

    /// The name `collectGarbageCommand` looks for in a run folder's `.context` file.
    public func inUseName(_ manifest: ContextManifest) -> String { manifest.digestHex }

    // MARK: Helpers

    /// `TarStream.modificationTime` as `touch -t` wants it (UTC).
    static let touchTime: String = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMddHHmm.ss"
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(TarStream.modificationTime)))
    }()

    static func octal(_ mode: UInt32) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// ` w1 w2…` (words that need no quoting, e.g. hex digests) in lines of a bounded length.
    static func wordBatches(_ words: [String], limit: Int = 4096) -> [String] {
        var out: [String] = []
        var current = ""
        for w in words {
            if !current.isEmpty && current.utf8.count + w.utf8.count + 1 > limit { out.append(current); current = "" }
            current += " " + w
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// ` "$T"/'p1' "$T"/'p2'…` in groups small enough for any ARG_MAX.
    static func batches(_ paths: [String], limit: Int = 32 * 1024) -> [String] {
        var out: [String] = []
        var current = ""
        for p in paths {
            let word = " \"$T\"/" + Shell.quote(p)
            if !current.isEmpty && current.utf8.count + word.utf8.count > limit { out.append(current); current = "" }
            current += word
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}
