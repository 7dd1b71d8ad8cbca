import Foundation
import GranuleIR
import GranuleSupport

/// Reads a JSON document with errors that name the file and the field, e.g.
/// `spec.json: field 'pet.r': expected a positive integer, got "96"`.
struct JSONFields {
    let file: String
    let field: String
    let value: JSON

    /// Parses a file; syntax errors point at `file:line:col`.
    static func load(_ path: String) throws(Diagnostic) -> JSONFields {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Diagnostic(file: path, "cannot read the file")
        }
        let bytes = [UInt8](data)
        do {
            return JSONFields(file: path, field: "", value: try JSON.parse(bytes[...]))
        } catch {
            let prefix = bytes.prefix(error.offset)
            let line = prefix.filter { $0 == UInt8(ascii: "\n") }.count + 1
            let column = prefix.count - (prefix.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
            throw Diagnostic(error.message, at: SourceLocation(file: path, line: line, column: column))
        }
    }

    func failure(_ expected: String) -> Diagnostic {
        let got: String
        switch value {
        case .string(let text): got = "\"\(text)\""
        case .number(let text): got = text
        case .bool(let flag): got = String(flag)
        default: got = value.kindName
        }
        return Diagnostic(file: file, "field '\(field)': expected \(expected), got \(got)")
    }

    private func child(_ key: String, _ value: JSON) -> JSONFields {
        JSONFields(file: file, field: field.isEmpty ? key : "\(field).\(key)", value: value)
    }

    var members: [(key: String, value: JSON)]? {
        if case .object(let members) = value { return members }
        return nil
    }

    /// The member `key`, or nil when absent (or null). A key given twice is an error: which one
    /// wins would otherwise be a silent accident of the parser.
    func optional(_ key: String) throws(Diagnostic) -> JSONFields? {
        guard let members else { throw failure("an object") }
        if members.lazy.filter({ $0.key == key }).count > 1 {
            throw Diagnostic(file: file, "field '\(field.isEmpty ? key : "\(field).\(key)")' appears more than once")
        }
        guard let member = members.last(where: { $0.key == key }), member.value != .null else { return nil }
        return child(key, member.value)
    }

    func required(_ key: String) throws(Diagnostic) -> JSONFields {
        guard let member = try optional(key) else {
            throw Diagnostic(file: file, "missing field '\(field.isEmpty ? key : "\(field).\(key)")'")
        }
        return member
    }

    /// Rejects members other than `allowed` (catches typos such as "graularity").
    func onlyKeys(_ allowed: [String]) throws(Diagnostic) {
        guard let members else { throw failure("an object") }
        for member in members where !allowed.contains(member.key) {
            let name = field.isEmpty ? member.key : "\(field).\(member.key)"
            throw Diagnostic(file: file, "unknown field '\(name)' (expected one of: \(allowed.joined(separator: ", ")))")
        }
    }

    func string() throws(Diagnostic) -> String {
        guard case .string(let text) = value else { throw failure("a string") }
        return text
    }

    func string(oneOf allowed: [String]) throws(Diagnostic) -> String {
        let text = try string()
        guard allowed.contains(text) else { throw failure("one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))") }
        return text
    }

    func int() throws(Diagnostic) -> Int {
        guard let int = value.integerValue else { throw failure("an integer") }
        return int
    }

    func positiveInt() throws(Diagnostic) -> Int {
        guard let int = value.integerValue, int > 0 else { throw failure("a positive integer") }
        return int
    }

    func double() throws(Diagnostic) -> Double {
        // JSON has no infinities, but 1e400 parses to one: no spec or config field means that.
        guard case .number(let text) = value, let number = Double(text), number.isFinite else { throw failure("a finite number") }
        return number
    }

    func bool() throws(Diagnostic) -> Bool {
        guard case .bool(let flag) = value else { throw failure("true or false") }
        return flag
    }

    func positiveInts(count: Int) throws(Diagnostic) -> [Int] {
        guard case .array(let items) = value, items.count == count,
            let ints = Optional(items.compactMap(\.integerValue)), ints.count == count, ints.allSatisfy({ $0 > 0 })
        else { throw failure("a list of \(count) positive integers") }
        return ints
    }

    func array() throws(Diagnostic) -> [JSONFields] {
        guard case .array(let items) = value else { throw failure("a list") }
        return items.enumerated().map { JSONFields(file: file, field: "\(field)[\($0.offset)]", value: $0.element) }
    }
}
