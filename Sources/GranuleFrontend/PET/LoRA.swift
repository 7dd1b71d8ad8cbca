import GranuleIR

/// LoRA (spec 7.5): `W x + b + (dropout(x)·Aᵀ·Bᵀ)·(α/r)` on the query and value projections of
/// every attention. A starts Kaiming-uniform (a = √5, i.e. U(±1/√in)), B at zero.
extension PETLowering {
    func loraUpdate(_ lowering: inout Lowering, prefix: String, r: Int, alpha: Double, input: Value, output: Value) throws(Diagnostic) -> Value {
        let inFeatures = lowering.graph.shape(input).last!
        let outFeatures = lowering.graph.shape(output).last!
        let a = try lowering.graph.parameter("\(prefix).lora_A.weight", [r, inFeatures], origin: .pet,
            initializer: .uniform(bound: 1 / Double(inFeatures).squareRoot()))
        let b = try lowering.graph.parameter("\(prefix).lora_B.weight", [outFeatures, r], origin: .pet, initializer: .zeros)
        let dropped = try lowering.graph.dropout(input)
        let low = try lowering.graph.builder.matmul(dropped, a, transposeB: true)
        let update = try lowering.graph.builder.matmul(low, b, transposeB: true)
        return try lowering.graph.builder.add(output, try lowering.graph.builder.mul(update, by: alpha / Double(r)))
    }
}
