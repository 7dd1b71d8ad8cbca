import GranuleIR

/// Merges linear layers that read the same input into one GEMM: `x·W₁ᵀ, x·W₂ᵀ, ...` with
/// weight parameters `Wᵢ [outᵢ, in]` become `x·concat(W₁, W₂, ...)ᵀ` followed by column slices
/// (attention's Q/K/V; the decoder cross-attention's K, V and VL-PET's value-adapter down
/// projection, which all read the encoder output).
///
/// Algorithm: group the matmuls by (input, `transpose_b` set, `transpose_a` unset, weight a rank-2
/// parameter); for each group of two or more, emit the weight concat and the merged matmul where
/// the group's first matmul stood, and turn every member into a slice of the merged result (keeping
/// its value, so no use changes). Run it before autodiff: the backward pass then gets one
/// input-gradient GEMM for the group. It does not merge matmuls whose weights are computed values,
/// and it leaves the weight-gradient GEMM of the concatenated weight to `narrow-slices`, which
/// shrinks it to the trainable rows that are used.
public struct MergeSiblingMatmuls: FunctionPass {
    public let name = "merge-matmuls"
    /// Groups with fewer members stay separate GEMMs.
    public var minimumMembers: Int

    public init(minimumMembers: Int = 2) { self.minimumMembers = minimumMembers }

    public func run(on function: Function) throws(Diagnostic) -> Function {
        struct Key: Hashable {
            var input: Value
            var inFeatures: Int
        }
        var groups: [Key: [Int]] = [:]
        for (index, op) in function.operations.enumerated() where op.opcode == .matmul {
            guard (try? op.attributes.bool("transpose_b")) == true, (try? op.attributes.bool("transpose_a")) == false,
                function.parameter(for: op.operands[1]) != nil, function.type(of: op.operands[1]).rank == 2
            else { continue }
            groups[Key(input: op.operands[0], inFeatures: function.type(of: op.operands[1]).shape[1]), default: []].append(index)
        }
        let merged = groups.values.filter { $0.count >= max(2, minimumMembers) }
        guard !merged.isEmpty else { return function }
        var firstOfGroup: [Int: [Int]] = [:]
        for group in merged { firstOfGroup[group.min()!] = group.sorted() }
        let inGroup = Set(merged.flatMap { $0 })

        var result = function
        result.operations = []
        var builder = GraphBuilder(result)
        var mergedValue: [Int: (value: Value, offset: Int)] = [:]
        for (index, op) in function.operations.enumerated() {
            if let group = firstOfGroup[index] {
                let weights = group.map { function.operations[$0].operands[1] }
                let concatenated = try builder.emit(.concat, weights, ["axis": .int(0)], name: "merged.weight")
                let product = try builder.matmul(op.operands[0], concatenated, transposeB: true)
                var offset = 0
                for member in group {
                    mergedValue[member] = (product, offset)
                    offset += function.type(of: function.operations[member].operands[1]).shape[0]
                }
            }
            guard inGroup.contains(index), let (product, offset) = mergedValue[index] else {
                builder.function.operations.append(op)
                continue
            }
            // The member becomes a slice of the merged product (same result value).
            let shape = function.type(of: op.result).shape
            var start = [Int](repeating: 0, count: shape.count)
            var limit = shape
            start[shape.count - 1] = offset
            limit[shape.count - 1] = offset + shape[shape.count - 1]
            builder.function.operations.append(Operation(
                result: op.result, opcode: .slice, operands: [product],
                attributes: Attributes(["start": .ints(start), "limit": .ints(limit)]), location: op.location))
        }
        return builder.function
    }
}
