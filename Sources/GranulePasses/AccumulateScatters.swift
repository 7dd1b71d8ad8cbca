import GranuleIR

/// Folds a scatter into the sum it feeds: `add(x, scatter_add(0, i, u))` (either operand order)
/// becomes `scatter_add(x, i, u)`. Autodiff writes an embedding table's gradient as a scatter
/// into a zero table per lookup, summed with the table's other gradients (a tied LM head's
/// weight gradient, the decoder's lookups): for BART-base's shared [50465 × 768] embedding under
/// full fine-tuning, three zero-based scatters and a four-way sum, 620 MB of training-step arena
/// alive at once and four passes over 155 MB. Folded, the updates are added into the running sum,
/// which the memory plan lets each scatter do in place: one 155 MB buffer.
///
/// Taken when the scatter's target is a splat zero constant, the scatter has no other use (it is
/// not returned either), and `x` has the sum's type (no broadcast). The rewritten op keeps the
/// add's result value, so uses need no update; the dead scatter is left for `dce`.
///
/// This changes the floating-point summation order — `x + (0 + u₁ + u₂)` becomes
/// `(x + u₁) + u₂` — which is why it is not part of `simplify` (whose results stay bit-identical):
/// the results are equal up to rounding, and neither order is the "right" one (autodiff's order of
/// gradient contributions is itself arbitrary). Not done: sums of two scatters with each other,
/// or of scatters into nonzero targets (already accumulating).
public struct AccumulateScatters: FunctionPass {
    public let name = "accumulate-scatters"

    public init() {}

    public func run(on function: Function) throws(Diagnostic) -> Function {
        var definition: [Value: Operation] = [:]
        var uses: [Value: Int] = [:]
        for op in function.operations {
            definition[op.result] = op
            for operand in op.operands { uses[operand, default: 0] += 1 }
        }
        for result in function.results { uses[result.value, default: 0] += 1 }

        func isZeroSplat(_ value: Value) -> Bool {
            guard let op = definition[value], op.opcode == .constant, case .splat(let scalar)? = op.constant else { return false }
            return scalar.asDouble == 0
        }
        /// The scatter `value` is, when it can be folded into a sum of type `type`.
        func foldableScatter(_ value: Value, into type: TensorType) -> Operation? {
            guard let scatter = definition[value], scatter.opcode == .scatterAdd, uses[value] == 1,
                isZeroSplat(scatter.operands[0]), function.type(of: value) == type
            else { return nil }
            return scatter
        }

        var result = function
        for index in result.operations.indices where result.operations[index].opcode == .add {
            let sum = result.operations[index]
            let type = function.type(of: sum.result)
            for (scatterValue, other) in [(sum.operands[1], sum.operands[0]), (sum.operands[0], sum.operands[1])] {
                guard let scatter = foldableScatter(scatterValue, into: type), function.type(of: other) == type else { continue }
                result.operations[index] = Operation(
                    result: sum.result, opcode: .scatterAdd, operands: [other, scatter.operands[1], scatter.operands[2]],
                    attributes: scatter.attributes, location: sum.location ?? scatter.location)
                break
            }
        }
        return result
    }
}
