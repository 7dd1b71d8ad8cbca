/// A compile-time attribute of an op: `{axes = [0, 1], eps = 1e-05, approx = tanh}`.
public enum Attribute: Hashable, Sendable, CustomStringConvertible {
    case int(Int)
    case float(Double)
    case bool(Bool)
    case ints([Int])
    /// A bare identifier such as `erf` or `lt`.
    case symbol(String)

    public var description: String {
        switch self {
        case .int(let value): String(value)
        case .float(let value): formatFloatLiteral(value)
        case .bool(let value): value ? "true" : "false"
        case .ints(let values): "[" + values.map(String.init).joined(separator: ", ") + "]"
        case .symbol(let name): name
        }
    }
}

/// An op's attributes, kept sorted by name so that printing is canonical.
public struct Attributes: Hashable, Sendable, Sequence {
    public private(set) var entries: [(name: String, value: Attribute)] = []

    public init() {}

    public init(_ pairs: [String: Attribute]) {
        for (name, value) in pairs { self[name] = value }
    }

    public var isEmpty: Bool { entries.isEmpty }

    public subscript(name: String) -> Attribute? {
        get { entries.first { $0.name == name }?.value }
        set {
            let index = entries.firstIndex { $0.name >= name } ?? entries.endIndex
            let exists = index < entries.endIndex && entries[index].name == name
            switch (newValue, exists) {
            case (let value?, true): entries[index].value = value
            case (let value?, false): entries.insert((name, value), at: index)
            case (nil, true): entries.remove(at: index)
            case (nil, false): break
            }
        }
    }

    public var names: [String] { entries.map(\.name) }

    public func makeIterator() -> IndexingIterator<[(name: String, value: Attribute)]> {
        entries.makeIterator()
    }

    public static func == (lhs: Attributes, rhs: Attributes) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.name)
            hasher.combine(entry.value)
        }
    }
}

/// Typed accessors used by shape rules, the interpreter and passes; failures name the attribute.
extension Attributes {
    public func int(_ name: String) throws(Diagnostic) -> Int {
        guard let value = self[name] else { throw Diagnostic("missing attribute '\(name)'") }
        guard case .int(let int) = value else { throw Diagnostic("attribute '\(name)' must be an integer") }
        return int
    }

    public func int(_ name: String, default fallback: Int) throws(Diagnostic) -> Int {
        self[name] == nil ? fallback : try int(name)
    }

    public func float(_ name: String) throws(Diagnostic) -> Double {
        switch self[name] {
        case .float(let value)?: return value
        case .int(let value)?: return Double(value)
        case nil: throw Diagnostic("missing attribute '\(name)'")
        default: throw Diagnostic("attribute '\(name)' must be a number")
        }
    }

    public func float(_ name: String, default fallback: Double) throws(Diagnostic) -> Double {
        self[name] == nil ? fallback : try float(name)
    }

    public func bool(_ name: String) throws(Diagnostic) -> Bool {
        switch self[name] {
        case nil: return false
        case .bool(let value)?: return value
        default: throw Diagnostic("attribute '\(name)' must be true or false")
        }
    }

    public func ints(_ name: String) throws(Diagnostic) -> [Int] {
        guard let value = self[name] else { throw Diagnostic("missing attribute '\(name)'") }
        guard case .ints(let ints) = value else {
            throw Diagnostic("attribute '\(name)' must be a list of integers like [0, 1]")
        }
        return ints
    }

    public func symbol(_ name: String, oneOf allowed: [String]) throws(Diagnostic) -> String {
        guard let value = self[name] else { throw Diagnostic("missing attribute '\(name)'") }
        guard case .symbol(let symbol) = value, allowed.contains(symbol) else {
            throw Diagnostic("attribute '\(name)' must be one of \(allowed.joined(separator: ", "))")
        }
        return symbol
    }

    public func symbol(_ name: String, oneOf allowed: [String], default fallback: String) throws(Diagnostic) -> String {
        self[name] == nil ? fallback : try symbol(name, oneOf: allowed)
    }
}

/// Shortest text that parses back to exactly `value` (always with a `.` or exponent, so it reads as a float).
public func formatFloatLiteral(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    return value.description
}
