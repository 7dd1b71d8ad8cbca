/// Helpers for emitting ops into a function, used by the frontend and by autodiff's gradient
/// rules. Every helper computes its result type with the IR's shape rules.
public struct GraphBuilder: Sendable {
    public var function: Function

    public init(_ function: Function) { self.function = function }

    public func type(_ value: Value) -> TensorType { function.type(of: value) }

    public mutating func emit(
        _ opcode: Opcode, _ operands: [Value], _ attributes: [String: Attribute] = [:], type: TensorType? = nil,
        name: String? = nil
    ) throws(Diagnostic) -> Value {
        try function.append(opcode, operands, attributes: Attributes(attributes), type: type, name: name)
    }

    /// A scalar constant of the dtype of `like`, broadcast by the op that consumes it.
    public mutating func scalar(_ value: Double, like: Value) throws(Diagnostic) -> Value {
        try function.appendScalar(value, type(like).dtype)
    }

    public mutating func zeros(_ type: TensorType) throws(Diagnostic) -> Value {
        let zero: ConstantData.Scalar = type.dtype.isFloat ? .float(0) : .int(0)
        return try function.append(.constant, [], constant: .splat(zero), type: type)
    }

    public mutating func add(_ a: Value, _ b: Value) throws(Diagnostic) -> Value { try emit(.add, [a, b]) }
    public mutating func sub(_ a: Value, _ b: Value) throws(Diagnostic) -> Value { try emit(.sub, [a, b]) }
    public mutating func mul(_ a: Value, _ b: Value) throws(Diagnostic) -> Value { try emit(.mul, [a, b]) }
    public mutating func div(_ a: Value, _ b: Value) throws(Diagnostic) -> Value { try emit(.div, [a, b]) }
    public mutating func neg(_ a: Value) throws(Diagnostic) -> Value { try emit(.neg, [a]) }
    public mutating func exp(_ a: Value) throws(Diagnostic) -> Value { try emit(.exp, [a]) }

    public mutating func mul(_ a: Value, by constant: Double) throws(Diagnostic) -> Value {
        try mul(a, try scalar(constant, like: a))
    }

    public mutating func compare(_ a: Value, _ predicate: String, _ b: Value) throws(Diagnostic) -> Value {
        try emit(.compare, [a, b], ["predicate": .symbol(predicate)])
    }

    public mutating func select(_ condition: Value, _ a: Value, _ b: Value) throws(Diagnostic) -> Value {
        try emit(.select, [condition, a, b])
    }

    public mutating func reduceSum(_ x: Value, axes: [Int], keepDims: Bool = false) throws(Diagnostic) -> Value {
        try emit(.reduceSum, [x], keepDims ? ["axes": .ints(axes), "keepdims": .bool(true)] : ["axes": .ints(axes)])
    }

    public mutating func reduceMean(_ x: Value, axes: [Int], keepDims: Bool = false) throws(Diagnostic) -> Value {
        try emit(.reduceMean, [x], keepDims ? ["axes": .ints(axes), "keepdims": .bool(true)] : ["axes": .ints(axes)])
    }

    public mutating func reshape(_ x: Value, _ shape: [Int]) throws(Diagnostic) -> Value {
        if type(x).shape == shape { return x }
        return try emit(.reshape, [x], type: type(x).with(shape: shape))
    }

    public mutating func broadcast(_ x: Value, to shape: [Int]) throws(Diagnostic) -> Value {
        if type(x).shape == shape { return x }
        return try emit(.broadcastTo, [x], type: type(x).with(shape: shape))
    }

    public mutating func transpose(_ x: Value, _ perm: [Int]) throws(Diagnostic) -> Value {
        if perm == Array(perm.indices) { return x }
        return try emit(.transpose, [x], ["perm": .ints(perm)])
    }

    /// Swaps the last two axes.
    public mutating func transposeLastTwo(_ x: Value) throws(Diagnostic) -> Value {
        let rank = type(x).rank
        var perm = Array(0..<rank)
        perm.swapAt(rank - 1, rank - 2)
        return try transpose(x, perm)
    }

    public mutating func matmul(_ a: Value, _ b: Value, transposeA: Bool = false, transposeB: Bool = false) throws(Diagnostic) -> Value {
        var attributes: [String: Attribute] = [:]
        if transposeA { attributes["transpose_a"] = .bool(true) }
        if transposeB { attributes["transpose_b"] = .bool(true) }
        return try emit(.matmul, [a, b], attributes)
    }

    /// Sums `gradient` over the axes that broadcasting stretched, giving a tensor of `shape`: the
    /// adjoint of numpy-style broadcasting.
    public mutating func unbroadcast(_ gradient: Value, to shape: [Int]) throws(Diagnostic) -> Value {
        let gradientShape = type(gradient).shape
        if gradientShape == shape { return gradient }
        let leading = gradientShape.count - shape.count
        var axes = Array(0..<leading)
        for (index, dim) in shape.enumerated() where dim == 1 && gradientShape[leading + index] != 1 {
            axes.append(leading + index)
        }
        let summed = axes.isEmpty ? gradient : try reduceSum(gradient, axes: axes, keepDims: true)
        return try reshape(summed, shape)
    }
}
