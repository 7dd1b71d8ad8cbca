import GranuleIR

/// Common-subexpression elimination: an op identical to an earlier one (same opcode, operands,
/// attributes, constant data and result type) is replaced by the earlier result.
///
/// Operands of commutative ops (add, mul, max, min) are compared as an unordered pair. All ops are
/// pure, dropout included (its mask is a function of seed and offset), so any two identical ops
/// compute the same tensor. It does not remove the now-unused duplicates (run `dce` after it) and
/// does not reason about algebraic equivalence (`simplify` does that).
public struct CommonSubexpressionElimination: FunctionPass {
    public let name = "cse"

    public init() {}

    struct Key: Hashable {
        var opcode: Opcode
        var operands: [Value]
        var attributes: Attributes
        var constant: ConstantData?
        var type: TensorType
    }

    public func run(on function: Function) throws(Diagnostic) -> Function {
        var result = function
        var replacement: [Value: Value] = [:]
        var seen: [Key: Value] = [:]
        for index in result.operations.indices {
            var op = result.operations[index]
            op.operands = op.operands.map { replacement[$0] ?? $0 }
            result.operations[index] = op
            var operands = op.operands
            if op.opcode.isCommutative { operands.sort() }
            let key = Key(
                opcode: op.opcode, operands: operands, attributes: op.attributes, constant: op.constant,
                type: result.type(of: op.result))
            if let earlier = seen[key] {
                replacement[op.result] = earlier
            } else {
                seen[key] = op.result
            }
        }
        for index in result.results.indices {
            result.results[index].value = replacement[result.results[index].value] ?? result.results[index].value
        }
        return result
    }
}
