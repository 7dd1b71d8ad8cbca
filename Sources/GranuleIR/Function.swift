/// An SSA value of a function: an index into the function's value table.
public struct Value: Hashable, Sendable, Comparable {
    public var id: Int
    public init(_ id: Int) { self.id = id }
    public static func < (lhs: Value, rhs: Value) -> Bool { lhs.id < rhs.id }
}

/// A function parameter: an SSA value with a role.
public struct Parameter: Hashable, Sendable {
    public var value: Value
    public var role: Role
    public var location: SourceLocation?

    public init(value: Value, role: Role, location: SourceLocation? = nil) {
        self.value = value
        self.role = role
        self.location = location
    }
}

/// One op instance: `%result = opcode %operands {attributes} : type`.
public struct Operation: Hashable, Sendable {
    public var result: Value
    public var opcode: Opcode
    public var operands: [Value]
    public var attributes: Attributes
    /// The data of a `constant`; nil for every other op.
    public var constant: ConstantData?
    public var location: SourceLocation?

    public init(
        result: Value, opcode: Opcode, operands: [Value], attributes: Attributes = Attributes(),
        constant: ConstantData? = nil, location: SourceLocation? = nil
    ) {
        self.result = result
        self.opcode = opcode
        self.operands = operands
        self.attributes = attributes
        self.constant = constant
        self.location = location
    }
}

/// A named function result. `writes` names the `state` or `trainable` parameter this result
/// replaces after a call (optimizer updates); nil for ordinary outputs.
public struct FunctionResult: Hashable, Sendable {
    public var name: String
    public var value: Value
    public var writes: Value?
    public var location: SourceLocation?

    public init(name: String, value: Value, writes: Value? = nil, location: SourceLocation? = nil) {
        self.name = name
        self.value = value
        self.writes = writes
        self.location = location
    }
}

/// A function: typed parameters with roles, a straight-line list of ops in SSA form, named results.
///
/// Values live in a table owned by the function (`Value.id` indexes it); every value has a unique
/// name so that the text form, dumps and safetensors outputs can refer to it.
public struct Function: Hashable, Sendable {
    public var name: String
    public var parameters: [Parameter] = []
    public var operations: [Operation] = []
    public var results: [FunctionResult] = []
    public var location: SourceLocation?

    public private(set) var valueNames: [String] = []
    public private(set) var valueTypes: [TensorType] = []
    private var valuesByName: [String: Value] = [:]

    public init(name: String, location: SourceLocation? = nil) {
        self.name = name
        self.location = location
    }

    public var valueCount: Int { valueNames.count }

    public func type(of value: Value) -> TensorType { valueTypes[value.id] }
    public func name(of value: Value) -> String { valueNames[value.id] }
    public func value(named name: String) -> Value? { valuesByName[name] }

    /// Creates a value named `hint`, or `hint.1`, `hint.2`, ... if that name is taken.
    public mutating func makeValue(named hint: String, type: TensorType) -> Value {
        var name = hint
        var suffix = 1
        while valuesByName[name] != nil {
            name = "\(hint).\(suffix)"
            suffix += 1
        }
        let value = Value(valueNames.count)
        valueNames.append(name)
        valueTypes.append(type)
        valuesByName[name] = value
        return value
    }

    /// Renames a value; returns false (and changes nothing) if `name` is taken.
    @discardableResult
    public mutating func rename(_ value: Value, to name: String) -> Bool {
        guard valuesByName[name] == nil else { return false }
        valuesByName[valueNames[value.id]] = nil
        valueNames[value.id] = name
        valuesByName[name] = value
        return true
    }

    /// Adds a parameter at the end of the parameter list.
    @discardableResult
    public mutating func addParameter(named name: String, type: TensorType, role: Role) -> Value {
        let value = makeValue(named: name, type: type)
        parameters.append(Parameter(value: value, role: role))
        return value
    }

    public func parameter(for value: Value) -> Parameter? { parameters.first { $0.value == value } }

    public func parameters(withRole role: Role) -> [Parameter] { parameters.filter { $0.role == role } }

    /// The op that defines each value (nil for parameters).
    public func definingOperationIndices() -> [Int?] {
        var indices = [Int?](repeating: nil, count: valueCount)
        for (index, op) in operations.enumerated() { indices[op.result.id] = index }
        return indices
    }

    /// How many times each value is used as an operand or result.
    public func useCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: valueCount)
        for op in operations { for operand in op.operands { counts[operand.id] += 1 } }
        for result in results { counts[result.value.id] += 1 }
        return counts
    }

    /// Replaces every use of a value (operands and results) according to `replacement`.
    public mutating func replaceUses(_ replacement: [Value: Value]) {
        guard !replacement.isEmpty else { return }
        func resolve(_ value: Value) -> Value {
            var current = value
            while let next = replacement[current], next != current { current = next }
            return current
        }
        for index in operations.indices {
            operations[index].operands = operations[index].operands.map(resolve)
        }
        for index in results.indices { results[index].value = resolve(results[index].value) }
    }
}

/// A module: an ordered set of functions with unique names.
public struct Module: Hashable, Sendable {
    public var functions: [Function]

    public init(functions: [Function] = []) { self.functions = functions }

    public func function(named name: String) -> Function? { functions.first { $0.name == name } }

    public mutating func replaceFunction(_ function: Function) {
        if let index = functions.firstIndex(where: { $0.name == function.name }) {
            functions[index] = function
        } else {
            functions.append(function)
        }
    }
}
