import Foundation
import Support
import Testing

@Suite struct ShellQuoting {
    static let hostile = [
        "", "plain", "with space", "it's", "'", "''", "\"q\"", "$(touch /tmp/pwned)", "`id`", "a;b|c&d", "\\", "\n", "tab\there",
        "*", "~", "-n", "${HOME}", "!event", "#comment", "ünïcödé ✓", "'; rm -rf / #", "$'\\x41'",
    ]

    /// Every string reaches a real /bin/sh as exactly one literal word.
    @Test(arguments: hostile) func quotedWordReachesShellLiterally(_ word: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "printf '%s' " + Shell.quote(word) + "; printf '|%s' \"$#\"", "sh"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text == word + "|0")
    }

    @Test func joinKeepsWordBoundaries() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "for a in " + Shell.join(["a b", "", "c'd"]) + "; do printf '[%s]' \"$a\"; done"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "[a b][][c'd]")
    }

    @Test func safeWordsStayUnquoted() {
        #expect(Shell.quote("/var/tmp/coordinator") == "/var/tmp/coordinator")
        #expect(Shell.quote("a b") == "'a b'")
    }

    @Test func sha256KnownVector() {
        #expect(Hashing.sha256Hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let s = SHA256Stream()
        s.update(Data("a".utf8)); s.update(Data("bc".utf8))
        #expect(Hashing.hex(s.finish()) == Hashing.sha256Hex(Data("abc".utf8)))
    }

    @Test func hmacSHA1KnownVector() {
        // RFC 2202 test case 2.
        let mac = Hashing.hmacSHA1(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Hashing.hex(mac) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    }
}
