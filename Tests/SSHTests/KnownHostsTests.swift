import Foundation
import Support
import Testing
@testable import SSH

@Suite struct KnownHostsParsing {
    let keyA = Array("key-a-bytes".utf8)
    let keyB = Array("key-b-bytes".utf8)
    var a64: String { Data(keyA).base64EncodedString() }
    var b64: String { Data(keyB).base64EncodedString() }

    @Test func plainEntryOnNonStandardPortUsesBracketForm() {
        let kh = KnownHosts(contents: "[10.0.0.1]:2222 ssh-ed25519 \(a64)\n10.0.0.1 ssh-ed25519 \(b64)\n")
        #expect(kh.verdict(host: "10.0.0.1", port: 2222, keyType: "ssh-ed25519", key: keyA) == .known(line: 1))
        #expect(kh.verdict(host: "10.0.0.1", port: 22, keyType: "ssh-ed25519", key: keyB) == .known(line: 2))
        #expect(kh.verdict(host: "10.0.0.1", port: 22, keyType: "ssh-ed25519", key: keyA) == .changed(line: 2))
    }

    @Test func hashedEntryMatchesOnlyItsHost() {
        let salt = Array("0123456789abcdefghij".utf8)
        let hash = Hashing.hmacSHA1(key: salt, message: Array("[build-1]:2222".utf8))
        let line = "|1|\(Data(salt).base64EncodedString())|\(Data(hash).base64EncodedString()) ssh-ed25519 \(a64)"
        let kh = KnownHosts(contents: line)
        #expect(kh.verdict(host: "build-1", port: 2222, keyType: "ssh-ed25519", key: keyA) == .known(line: 1))
        #expect(kh.verdict(host: "build-2", port: 2222, keyType: "ssh-ed25519", key: keyA) == .unknown)
    }

    @Test func hashedEntryFromSshKeygenMatches() throws {
        // ssh-keygen -H writes the hashed form OpenSSH itself uses; our HMAC-SHA1 must agree with it.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kh-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/known_hosts"
        try "[10.1.2.3]:2200 ssh-ed25519 \(a64)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        p.arguments = ["-H", "-f", file]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let hashed = try String(contentsOfFile: file, encoding: .utf8)
        #expect(hashed.hasPrefix("|1|"))
        let kh = KnownHosts(contents: hashed)
        #expect(kh.verdict(host: "10.1.2.3", port: 2200, keyType: "ssh-ed25519", key: keyA) == .known(line: 1))
    }

    @Test func wildcardAndNegatedPatterns() {
        let kh = KnownHosts(contents: "*.build.internal,!bad.build.internal ssh-ed25519 \(a64)")
        #expect(kh.verdict(host: "x1.build.internal", port: 22, keyType: "ssh-ed25519", key: keyA) == .known(line: 1))
        #expect(kh.verdict(host: "bad.build.internal", port: 22, keyType: "ssh-ed25519", key: keyA) == .unknown)
        #expect(KnownHosts.matches(hostField: "b?ild", name: "build"))
        #expect(!KnownHosts.matches(hostField: "b?ild", name: "bild"))
    }

    @Test func revokedKeyWinsOverAPlainEntry() {
        let kh = KnownHosts(contents: "h ssh-ed25519 \(a64)\n@revoked * ssh-ed25519 \(a64)\n")
        #expect(kh.verdict(host: "h", port: 22, keyType: "ssh-ed25519", key: keyA) == .revoked(line: 2))
    }

    @Test func severalKeyTypesPerHost() {
        let kh = KnownHosts(contents: "h ecdsa-sha2-nistp256 \(b64)\nh ssh-ed25519 \(a64)\n")
        #expect(kh.verdict(host: "h", port: 22, keyType: "ssh-ed25519", key: keyA) == .known(line: 2))
        #expect(kh.verdict(host: "h", port: 22, keyType: "ecdsa-sha2-nistp256", key: keyB) == .known(line: 1))
        #expect(kh.verdict(host: "h", port: 22, keyType: "ssh-rsa", key: keyB) == .otherTypesKnown(["ecdsa-sha2-nistp256", "ssh-ed25519"]))
        #expect(kh.keyTypes(host: "h", port: 22) == ["ecdsa-sha2-nistp256", "ssh-ed25519"])
    }

    @Test func unparsableLinesAreSkippedNotFatal() {
        let kh = KnownHosts(contents: "# comment\n\ngarbage\n@weird h ssh-ed25519 \(a64)\nh ssh-ed25519 \(a64)\n")
        #expect(kh.invalidLines == [3, 4])
        #expect(kh.verdict(host: "h", port: 22, keyType: "ssh-ed25519", key: keyA) == .known(line: 5))
    }

    @Test func certAuthorityLinesDoNotVouchForAHost() {
        let kh = KnownHosts(contents: "@cert-authority h ssh-ed25519 \(a64)")
        #expect(kh.verdict(host: "h", port: 22, keyType: "ssh-ed25519", key: keyA) == .unknown)
    }

    @Test func fingerprintEqualsSshKeygen() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fp-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func sh(_ cmd: String) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", cmd]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            p.waitUntilExit()
            return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
        _ = try sh("ssh-keygen -q -t ed25519 -N '' -f \(dir)/k")
        let pub = try String(contentsOfFile: dir + "/k.pub", encoding: .utf8).split(separator: " ")
        let expected = try sh("ssh-keygen -lf \(dir)/k.pub").split(separator: " ")[1]
        #expect(sshFingerprint([UInt8](Data(base64Encoded: String(pub[1]))!)) == String(expected))
    }

    @Test func acceptNewLineIsOpenSSHFormat() {
        #expect(KnownHosts.line(host: "10.0.0.1", port: 2222, keyType: "ssh-ed25519", key: keyA) == "[10.0.0.1]:2222 ssh-ed25519 \(a64)")
        #expect(KnownHosts.line(host: "h", port: 22, keyType: "ssh-ed25519", key: keyA) == "h ssh-ed25519 \(a64)")
    }
}
