/// Appending ops to a function with their result types computed by `TypeRules`: how passes and
/// the frontend build IR. A failure here means the caller built an ill-typed op.
extension Function {
    @discardableResult
    public mutating func append(
        _ opcode: Opcode, _ operands: [Value], attributes: Attributes = Attributes(),
        constant: ConstantData? = nil, type declared: TensorType? = nil, name: String? = nil,
        location: SourceLocation? = nil
    ) throws(Diagnostic) -> Value {
        let type: TensorType
        do {
            type = try TypeRules.resultType(
                of: opcode, operands: operands.map(self.type(of:)), attributes: attributes, constant: constant,
                declared: declared)
        } catch {
            throw Diagnostic("building '\(opcode.name)': \(error.message)", at: location ?? self.location)
        }
        let result = makeValue(named: name ?? nextTemporaryName(), type: type)
        operations.append(
            Operation(result: result, opcode: opcode, operands: operands, attributes: attributes, constant: constant, location: location))
        return result
    }

    /// A scalar constant of `dtype`, broadcast by the binary op that uses it.
    public mutating func appendScalar(_ value: Double, _ dtype: DType, name: String? = nil) throws(Diagnostic) -> Value {
        guard dtype.isFloat || (value.rounded() == value && Swift.abs(value) < 9.2e18) else {
            throw Diagnostic("building a constant: \(value) is not a valid \(dtype) value", at: location)
        }
        let scalar: ConstantData.Scalar = dtype.isFloat ? .float(value) : .int(Int64(value))
        return try append(.constant, [], constant: .splat(scalar), type: .scalar(dtype), name: name)
    }

    private func nextTemporaryName() -> String { String(valueCount) }
}
