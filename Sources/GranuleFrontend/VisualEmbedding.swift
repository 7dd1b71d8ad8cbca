import GranuleIR

extension Lowering {
    /// The visual embedding of spec 3.2 ("visual projector"): pooled region features projected
    /// and normalised, plus the normalised box projection, the image-order embedding and the
    /// object-order rows of the shared token embedding. Returns [B, visual tokens, d].
    mutating func visualEmbedding(features: Value, boxes: Value, prefix: String) throws(Diagnostic) -> Value {
        guard let input = spec.visual else { throw Diagnostic("internal: no visual input") }
        let config = spec.backbone
        let batch = spec.batch.size
        let d = config.dModel
        let isBart = config.family == .bart
        let linearInit = { (fanIn: Int) -> (ModelParameter.Initializer, ModelParameter.Initializer) in
            isBart ? (.normal(std: config.initStd), .zeros) : (.uniform(bound: 1 / Double(fanIn).squareRoot()), .uniform(bound: 1 / Double(fanIn).squareRoot()))
        }

        // 7×7 grid → stride-1 max-pool → 36 tokens per image, row-major.
        var pooled = features
        if input.poolWindow != [1, 1] {
            pooled = try graph.builder.emit(.maxPool2d, [features], ["window": .ints(input.poolWindow)])
        }
        let regions = try graph.builder.reshape(pooled, [batch, input.tokens, input.featureDim])
        let (featureWeightInit, featureBiasInit) = linearInit(input.featureDim)
        var projected = try graph.linear(regions, "\(prefix).feat_embedding.0", out: d, origin: .visual, weightInit: featureWeightInit, biasInit: featureBiasInit)
        projected = try norm(projected, "\(prefix).feat_embedding.1")

        // Boxes (x1, x2, y1, y2) and their area (y2 − y1)(x2 − x1).
        func coordinate(_ index: Int, _ graph: inout ModelGraph) throws(Diagnostic) -> Value {
            try graph.builder.emit(.slice, [boxes], ["start": .ints([0, 0, index]), "limit": .ints([batch, input.tokens, index + 1])])
        }
        let height = try graph.builder.sub(try coordinate(3, &graph), try coordinate(2, &graph))
        let width = try graph.builder.sub(try coordinate(1, &graph), try coordinate(0, &graph))
        let area = try graph.builder.mul(height, width)
        let positions = try graph.builder.emit(.concat, [boxes, area], ["axis": .int(2)])
        let (boxWeightInit, boxBiasInit) = linearInit(5)
        var boxEmbedding = try graph.linear(positions, "\(prefix).absolute_vis_pos_embedding.0", out: d, origin: .visual, weightInit: boxWeightInit, biasInit: boxBiasInit)
        boxEmbedding = try norm(boxEmbedding, "\(prefix).absolute_vis_pos_embedding.1")

        // Image order (0 for the first image, 1 for the second) and object order (rows V−1−o).
        let imageIds = (0..<input.tokens).map { Int64($0 / input.tokensPerImage) }
        let objectIds = (0..<input.tokens).map { Int64(config.vocabSize - 1 - $0 % input.tokensPerImage) }
        let imageTable = try graph.parameter("\(prefix).img_order_embedding.weight", [2, d], origin: .visual,
            initializer: .normal(std: isBart ? config.initStd : 1.0))
        let imageOrder = try graph.builder.emit(.gather, [imageTable, try graph.constant(imageIds, TensorType(.i64, [input.tokens]))])
        let objectOrder = try graph.builder.emit(.gather, [try sharedEmbedding(), try graph.constant(objectIds, TensorType(.i64, [input.tokens]))])

        let sum = try graph.builder.add(try graph.builder.add(projected, boxEmbedding), try graph.builder.add(imageOrder, objectOrder))
        return sum
    }

    /// BART: LayerNorm (eps 1e-5); T5: RMSNorm (eps 1e-6), both trainable parts of the visual projector.
    private mutating func norm(_ x: Value, _ prefix: String) throws(Diagnostic) -> Value {
        spec.backbone.family == .bart
            ? try graph.layerNorm(x, prefix, eps: 1e-5, origin: .visual)
            : try graph.rmsNorm(x, prefix, eps: 1e-6, origin: .visual)
    }
}
