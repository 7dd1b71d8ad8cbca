import GranuleIR

/// Algebraic simplification in one forward sweep (each op sees its operands already simplified):
///
/// 1. identities: `x + 0`, `0 + x`, `x - 0`, `x * 1`, `1 * x`, `x / 1`, `pow(x, 1)`, `neg(neg x)`,
///    and reshape / broadcast_to / cast / transpose to the operand's own type become `x`;
/// 2. folding of data movement: `reshape(reshape x)` → one reshape, `transpose(transpose x)` → one
///    transpose, `broadcast_to` / `reshape` of a splat constant → a splat of the new type;
/// 3. a transpose of the last two axes feeding a matmul becomes the matmul's transpose flag;
/// 4. `x + neg(y)` → `x - y`, `x - neg(y)` → `x + y`;
/// 5. elementwise ops (neg, add, sub, mul, div) on splat constants fold to a splat constant.
///
/// Rewrites keep each op's result value, so uses need no update; replaced ops are left for `dce`.
/// It deliberately does not rewrite `x * 0` to 0 (wrong for NaN/Inf) or reassociate float
/// arithmetic: results stay bit-identical to the unsimplified program.
public struct Simplify: FunctionPass {
    public let name = "simplify"

    public init() {}

    public func run(on function: Function) throws(Diagnostic) -> Function {
        var result = function
        var replacement: [Value: Value] = [:]
        var definition: [Value: Operation] = [:]
        for index in result.operations.indices {
            var op = result.operations[index]
            op.operands = op.operands.map { replacement[$0] ?? $0 }
            if let forwarded = identityOperand(op, result, definition) {
                replacement[op.result] = forwarded
            } else {
                op = fold(op, result, definition)
                // Folding can expose an identity (two transposes that cancel).
                if let forwarded = identityOperand(op, result, definition) { replacement[op.result] = forwarded }
            }
            result.operations[index] = op
            definition[op.result] = op
        }
        result.replaceUses(replacement)
        return result
    }

    private func splat(_ value: Value, _ definition: [Value: Operation]) -> Double? {
        guard let op = definition[value], op.opcode == .constant, case .splat(let scalar)? = op.constant else { return nil }
        return scalar.asDouble
    }

    /// The operand this op is equivalent to, if it is an identity.
    private func identityOperand(_ op: Operation, _ function: Function, _ definition: [Value: Operation]) -> Value? {
        let type = function.type(of: op.result)
        let sameType = { (value: Value) in function.type(of: value) == type }
        let operands = op.operands
        switch op.opcode {
        case .add:
            if splat(operands[1], definition) == 0, sameType(operands[0]) { return operands[0] }
            if splat(operands[0], definition) == 0, sameType(operands[1]) { return operands[1] }
        case .sub:
            if splat(operands[1], definition) == 0, sameType(operands[0]) { return operands[0] }
        case .mul:
            if splat(operands[1], definition) == 1, sameType(operands[0]) { return operands[0] }
            if splat(operands[0], definition) == 1, sameType(operands[1]) { return operands[1] }
        case .div:
            if splat(operands[1], definition) == 1, sameType(operands[0]) { return operands[0] }
        case .pow:
            if (try? op.attributes.float("exponent")) == 1 { return operands[0] }
        case .neg:
            if let inner = definition[operands[0]], inner.opcode == .neg { return inner.operands[0] }
        case .reshape, .broadcastTo, .cast:
            if sameType(operands[0]) { return operands[0] }
        case .transpose:
            if let perm = try? op.attributes.ints("perm"), perm == Array(perm.indices) { return operands[0] }
        default:
            break
        }
        return nil
    }

    /// The op rewritten into a cheaper equivalent with the same result, or unchanged.
    private func fold(_ op: Operation, _ function: Function, _ definition: [Value: Operation]) -> Operation {
        var op = op
        let type = function.type(of: op.result)
        switch op.opcode {
        case .reshape, .broadcastTo:
            if let inner = definition[op.operands[0]] {
                if inner.opcode == .constant, case .splat? = inner.constant {
                    return Operation(result: op.result, opcode: .constant, operands: [], constant: inner.constant, location: op.location)
                }
                if op.opcode == .reshape, inner.opcode == .reshape { op.operands = inner.operands }
            }
        case .transpose:
            if let inner = definition[op.operands[0]], inner.opcode == .transpose,
                let outer = try? op.attributes.ints("perm"), let first = try? inner.attributes.ints("perm")
            {
                let composed = outer.map { first[$0] }
                op.operands = inner.operands
                op.attributes["perm"] = .ints(composed)
            }
        case .matmul:
            for (index, flag) in [(0, "transpose_a"), (1, "transpose_b")] {
                guard let inner = definition[op.operands[index]], swapsLastTwoAxes(inner) else { continue }
                var candidate = op
                candidate.operands[index] = inner.operands[0]
                candidate.attributes[flag] = (try? op.attributes.bool(flag)) == true ? nil : .bool(true)
                let operandTypes = candidate.operands.map(function.type(of:))
                if (try? TypeRules.resultType(of: .matmul, operands: operandTypes, attributes: candidate.attributes)) == type {
                    op = candidate
                }
            }
        case .add, .sub:
            if let inner = definition[op.operands[1]], inner.opcode == .neg {
                op.operands[1] = inner.operands[0]
                op.opcode = op.opcode == .add ? .sub : .add
            }
        default:
            break
        }
        return foldSplats(op, type, definition)
    }

    private func swapsLastTwoAxes(_ op: Operation) -> Bool {
        guard op.opcode == .transpose, let perm = try? op.attributes.ints("perm"), perm.count >= 2 else { return false }
        var expected = Array(perm.indices)
        expected.swapAt(perm.count - 1, perm.count - 2)
        return perm == expected
    }

    private func foldSplats(_ op: Operation, _ type: TensorType, _ definition: [Value: Operation]) -> Operation {
        guard type.dtype.isFloat, [.neg, .add, .sub, .mul, .div].contains(op.opcode) else { return op }
        let values = op.operands.compactMap { splat($0, definition) }
        guard values.count == op.operands.count else { return op }
        var folded: Double
        switch op.opcode {
        case .neg: folded = -values[0]
        case .add: folded = values[0] + values[1]
        case .sub: folded = values[0] - values[1]
        case .mul: folded = values[0] * values[1]
        default: folded = values[0] / values[1]
        }
        if type.dtype == .f32 { folded = Double(Float(folded)) }
        return Operation(result: op.result, opcode: .constant, operands: [], constant: .splat(.float(folded)), location: op.location)
    }
}
