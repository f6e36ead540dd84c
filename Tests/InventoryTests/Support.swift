// Helpers shared by the inventory tests: load JSON text, catch the one InventoryError, find the repository.
import Foundation
import Testing
@testable import Inventory

/// The folder inline inventories pretend to live in.
let inventoryFolder = "/etc/fleet"

/// Loads `json` as if it were /etc/fleet/inv.json.
func fleet(_ json: String) throws -> Fleet {
    try Fleet(data: Data(json.utf8), file: "inv.json", baseDirectory: inventoryFolder)
}

/// The error loading `json` throws; records an issue when it loads or throws something else.
func loadError(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) -> InventoryError? {
    loadError(Data(json.utf8), sourceLocation: sourceLocation)
}

/// The error loading `data` throws; records an issue when it loads or throws something else.
func loadError(_ data: Data, sourceLocation: SourceLocation = #_sourceLocation) -> InventoryError? {
    do {
        let loaded = try Fleet(data: data, file: "inv.json", baseDirectory: inventoryFolder)
        Issue.record("expected an InventoryError, but it loaded \(loaded.hosts.count) host(s)", sourceLocation: sourceLocation)
    } catch let error as InventoryError {
        return error
    } catch {
        Issue.record("expected an InventoryError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A one-host inventory whose host object has `fields` added after name, address and platforms.
func oneHost(_ fields: String = "", platforms: String = #"["linux/amd64"]"#) -> String {
    #"{"hosts": [{"name": "a", "address": "10.0.0.1", "platforms": \#(platforms)\#(fields.isEmpty ? "" : ", " + fields)}]}"#
}

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// `$HOME` as `~` expands it.
let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()

/// The 1-based line:column of the `occurrence`th `needle` in `text`, columns in Unicode scalars.
func position(of needle: String, in text: String, occurrence: Int = 1) -> (line: Int, column: Int)? {
    var searchFrom = text.startIndex
    var found: Range<String.Index>?
    for _ in 0..<occurrence {
        guard let range = text.range(of: needle, range: searchFrom..<text.endIndex) else { return nil }
        found = range
        searchFrom = range.upperBound
    }
    guard let start = found?.lowerBound else { return nil }
    let before = text[..<start]
    let lineStart = before.lastIndex(of: "\n").map { before.index(after: $0) } ?? before.startIndex
    return (before.filter { $0 == "\n" }.count + 1, text[lineStart..<start].unicodeScalars.count + 1)
}

/// Loads `json` and checks the error's path, that it points at `needle`, and that its message holds `message`.
func expectError(_ json: String, path: String, at needle: String, occurrence: Int = 1, message: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = loadError(json, sourceLocation: sourceLocation) else { return }
    let expected = position(of: needle, in: json, occurrence: occurrence)
    #expect(expected != nil, "test bug: \(needle) is not in the JSON", sourceLocation: sourceLocation)
    #expect(error.file == "inv.json", sourceLocation: sourceLocation)
    #expect(error.path == path, sourceLocation: sourceLocation)
    #expect(error.line == expected?.line && error.column == expected?.column,
            "at \(error.line ?? 0):\(error.column ?? 0), expected \(expected?.line ?? 0):\(expected?.column ?? 0)",
            sourceLocation: sourceLocation)
    #expect(error.message.contains(message), "message: \(error.message)", sourceLocation: sourceLocation)
}
