// A small strict JSON (RFC 8259) parser whose values remember their 1-based line:column, because
// JSONSerialization neither reports reliable positions nor duplicate keys, and inventory errors must do both.
import Foundation

/// A JSON path such as `hosts[3].platforms[0]` or `registries["127.0.0.1:5000"].insecure`.
struct JSONPath: Equatable, CustomStringConvertible {
    enum Component: Equatable {
        case key(String)
        case index(Int)
    }

    var components: [Component] = []

    func appending(_ key: String) -> JSONPath { JSONPath(components: components + [.key(key)]) }
    func appending(_ index: Int) -> JSONPath { JSONPath(components: components + [.index(index)]) }

    var description: String {
        var out = ""
        for component in components {
            switch component {
            case .index(let i):
                out += "[\(i)]"
            case .key(let k) where JSONPath.isIdentifier(k):
                out += out.isEmpty ? k : "." + k
            case .key(let k):
                out += "[" + JSONPath.quoted(k) + "]"
            }
        }
        return out
    }

    /// Keys that read unambiguously after a dot; others are written `["…"]`.
    private static func isIdentifier(_ s: String) -> Bool {
        func letter(_ c: UInt8) -> Bool { c == UInt8(ascii: "_") || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z")) }
        guard let first = s.utf8.first, letter(first) else { return false }
        return s.utf8.allSatisfy { letter($0) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) }
    }

    /// `s` as a JSON string literal, so control characters and quotes in keys stay visible.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// A 1-based line and column; columns count Unicode scalars, so a tab or an `é` is one column.
struct JSONPosition: Equatable {
    var line: Int
    var column: Int
}

/// A parsed JSON value and where it starts.
struct JSONValue {
    /// One `"key": value` of an object, in file order.
    struct Member {
        var key: String
        var keyPosition: JSONPosition
        var value: JSONValue
    }

    enum Kind {
        case object([Member])
        case array([JSONValue])
        case string(String)
        case number(Double)
        case bool(Bool)
        case null
    }

    var kind: Kind
    var position: JSONPosition

    /// The kind's name as error messages say it ("expected integer, got string").
    var typeName: String {
        switch kind {
        case .object: return "object"
        case .array: return "array"
        case .string: return "string"
        case .number: return "number"
        case .bool: return "boolean"
        case .null: return "null"
        }
    }
}

/// Parses `data` as one JSON document; errors are `InventoryError`s naming `file`, the path and line:column.
struct JSONParser {
    private let bytes: [UInt8]
    private let file: String
    private var offset = 0
    private var line = 1
    private var column = 1
    private var path = JSONPath()
    private static let maxDepth = 128

    static func parse(_ data: Data, file: String) throws -> JSONValue {
        var parser = JSONParser(bytes: [UInt8](data), file: file)
        return try parser.document()
    }

    private init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    // MARK: Grammar

    private mutating func document() throws -> JSONValue {
        try checkUTF8()
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { offset = 3 }  // a byte order mark, tolerated as RFC 8259 allows
        skipWhitespace()
        if atEnd { throw error("the file is empty; expected a JSON object") }
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if !atEnd { throw error("unexpected \(describeCurrent()) after the end of the JSON document") }
        return value
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth) levels") }
        let start = position
        guard let byte = current else { throw error("unexpected end of file; expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return JSONValue(kind: .object(try parseObject(depth: depth)), position: start)
        case UInt8(ascii: "["): return JSONValue(kind: .array(try parseArray(depth: depth)), position: start)
        case UInt8(ascii: "\""): return JSONValue(kind: .string(try parseString()), position: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return JSONValue(kind: .number(try parseNumber()), position: start)
        case UInt8(ascii: "t"): try literal("true"); return JSONValue(kind: .bool(true), position: start)
        case UInt8(ascii: "f"): try literal("false"); return JSONValue(kind: .bool(false), position: start)
        case UInt8(ascii: "n"): try literal("null"); return JSONValue(kind: .null, position: start)
        default: throw unexpected(expecting: "a value")
        }
    }

    private mutating func parseObject(depth: Int) throws -> [JSONValue.Member] {
        advance()  // {
        var members: [JSONValue.Member] = []
        var seen: [String: JSONPosition] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") { advance(); return members }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else {
                if current == UInt8(ascii: "}") { throw error("trailing comma before '}'") }
                throw unexpected(expecting: "a key in double quotes")
            }
            let keyPosition = position
            let key = try parseString()
            if let first = seen[key] {
                path = path.appending(key)
                throw error("duplicate key \(JSONPath.quoted(key)) (first at \(first.line):\(first.column))",
                            at: keyPosition)
            }
            seen[key] = keyPosition
            skipWhitespace()
            guard current == UInt8(ascii: ":") else {
                throw unexpected(expecting: "':' after the key")
            }
            advance()
            skipWhitespace()
            let saved = path
            path = path.appending(key)
            let value = try parseValue(depth: depth + 1)
            path = saved
            members.append(JSONValue.Member(key: key, keyPosition: keyPosition, value: value))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): advance()
            case UInt8(ascii: "}"): advance(); return members
            default: throw unexpected(expecting: "',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws -> [JSONValue] {
        advance()  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { advance(); return elements }
        while true {
            skipWhitespace()
            if current == UInt8(ascii: "]") { throw error("trailing comma before ']'") }
            let saved = path
            path = path.appending(elements.count)
            elements.append(try parseValue(depth: depth + 1))
            path = saved
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): advance()
            case UInt8(ascii: "]"): advance(); return elements
            default: throw unexpected(expecting: "',' or ']'")
            }
        }
    }

    private mutating func parseString() throws -> String {
        let start = position
        advance()  // "
        var out: [UInt8] = []
        while true {
            guard let byte = current else { throw error("unterminated string (it starts at \(start.line):\(start.column))") }
            switch byte {
            case UInt8(ascii: "\""):
                advance()
                return String(decoding: out, as: UTF8.self)  // the whole file was checked as UTF-8 already
            case UInt8(ascii: "\\"):
                advance()
                try parseEscape(into: &out)
            case 0..<0x20:
                throw error(byte == UInt8(ascii: "\n")
                    ? "unterminated string (it starts at \(start.line):\(start.column))"
                    : "control character \(describeCurrent()) in a string; write it as an escape")
            default:
                out.append(byte)
                advance()
            }
        }
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws {
        guard let byte = current else { throw error("unexpected end of file in an escape") }
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "\""): UInt8(ascii: "\""), UInt8(ascii: "\\"): UInt8(ascii: "\\"),
            UInt8(ascii: "/"): UInt8(ascii: "/"), UInt8(ascii: "b"): 0x08, UInt8(ascii: "f"): 0x0C,
            UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
        ]
        if let replacement = simple[byte] {
            out.append(replacement)
            advance()
            return
        }
        guard byte == UInt8(ascii: "u") else { throw error("invalid escape '\\\(describeCurrent(quoted: false))'") }
        advance()
        var scalar = try hex4()
        if (0xD800...0xDBFF).contains(scalar) {
            guard current == UInt8(ascii: "\\"), peek(1) == UInt8(ascii: "u") else {
                throw error("unpaired UTF-16 surrogate in a \\u escape")
            }
            advance(); advance()
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired UTF-16 surrogate in a \\u escape") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw error("unpaired UTF-16 surrogate in a \\u escape")
        }
        out.append(contentsOf: Array(String(Unicode.Scalar(scalar)!).utf8))
    }

    private mutating func hex4() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current, let digit = UInt32(String(UnicodeScalar(byte)), radix: 16) else {
                throw error("expected four hex digits after \\u")
            }
            value = value * 16 + digit
            advance()
        }
        return value
    }

    private mutating func parseNumber() throws -> Double {
        let start = offset
        let startPosition = position
        if current == UInt8(ascii: "-") { advance() }
        guard let first = current, isDigit(first) else { throw error("expected a digit after '-'") }
        advance()
        if first == UInt8(ascii: "0"), let next = current, isDigit(next) {
            throw error("leading zeros are not allowed in numbers", at: startPosition)
        }
        skipDigits()
        if current == UInt8(ascii: ".") {
            advance()
            guard let next = current, isDigit(next) else { throw error("expected a digit after '.'") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            advance()
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { advance() }
            guard let next = current, isDigit(next) else { throw error("expected a digit in the exponent") }
            skipDigits()
        }
        let text = String(decoding: bytes[start..<offset], as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw error("number \(text) is out of range", at: startPosition)
        }
        return value
    }

    private mutating func literal(_ word: String) throws {
        let start = position
        for expected in word.utf8 {
            guard current == expected else { throw error("invalid literal; expected \(word)", at: start) }
            advance()
        }
        if let next = current, isLetterOrDigit(next) { throw error("invalid literal; expected \(word)", at: start) }
    }

    // MARK: Reading bytes

    private var atEnd: Bool { offset >= bytes.count }
    private var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }
    private var position: JSONPosition { JSONPosition(line: line, column: column) }
    private func peek(_ n: Int) -> UInt8? { offset + n < bytes.count ? bytes[offset + n] : nil }

    private mutating func advance() {
        guard offset < bytes.count else { return }
        let byte = bytes[offset]
        offset += 1
        if byte == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if let next = current, next & 0xC0 == 0x80 {
            return  // inside a multi-byte scalar: the column moves once, on its last byte
        } else {
            column += 1
        }
    }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { advance() }
    }

    private mutating func skipDigits() {
        while let byte = current, isDigit(byte) { advance() }
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    private func isLetterOrDigit(_ b: UInt8) -> Bool {
        isDigit(b) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "z"))
    }

    /// The character at the cursor as a message shows it: `'x'`, `U+00A0`, or "end of file".
    private func describeCurrent(quoted: Bool = true) -> String {
        guard offset < bytes.count else { return "end of file" }
        var end = offset + 1
        while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
        let scalar = String(decoding: bytes[offset..<end], as: UTF8.self).unicodeScalars.first!
        if scalar.value >= 0x21 && scalar.value < 0x7F { return quoted ? "'\(scalar)'" : "\(scalar)" }
        return String(format: "U+%04X", scalar.value)
    }

    /// Refuses a file that is not UTF-8, pointing at the first bad byte.
    private mutating func checkUTF8() throws {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var good = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): good += UTF8.width(scalar)
            case .emptyInput: return
            case .error:
                while offset < good { advance() }
                throw error("the file is not valid UTF-8")
            }
        }
    }

    /// "unexpected X; expected Y", or a plain word about comments, which JSON users often try.
    private func unexpected(expecting expected: String) -> InventoryError {
        if current == UInt8(ascii: "/"), peek(1) == UInt8(ascii: "/") || peek(1) == UInt8(ascii: "*") {
            return error("comments are not allowed in JSON")
        }
        return error("unexpected \(describeCurrent()); expected \(expected)")
    }

    private func error(_ message: String, at where_: JSONPosition? = nil) -> InventoryError {
        let at = where_ ?? position
        return InventoryError(file: file, path: path.description, line: at.line, column: at.column, message: message)
    }
}
