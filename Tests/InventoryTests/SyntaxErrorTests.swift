// Malformed JSON: every refusal carries the 1-based line:column of the offending character and the path it was in.
import Foundation
import Testing
@testable import Inventory

@Suite struct SyntaxErrorTests {
    /// Loads `json` and checks the error against an exact line, column, path and message fragment.
    private func expectSyntaxError(_ json: String, line: Int, column: Int, path: String = "", message: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        expectSyntaxError(Data(json.utf8), line: line, column: column, path: path, message: message,
                          sourceLocation: sourceLocation)
    }

    private func expectSyntaxError(_ data: Data, line: Int, column: Int, path: String = "", message: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        guard let error = loadError(data, sourceLocation: sourceLocation) else { return }
        #expect(error.file == "inv.json", sourceLocation: sourceLocation)
        #expect(error.line == line && error.column == column,
                "at \(error.line ?? 0):\(error.column ?? 0), expected \(line):\(column)", sourceLocation: sourceLocation)
        #expect(error.path == path, sourceLocation: sourceLocation)
        #expect(error.message.contains(message), "message: \(error.message)", sourceLocation: sourceLocation)
    }

    @Test func missingCommaBetweenMembersPointsAtTheNextKey() {
        expectSyntaxError("""
            {
              "hosts": [
                {"name": "a" "address": "h"}
              ]
            }
            """, line: 3, column: 18, path: "hosts[0]", message: "unexpected '\"'; expected ',' or '}'")
    }

    @Test func trailingCommaInAnArrayIsRefused() {
        expectSyntaxError(#"{"hosts": [1,]}"#, line: 1, column: 14, path: "hosts", message: "trailing comma before ']'")
    }

    @Test func trailingCommaInAnObjectIsRefused() {
        expectSyntaxError(#"{"defaults": {"port": 22,}}"#, line: 1, column: 26, path: "defaults",
                          message: "trailing comma before '}'")
    }

    @Test func stringRunningToTheEndOfTheFileIsUnterminated() {
        expectSyntaxError(#"{"hosts": [{"name": "a}]}"#, line: 1, column: 26, path: "hosts[0].name",
                          message: "unterminated string (it starts at 1:21)")
    }

    @Test func stringRunningToTheEndOfTheLineIsUnterminated() {
        expectSyntaxError("{\"hosts\": [{\"name\": \"a\n}]}", line: 1, column: 23, path: "hosts[0].name",
                          message: "unterminated string (it starts at 1:21)")
    }

    @Test func emptyFileIsRefused() {
        expectSyntaxError("", line: 1, column: 1, message: "the file is empty")
    }

    @Test func whitespaceOnlyFileIsRefusedAtItsEnd() {
        expectSyntaxError("\n\n  ", line: 3, column: 3, message: "the file is empty")
    }

    @Test func misspelledLiteralIsRefused() {
        expectSyntaxError(#"{"hosts": tru}"#, line: 1, column: 11, path: "hosts", message: "invalid literal; expected true")
    }

    @Test func pythonStyleLiteralIsRefused() {
        expectSyntaxError(#"{"hosts": True}"#, line: 1, column: 11, path: "hosts", message: "unexpected 'T'; expected a value")
    }

    @Test func numberWithALeadingZeroIsRefused() {
        expectSyntaxError(#"{"defaults": {"port": 022}}"#, line: 1, column: 23, path: "defaults.port",
                          message: "leading zeros")
    }

    @Test(arguments: [("-", 24, "expected a digit after '-'"), ("1.", 25, "expected a digit after '.'"),
                      ("1e", 25, "expected a digit in the exponent"), (".5", 23, "unexpected '.'; expected a value")])
    func incompleteNumberIsRefused(text: String, column: Int, message: String) {
        expectSyntaxError(#"{"defaults": {"port": "# + text + "}}", line: 1, column: column, path: "defaults.port",
                          message: message)
    }

    @Test func numberTooLargeForADoubleIsRefused() {
        expectSyntaxError(#"{"defaults": {"port": 1e999}}"#, line: 1, column: 23, path: "defaults.port",
                          message: "number 1e999 is out of range")
    }

    @Test func contentAfterTheDocumentIsRefused() {
        expectSyntaxError(#"{"hosts": []} x"#, line: 1, column: 15, message: "unexpected 'x' after the end of the JSON document")
    }

    @Test func secondDocumentIsRefused() {
        expectSyntaxError("{}{}", line: 1, column: 3, message: "after the end of the JSON document")
    }

    @Test func lineCommentIsRefused() {
        expectSyntaxError("{\n  // the fleet\n  \"hosts\": []\n}", line: 2, column: 3, message: "comments are not allowed")
    }

    @Test func blockCommentIsRefused() {
        expectSyntaxError(#"{"hosts": /* none */ []}"#, line: 1, column: 11, path: "hosts", message: "comments are not allowed")
    }

    @Test func unquotedKeyIsRefused() {
        expectSyntaxError("{hosts: []}", line: 1, column: 2, message: "unexpected 'h'; expected a key in double quotes")
    }

    @Test func singleQuotedKeyIsRefused() {
        expectSyntaxError("{'hosts': []}", line: 1, column: 2, message: "expected a key in double quotes")
    }

    @Test func missingColonIsRefusedAndATabIsOneColumn() {
        expectSyntaxError("{\t\"hosts\" []}", line: 1, column: 11, message: "unexpected '['; expected ':' after the key")
    }

    @Test func endOfFileInsideAnArrayIsRefused() {
        expectSyntaxError(#"{"hosts": ["#, line: 1, column: 12, path: "hosts[0]", message: "unexpected end of file; expected a value")
    }

    @Test func endOfFileBeforeTheClosingBraceIsRefused() {
        expectSyntaxError(#"{"hosts": []"#, line: 1, column: 13, message: "unexpected end of file; expected ',' or '}'")
    }

    @Test func invalidEscapeIsRefused() {
        expectSyntaxError(#"{"hosts": "\q"}"#, line: 1, column: 13, path: "hosts", message: #"invalid escape '\q'"#)
    }

    @Test func rawControlCharacterInAStringIsRefused() {
        expectSyntaxError("{\"hosts\": \"a\tb\"}", line: 1, column: 13, path: "hosts", message: "control character U+0009")
    }

    @Test func unpairedSurrogateEscapeIsRefused() {
        expectSyntaxError(#"{"hosts": "\ud83d x"}"#, line: 1, column: 18, path: "hosts", message: "unpaired UTF-16 surrogate")
    }

    @Test func invalidUTF8IsRefusedAtTheFirstBadByte() {
        let data = Data(#"{"hosts": [{"name": ""#.utf8) + Data([0xFF]) + Data(#""}]}"#.utf8)
        expectSyntaxError(data, line: 1, column: 22, message: "not valid UTF-8")
    }

    @Test func columnsCountCharactersNotBytes() {
        expectSyntaxError(#"{"hosts": [{"name": "é" "address": "h"}]}"#, line: 1, column: 25, path: "hosts[0]",
                          message: "expected ',' or '}'")
    }

    @Test func windowsLineEndingsCountOneLineEach() {
        expectSyntaxError("{\r\n  \"hosts\": [\r\n    1 2\r\n  ]\r\n}", line: 3, column: 7, path: "hosts",
                          message: "expected ',' or ']'")
    }

    @Test func absurdNestingIsRefusedWithoutCrashing() {
        expectSyntaxError(#"{"hosts": "# + String(repeating: "[", count: 100_000), line: 1, column: 138,
                          path: "hosts" + String(repeating: "[0]", count: 127), message: "nesting deeper than 128 levels")
    }

    // MARK: Duplicate keys, which JSONSerialization silently merges

    @Test func duplicateKeyInDefaultsPointsAtTheSecondAndNamesTheFirst() {
        expectSyntaxError("""
            {
              "defaults": {
                "port": 22,
                "port": 2222
              },
              "hosts": []
            }
            """, line: 4, column: 5, path: "defaults.port", message: #"duplicate key "port" (first at 3:5)"#)
    }

    @Test func duplicateTopLevelKeyIsRefused() {
        expectSyntaxError(#"{"hosts": [], "hosts": []}"#, line: 1, column: 15, path: "hosts",
                          message: #"duplicate key "hosts" (first at 1:2)"#)
    }

    @Test func duplicateKeyInAHostIsRefused() {
        expectSyntaxError(#"{"hosts": [{"name": "a", "name": "b"}]}"#, line: 1, column: 26, path: "hosts[0].name",
                          message: #"duplicate key "name""#)
    }

    @Test func duplicateRegistryIsRefused() {
        expectSyntaxError(#"{"registries": {"r:1": {}, "r:1": {}}}"#, line: 1, column: 28, path: #"registries["r:1"]"#,
                          message: #"duplicate key "r:1""#)
    }
}
