import Foundation
import Support

/// The host side of upload-once, as shell text: a content-addressed cache under `workDir/cache` holding
/// blobs (`blobs/sha256/<hex>`, mode 0644, plus `<hex>.<mode>` copies for other modes) and materialised
/// trees (`contexts/<hex>` → `contexts/<hex>.d.<pid>`, built from hard links to the blobs). Every script
/// is POSIX sh (plus `ln -n`, `readlink` and `touch -h`, which GNU, busybox and BSD all have); user data
/// travels on stdin or Shell-quoted, never unquoted on a command line.
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

    /// Command for `materialiseScript`, which travels on its stdin.
    public static let materialiseCommand = "sh -s"

    /// The script that builds the tree of `manifest` from cached blobs: folders, hard-linked files (copied
    /// when a link is refused), symlinks, modes, a fixed mtime; it is published atomically under
    /// `treePath`, and a missing blob fails it (exit 3) before anything is built.
    public func materialiseScript(_ manifest: ContextManifest) -> String {
        var s = """
            set -eu
            umask 022
            TZ=UTC0; export TZ
            C=\(Shell.quote(directory)); H=\(manifest.digestHex)
            B="$C/blobs/sha256"; D="$C/contexts/$H"
            [ -d "$D" ] && exit 0
            mkdir -p "$C/contexts"
            T="$D.d.$$"; rm -rf "$T"; mkdir "$T"
            trap '[ -h "$D" ] || rm -rf "$T"' EXIT
            m=0
            n() { [ -f "$B/$1" ] || { echo "missing blob sha256:$1" >&2; m=1; }; }
            f() {
              if [ "$2" = 0644 ]; then s="$B/$1"; else
                s="$B/$1.$2"
                [ -f "$s" ] || { cp "$B/$1" "$s.$$" && chmod "$2" "$s.$$" && touch -t \(Self.touchTime) "$s.$$" && mv -f "$s.$$" "$s"; }
              fi
              ln "$s" "$T/$3" 2>/dev/null || cp -p "$s" "$T/$3"
            }
            l() { ln -s -- "$1" "$T/$2"; }

            """
        for hex in manifest.blobDigests { s += "n \(hex)\n" }
        s += "[ \"$m\" = 0 ] || exit 3\n"
        let dirs = manifest.entries.filter { $0.kind == .directory }
        for batch in Self.batches(dirs.map(\.path)) { s += "mkdir --" + batch + "\n" }
        for e in manifest.entries {
            switch e.kind {
            case .file: s += "f \(e.digestHex ?? "") \(Self.octal(e.mode)) \(Shell.quote(e.path))\n"
            case .symlink: s += "l \(Shell.quote(e.linkTarget ?? "")) \(Shell.quote(e.path))\n"
            case .directory: break
            }
        }
        // Deepest first, so a read-only folder never blocks work below it.
        var byMode: [(UInt32, [String])] = []
        for d in dirs.reversed() {
            if byMode.last?.0 == d.mode { byMode[byMode.count - 1].1.append(d.path) } else { byMode.append((d.mode, [d.path])) }
        }
        for (mode, paths) in byMode {
            for batch in Self.batches(paths) { s += "chmod \(Self.octal(mode)) --" + batch + "\n" }
        }
        let links = manifest.entries.filter { $0.kind == .symlink }.map(\.path)
        for batch in Self.batches(links) { s += "touch -h -t \(Self.touchTime) --" + batch + " 2>/dev/null || :\n" }
        for batch in Self.batches(dirs.reversed().map(\.path)) { s += "touch -t \(Self.touchTime) --" + batch + "\n" }
        s += """
            chmod 0755 "$T"; touch -t \(Self.touchTime) "$T"
            ln -sn "$H.d.$$" "$D" 2>/dev/null || { rm -rf "$T"; [ -d "$D" ]; }

            """
        return s
    }

    // MARK: Garbage collection

    /// Command that removes cached trees beyond the `keep` most recently used or unused for more than
    /// `days` days, half-built trees older than a day, and blobs no tree links to (unchanged for `days`).
    public func collectGarbageCommand(keep: Int, days: Int) -> String {
        let script = """
            set -eu; c=$1; keep=$2; days=$3
            [ -d "$c/contexts" ] || exit 0
            cd "$c/contexts"; i=0
            for h in $(ls -t); do
              case $h in *.*) continue;; esac
              [ -h "$h" ] || continue
              i=$((i+1))
              if [ "$i" -gt "$keep" ] || [ -n "$(find "$h" -prune -mtime +"$days")" ]; then
                t=$(readlink "$h"); rm -f "$h"; rm -rf "./$t"
              fi
            done
            for t in *.d.*; do
              [ -d "$t" ] || continue
              [ "$(readlink "${t%%.d.*}" 2>/dev/null || :)" = "$t" ] && continue
              [ -n "$(find "$t" -prune -mtime +0)" ] && rm -rf "./$t"
            done
            [ -d "$c/blobs/sha256" ] && find "$c/blobs/sha256" -type f -links 1 -ctime +"$days" -exec rm -f {} +
            exit 0
            """
        return Shell.join(["sh", "-c", script, "sh", directory, String(keep), String(days)])
    }

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
