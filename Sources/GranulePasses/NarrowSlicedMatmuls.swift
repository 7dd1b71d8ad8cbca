import GranuleIR

/// Computes only the part of a matmul that a slice keeps: `slice(A·B)` restricted to rows
/// `[r₀, r₁)` and columns `[c₀, c₁)` of the last two axes becomes `A[r₀:r₁]·B[:, c₀:c₁]` (with
/// the transpose flags honoured). After `merge-matmuls` and autodiff this turns the gradient of a
/// concatenated weight — of which only the trainable member's rows are used — into the small GEMM
/// for that member, so frozen weights still get no weight-gradient work.
///
/// It rewrites only products read solely through slices that together keep less than all of it
/// (slices that use the whole product — a merged forward GEMM — stay), and only slices that keep
/// batch axes whole; the full matmul is left for `dce` to remove.
public struct NarrowSlicedMatmuls: FunctionPass {
    public let name = "narrow-slices"

    public init() {}

    public func run(on function: Function) throws(Diagnostic) -> Function {
        let definitions = function.definingOperationIndices()
        let uses = function.useCounts()
        // Matmuls only read through slices that together keep less than all of the product:
        // the rest is wasted work, so each slice becomes its own small matmul.
        var sliceElements: [Value: Int] = [:]
        var sliceUses: [Value: Int] = [:]
        for op in function.operations where op.opcode == .slice {
            sliceElements[op.operands[0], default: 0] += function.type(of: op.result).elementCount
            sliceUses[op.operands[0], default: 0] += 1
        }
        func wasteful(_ product: Value) -> Bool {
            sliceUses[product] == uses[product.id] && (sliceElements[product] ?? 0) < function.type(of: product).elementCount
        }
        var result = function
        result.operations = []
        var builder = GraphBuilder(result)
        for op in function.operations {
            guard op.opcode == .slice, let producerIndex = definitions[op.operands[0].id],
                function.operations[producerIndex].opcode == .matmul, wasteful(op.operands[0]),
                let start = try? op.attributes.ints("start"), let limit = try? op.attributes.ints("limit")
            else {
                builder.function.operations.append(op)
                continue
            }
            let product = function.operations[producerIndex]
            let shape = function.type(of: product.result).shape
            let rank = shape.count
            let batchWhole = (0..<(rank - 2)).allSatisfy { start[$0] == 0 && limit[$0] == shape[$0] }
            let (a, b) = (product.operands[0], product.operands[1])
            guard batchWhole, function.type(of: a).rank == rank, function.type(of: b).rank == rank || function.type(of: b).rank == 2 else {
                builder.function.operations.append(op)
                continue
            }
            let transposeA = (try? product.attributes.bool("transpose_a")) ?? false
            let transposeB = (try? product.attributes.bool("transpose_b")) ?? false
            // Rows of the product are A's rows (or columns when transposed); columns are B's columns
            // (or rows when transposed).
            let narrowedA = try narrow(a, axis: function.type(of: a).rank - (transposeA ? 1 : 2), start[rank - 2], limit[rank - 2], &builder)
            let narrowedB = try narrow(b, axis: function.type(of: b).rank - (transposeB ? 2 : 1), start[rank - 1], limit[rank - 1], &builder)
            builder.function.operations.append(Operation(
                result: op.result, opcode: .matmul, operands: [narrowedA, narrowedB], attributes: product.attributes, location: op.location))
        }
        return builder.function
    }

    private func narrow(_ value: Value, axis: Int, _ lower: Int, _ upper: Int, _ builder: inout GraphBuilder) throws(Diagnostic) -> Value {
        let shape = builder.type(value).shape
        guard lower != 0 || upper != shape[axis] else { return value }
        var start = [Int](repeating: 0, count: shape.count)
        var limit = shape
        start[axis] = lower
        limit[axis] = upper
        return try builder.emit(.slice, [value], ["start": .ints(start), "limit": .ints(limit)])
    }
}
