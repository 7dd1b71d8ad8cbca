import GranuleIR

/// Prompt tuning (spec 7.7): `P = W₂·tanh(W₁·Emb(0..<length) + b₁) + b₂`, prepended to the encoder's
/// text embeddings (after positions, before `layernorm_embedding`), with ones in the mask.
extension PETLowering {
    /// The prompt vectors [length, d], or nil for other methods.
    func prompts(_ lowering: inout Lowering) throws(Diagnostic) -> Value? {
        guard case .promptTuning(let length, let midDim) = spec.pet else { return nil }
        let d = spec.backbone.dModel
        let table = try lowering.graph.parameter("model.encoder.prompt.embedding.weight", [length, d], origin: .pet, initializer: .normal(std: 0.02))
        let (weight1, bias1) = linearInit(fanIn: d)
        let hidden = try lowering.graph.linear(table, "model.encoder.prompt.mlp.0", out: midDim, origin: .pet, weightInit: weight1, biasInit: bias1)
        let (weight2, bias2) = linearInit(fanIn: midDim)
        return try lowering.graph.linear(try lowering.graph.builder.emit(.tanh, [hidden]), "model.encoder.prompt.mlp.2", out: d, origin: .pet, weightInit: weight2, biasInit: bias2)
    }
}
