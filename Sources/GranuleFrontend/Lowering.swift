import GranuleIR

/// The result of lowering a spec: the IR module and the table of model parameters.
public struct LoweredModel: Sendable {
    public var module: Module
    public var parameters: [ModelParameter]
}

/// Lowers a model spec to IR: `@loss(inputs..., weights...) -> (loss, logits)` computing the
/// training loss with teacher forcing, and the generation graphs `@encode` and `@decode_step`.
///
/// The backbone (Bart.swift, T5.swift) calls the PET method's hooks at the points where the
/// method inserts modules; the method then decides which parameters train. Parameters are IR
/// parameters named as in the checkpoint; batch inputs come first (`input_ids`, `attention_mask`,
/// `vis_feats`, `vis_boxes`, `labels`, `scores`, and `dropout_seed` when dropout is on).
public struct Lowering {
    let spec: ModelSpec
    var graph: ModelGraph
    let pet: PETLowering

    /// `@loss`, then (with `generation`) `@encode` and `@decode_step` (Generation.swift).
    public static func lower(_ spec: ModelSpec, dropout: Double? = nil, generation: Bool = true) throws(Diagnostic) -> LoweredModel {
        var lowering = Lowering(spec: spec, graph: ModelGraph(name: "loss", dropoutRate: dropout ?? spec.dropout), pet: PETLowering(spec: spec))
        try lowering.lowerLoss()
        var model = lowering.finish()
        if generation { model.module.functions += try generationFunctions(spec) }
        return model
    }

    /// Parameters' initial values for `granule init` and counts for `granule params`, without
    /// keeping the graph.
    public static func parameters(_ spec: ModelSpec) throws(Diagnostic) -> [ModelParameter] {
        try lower(spec, dropout: 0, generation: false).parameters
    }

    mutating func lowerLoss() throws(Diagnostic) {
        let batch = spec.batch
        let inputIds = graph.input("input_ids", TensorType(.i64, [batch.size, batch.textLength]))
        let attentionMask = graph.input("attention_mask", TensorType(.i64, [batch.size, batch.textLength]))
        var visual: (features: Value, boxes: Value)?
        if let input = spec.visual {
            let features = graph.input(
                "vis_feats", TensorType(.f32, [batch.size, input.images, input.grid[0], input.grid[1], input.featureDim]))
            let boxes = graph.input("vis_boxes", TensorType(.f32, [batch.size, input.tokens, 4]))
            visual = (features, boxes)
        }
        let labels = graph.input("labels", TensorType(.i64, [batch.size, batch.targetLength]))
        let scores = spec.loss == .scoreWeighted ? graph.input("scores", TensorType(.f32, [batch.size])) : nil

        let logits: Value
        switch spec.backbone.family {
        case .bart: logits = try bartLogits(inputIds: inputIds, attentionMask: attentionMask, visual: visual, labels: labels)
        case .t5: logits = try t5Logits(inputIds: inputIds, attentionMask: attentionMask, visual: visual, labels: labels)
        }
        let loss = try lossValue(logits: logits, labels: labels, scores: scores)
        graph.builder.function.rename(loss, to: "loss")
        graph.builder.function.results = [
            FunctionResult(name: "loss", value: loss), FunctionResult(name: "logits", value: logits),
        ]
    }

    mutating func finish() -> LoweredModel {
        let pet = self.pet
        graph.assignRoles { pet.isTrainable($0) }
        return LoweredModel(module: Module(functions: [graph.function]), parameters: graph.parameters)
    }

    /// Initialiser of a backbone linear weight with `fanIn` inputs (BART N(0, init_std = 0.02); T5 N(0, fanIn^-1/2)).
    func backboneLinearInit(_ fanIn: Int) -> ModelParameter.Initializer {
        spec.backbone.family == .bart ? .normal(std: spec.backbone.initStd) : .normal(std: 1 / Double(fanIn).squareRoot())
    }

    /// The shared token embedding [V, d].
    mutating func sharedEmbedding() throws(Diagnostic) -> Value {
        let config = spec.backbone
        let name = config.family == .bart ? "model.shared.weight" : "shared.weight"
        return try graph.parameter(name, [config.vocabSize, config.dModel], origin: .backbone,
            initializer: .normal(std: config.family == .bart ? config.initStd : 1.0))
    }

    /// Additive attention bias [B, 1, 1, N] from a 0/1 mask [B, N]: 0 where attended, `masked` elsewhere.
    mutating func maskBias(_ mask: Value, masked: Double) throws(Diagnostic) -> Value {
        let shape = graph.shape(mask)
        let maskFloat = try graph.builder.emit(.cast, [mask], type: TensorType(.f32, shape))
        let one = try graph.splat(1, .scalar(.f32))
        let inverted = try graph.builder.sub(one, maskFloat)
        let bias = try graph.builder.mul(inverted, by: masked)
        return try graph.builder.reshape(bias, [shape[0], 1, 1, shape[1]])
    }

    /// The encoder mask [B, N]: the text mask, ones for prompts (in front) and visual tokens (behind).
    mutating func encoderMask(_ attentionMask: Value) throws(Diagnostic) -> Value {
        let batch = spec.batch.size
        var parts = [attentionMask]
        if spec.pet.promptLength > 0 {
            parts.insert(try graph.splat(1, TensorType(.i64, [batch, spec.pet.promptLength])), at: 0)
        }
        if let visual = spec.visual {
            parts.append(try graph.splat(1, TensorType(.i64, [batch, visual.tokens])))
        }
        return parts.count == 1 ? attentionMask : try graph.builder.emit(.concat, parts, ["axis": .int(1)])
    }
}
