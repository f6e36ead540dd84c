// Inventory/inventory.schema.json and Inventory/examples/ against the loader: the schema must describe exactly
// what the loader accepts (apart from the cross-field rules it names in its description), and every example loads.
import Foundation
import Testing
@testable import Inventory

@Suite struct SchemaTests {
    let schema: [String: Any]

    init() throws {
        let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("Inventory/inventory.schema.json"))
        schema = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static let examples: [String] = {
        let folder = repositoryRoot.appendingPathComponent("Inventory/examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { folder.appendingPathComponent($0).path }
    }()

    // MARK: Examples

    @Test func theThreeExamplesExist() {
        #expect(SchemaTests.examples.map { ($0 as NSString).lastPathComponent }
            == ["all-fields.json", "minimal.json", "x86-and-graviton.json"])
    }

    @Test(arguments: SchemaTests.examples)
    func exampleLoadsAndSatisfiesTheSchema(path: String) throws {
        let fleet = try Fleet.load(path: path)
        #expect(!fleet.hosts.isEmpty)
        let document = try JSONParser.parse(Data(contentsOf: URL(fileURLWithPath: path)), file: path)
        #expect(SchemaCheck(root: schema).violation(of: document) == nil)
    }

    @Test func designExampleLoadsAsDesignSaysItShould() throws {
        let fleet = try Fleet.load(path: SchemaTests.examples.first { $0.hasSuffix("x86-and-graviton.json") }!)
        #expect(fleet.hosts.map(\.name) == ["x86-a", "graviton-a"])
        #expect(fleet.hosts.map { $0.platforms.map(\.description) } == [["linux/amd64"], ["linux/arm64"]])
        #expect(fleet.hosts.map(\.maxJobs) == [1, 2])
        #expect(fleet.hosts[1].labels == ["pool": "nightly"])
        #expect(fleet.hosts[0].identityFile == home + "/.ssh/id_ed25519")
        #expect(fleet.registries == ["127.0.0.1:5000": RegistrySettings(insecure: true)])
    }

    // MARK: Keys: schema and loader list the same ones

    /// The property names the schema lists for the object at `pointer` (`#/$defs/host`).
    private func schemaKeys(_ pointer: String) -> Set<String> {
        Set((SchemaCheck(root: schema).resolve(pointer)["properties"] as? [String: Any] ?? [:]).keys)
    }

    /// The keys the loader says it allows, read from its unknown-key message.
    private func loaderKeys(_ json: String) throws -> Set<String> {
        let error = try #require(loadError(json))
        let allowed = try #require(error.message.range(of: "allowed: "))
        return Set(error.message[allowed.upperBound...].components(separatedBy: ", "))
    }

    @Test func topLevelKeysMatch() throws {
        #expect(try loaderKeys(#"{"bogus": 1}"#) == schemaKeys("#"))
    }

    @Test func defaultsKeysMatch() throws {
        #expect(try loaderKeys(#"{"defaults": {"bogus": 1}, "hosts": []}"#) == schemaKeys("#/$defs/settings"))
    }

    @Test func hostKeysMatch() throws {
        #expect(try loaderKeys(#"{"hosts": [{"bogus": 1}]}"#) == schemaKeys("#/$defs/host"))
    }

    @Test func registryKeysMatch() throws {
        #expect(try loaderKeys(#"{"registries": {"r": {"bogus": 1}}, "hosts": []}"#) == schemaKeys("#/$defs/registry"))
    }

    @Test func hostSettingsAreExactlyTheDefaultsKeysPlusTheHostsOwn() {
        #expect(schemaKeys("#/$defs/host").subtracting(schemaKeys("#/$defs/settings"))
            == ["name", "address", "platforms", "labels"])
        #expect(schemaKeys("#/$defs/settings").isSubset(of: schemaKeys("#/$defs/host")))
    }

    @Test func allFieldsExampleUsesEveryKeyTheSchemaListsSoTheLoaderAcceptsThemAll() throws {
        let path = SchemaTests.examples.first { $0.hasSuffix("all-fields.json") }!
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let hosts = json["hosts"] as? [[String: Any]] ?? []
        let registries = json["registries"] as? [String: [String: Any]] ?? [:]
        #expect(Set(json.keys) == schemaKeys("#"))
        #expect(Set((json["defaults"] as? [String: Any] ?? [:]).keys) == schemaKeys("#/$defs/settings"))
        #expect(hosts.contains { Set($0.keys) == schemaKeys("#/$defs/host") })
        #expect(registries.values.contains { Set($0.keys) == schemaKeys("#/$defs/registry") })
        _ = try Fleet.load(path: path)
    }

    @Test func requiredHostKeysMatch() throws {
        let required = Set(SchemaCheck(root: schema).resolve("#/$defs/host")["required"] as? [String] ?? [])
        #expect(required == ["name", "address", "platforms"])
        #expect(Set(schema["required"] as? [String] ?? []) == ["hosts"])
        for key in required {
            var host: [String: Any] = ["name": "a", "address": "h", "platforms": ["amd64"]]
            host[key] = nil
            let data = try JSONSerialization.data(withJSONObject: ["hosts": [host]])
            #expect(loadError(data)?.message == "missing required key \"\(key)\"")
        }
    }

    @Test func everyObjectWithFixedKeysForbidsOtherKeys() {
        func walk(_ node: Any, _ where_: String) {
            if let object = node as? [String: Any] {
                if object["properties"] != nil {
                    #expect(object["additionalProperties"] as? Bool == false, "\(where_) allows unlisted keys")
                }
                for (key, value) in object { walk(value, where_ + "/" + key) }
            } else if let array = node as? [Any] {
                for (i, value) in array.enumerated() { walk(value, where_ + "/\(i)") }
            }
        }
        walk(schema, "#")
    }

    // MARK: Values: schema and loader agree document by document

    static let agreementCases: [(String, Bool)] = [
        (oneHost(), true),
        (#"{"hosts": []}"#, false),
        (#"{"defaults": {}}"#, false),
        (#"{"hosts": [{"name": "a", "address": "h"}]}"#, false),
        (oneHost(platforms: "[]"), false),
        (oneHost(platforms: #""amd64""#), false),
        (oneHost(#""port": 0"#), false), (oneHost(#""port": 1"#), true), (oneHost(#""port": 65535"#), true),
        (oneHost(#""port": 65536"#), false), (oneHost(#""port": 22.5"#), false), (oneHost(#""port": 22.0"#), true),
        (oneHost(#""port": "22""#), false),
        (oneHost(#""maxJobs": 0"#), false), (oneHost(#""maxJobs": 64"#), true), (oneHost(#""maxJobs": 1e19"#), false),
        (oneHost(#""keepaliveCountMax": 0"#), false), (oneHost(#""keepaliveCountMax": 1"#), true),
        (oneHost(#""connectTimeout": 0"#), false), (oneHost(#""connectTimeout": 0.01"#), true),
        (oneHost(#""keepaliveInterval": -1"#), false), (oneHost(#""keepaliveInterval": 30"#), true),
        (oneHost(#""hostKeyPolicy": "no""#), false), (oneHost(#""hostKeyPolicy": "accept-new""#), true),
        (oneHost(#""hostKeyPolicy": "YES""#), false),
        (oneHost(#""engine": "podman""#), true), (oneHost(#""engine": "Docker""#), false),
        (oneHost(#""credentials": "host""#), true), (oneHost(#""credentials": "none""#), false),
        (oneHost(#""workDir": "/w""#), true), (oneHost(#""workDir": "w""#), false), (oneHost(#""workDir": """#), false),
        (oneHost(#""user": """#), false), (oneHost(#""user": "root""#), true),
        (oneHost(#""identityFile": "~""#), true), (oneHost(#""identityFile": "~/k""#), true),
        (oneHost(#""identityFile": "~k""#), false), (oneHost(#""identityFile": """#), false),
        (oneHost(#""knownHosts": "kh""#), true), (oneHost(#""knownHosts": null"#), false),
        (oneHost(#""labels": {}"#), true), (oneHost(#""labels": {"a": 1}"#), false), (oneHost(#""labels": []"#), false),
        (oneHost(#""extra": 1"#), false),
        (#"{"hosts": [{"name": "", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"hosts": [{"name": "a", "address": "", "platforms": ["amd64"]}]}"#, false),
        (#"{"registries": {}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, true),
        (#"{"registries": {"r:5000": {"insecure": true}}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, true),
        (#"{"registries": {"r": {"insecure": 1}}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"registries": {"http://r": {}}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"registries": {"r 1": {}}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"registries": {"": {}}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"registries": [], "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"defaults": {"name": "a"}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"[]"#, false),
        (#"{"defaults": {"jump": "root@b:2022,gw"}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, true),
        (#"{"hosts": [{"name": "a", "address": "h", "platforms": ["amd64"], "jump": ["gw", "u@[::1]:22"]}]}"#, true),
        (#"{"defaults": {"jump": "none", "sshConfig": "cfg"}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, true),
        (#"{"defaults": {"jump": []}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, true),
        (#"{"defaults": {"jump": 5}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"defaults": {"jump": "a b"}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"defaults": {"jump": ["a,b"]}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"defaults": {"jump": [""]}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"defaults": {"sshConfig": ""}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
        (#"{"defaults": {"sshConfig": "~bob/cfg"}, "hosts": [{"name": "a", "address": "h", "platforms": ["amd64"]}]}"#, false),
    ]

    @Test(arguments: SchemaTests.agreementCases)
    func schemaAndLoaderGiveTheSameVerdict(json: String, valid: Bool) throws {
        let loads = (try? fleet(json)) != nil
        let document = try JSONParser.parse(Data(json.utf8), file: "inv.json")
        let violation = SchemaCheck(root: schema).violation(of: document)
        #expect(loads == valid)
        #expect((violation == nil) == valid, "schema: \(violation ?? "valid")")
    }

    @Test func schemaCheckUnderstandsEveryKeywordTheSchemaUses() {
        #expect(SchemaCheck(root: schema).unknownKeywords(in: schema).isEmpty)
    }
}

/// Just enough of JSON Schema 2020-12 to check inventories against Inventory/inventory.schema.json; it
/// refuses to pass a document when the schema uses a keyword it does not know (see `unknownKeywords`).
struct SchemaCheck {
    let root: [String: Any]

    static let keywords: Set<String> = [
        "$schema", "$id", "$defs", "$ref", "title", "description", "type", "enum", "properties", "required",
        "additionalProperties", "propertyNames", "items", "minItems", "minLength", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "not", "anyOf",
    ]

    /// The object a `#/…` JSON pointer names.
    func resolve(_ pointer: String) -> [String: Any] {
        var node: Any = root
        for part in pointer.split(separator: "/").dropFirst() { node = (node as? [String: Any])?[String(part)] as Any }
        return node as? [String: Any] ?? [:]
    }

    /// Schema keywords this checker would silently ignore.
    func unknownKeywords(in node: Any, inProperties: Bool = false) -> [String] {
        if let array = node as? [Any] { return array.flatMap { unknownKeywords(in: $0) } }
        guard let object = node as? [String: Any] else { return [] }
        return object.flatMap { key, value -> [String] in
            let here = inProperties || Self.keywords.contains(key) ? [] : [key]
            if key == "enum" || key == "required" { return here }
            return here + unknownKeywords(in: value, inProperties: key == "properties" || key == "$defs")
        }
    }

    /// The first violation of the schema by `value`, or nil.
    func violation(of value: JSONValue) -> String? { check(value, root, "") }

    private func check(_ value: JSONValue, _ schema: [String: Any], _ path: String) -> String? {
        if let ref = schema["$ref"] as? String, let problem = check(value, resolve(ref), path) { return problem }
        if let not = schema["not"] as? [String: Any], check(value, not, path) == nil { return "\(path): matches not" }
        if let any = schema["anyOf"] as? [[String: Any]], !any.contains(where: { check(value, $0, path) == nil }) {
            return "\(path): matches none of anyOf"
        }
        if let type = schema["type"] as? String, !has(value, type: type) { return "\(path): not \(type)" }
        if let choices = schema["enum"] as? [String] {
            guard case .string(let s) = value.kind, choices.contains(s) else { return "\(path): not in enum" }
        }
        switch value.kind {
        case .string(let s):
            if let min = schema["minLength"] as? Int, s.count < min { return "\(path): too short" }
            if let pattern = schema["pattern"] as? String, !matches(s, pattern) { return "\(path): pattern" }
        case .number(let d):
            if let min = schema["minimum"] as? Double, d < min { return "\(path): below minimum" }
            if let max = schema["maximum"] as? Double, d > max { return "\(path): above maximum" }
            if let min = schema["exclusiveMinimum"] as? Double, d <= min { return "\(path): not above minimum" }
        case .array(let elements):
            if let min = schema["minItems"] as? Int, elements.count < min { return "\(path): too few items" }
            if let items = schema["items"] as? [String: Any] {
                for (i, e) in elements.enumerated() { if let p = check(e, items, "\(path)[\(i)]") { return p } }
            }
        case .object(let members):
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where !members.contains(where: { $0.key == key }) {
                return "\(path): missing \(key)"
            }
            for member in members {
                let where_ = path + "." + member.key
                if let names = schema["propertyNames"] as? [String: Any],
                   let p = check(JSONValue(kind: .string(member.key), position: member.keyPosition), names, where_) {
                    return p
                }
                if let sub = properties[member.key] as? [String: Any] {
                    if let p = check(member.value, sub, where_) { return p }
                } else if let extra = schema["additionalProperties"] as? [String: Any] {
                    if let p = check(member.value, extra, where_) { return p }
                } else if schema["additionalProperties"] as? Bool == false {
                    return "\(where_): not allowed"
                }
            }
        case .bool, .null:
            break
        }
        return nil
    }

    private func has(_ value: JSONValue, type: String) -> Bool {
        switch (value.kind, type) {
        case (.object, "object"), (.array, "array"), (.string, "string"), (.bool, "boolean"), (.null, "null"),
             (.number, "number"):
            return true
        case (.number(let d), "integer"):
            return d.rounded() == d
        default:
            return false
        }
    }

    private func matches(_ s: String, _ pattern: String) -> Bool {
        let regex = try! NSRegularExpression(pattern: pattern)
        return regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }
}
