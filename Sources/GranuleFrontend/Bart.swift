import GranuleIR

/// BART (spec 4.1, VL-BART assembly of 3.3): post-LN encoder and decoder, learned positions with
/// offset 2, `layernorm_embedding` on text only, exact GELU, tied LM head plus `final_logits_bias`.
extension Lowering {
    static let float32Lowest = -3.4028234663852886e38

    mutating func bartLogits(inputIds: Value, attentionMask: Value, visual: (features: Value, boxes: Value)?, labels: Value) throws(Diagnostic) -> Value {
        // Padding is masked with float32's lowest value, as Hugging Face does; the same bias serves
        // the encoder's self-attention and the decoder's cross-attention.
        let paddingBias = try maskBias(try encoderMask(attentionMask), masked: Lowering.float32Lowest)
        let encoderOutput = try bartEncoder(inputIds: inputIds, visual: visual, bias: paddingBias)
        let decoded = try bartDecoder(try shiftRight(labels), encoderOutput: encoderOutput, crossBias: paddingBias)
        return try bartHead(decoded)
    }

    /// Token embeddings (× √d when `scale_embedding`) plus learned positions (index + 2).
    mutating func bartEmbed(_ ids: Value, positionsName: String, firstPosition: Int = 0) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let length = graph.shape(ids)[1]
        var tokens = try graph.builder.emit(.gather, [try sharedEmbedding(), ids])
        if config.scaleEmbedding { tokens = try graph.builder.mul(tokens, by: Double(config.dModel).squareRoot()) }
        let table = try graph.parameter(positionsName, [config.maxPositions + 2, config.dModel], origin: .backbone, initializer: .normal(std: config.initStd))
        let indices = (0..<length).map { Int64(firstPosition + $0 + 2) }
        let positions = try graph.builder.emit(.gather, [table, try graph.constant(indices, TensorType(.i64, [length]))])
        return try graph.builder.add(tokens, positions)
    }

    mutating func bartEncoder(inputIds: Value, visual: (features: Value, boxes: Value)?, bias: Value) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let pet = self.pet
        var text = try bartEmbed(inputIds, positionsName: "model.encoder.embed_positions.weight")
        if let prompts = try pet.prompts(&self) {
            let broadcast = try graph.builder.broadcast(prompts, to: [spec.batch.size] + graph.shape(prompts))
            text = try graph.builder.emit(.concat, [broadcast, text], ["axis": .int(1)])
        }
        text = try graph.layerNorm(text, "model.encoder.layernorm_embedding", eps: config.layerNormEps, origin: .backbone)
        var hidden = text
        if let visual {
            let embedded = try visualEmbedding(features: visual.features, boxes: visual.boxes, prefix: "model.encoder.visual_embedding")
            hidden = try graph.builder.emit(.concat, [text, embedded], ["axis": .int(1)])
        }
        hidden = try graph.dropout(hidden)
        for layer in 0..<config.encoderLayers {
            let prefix = "model.encoder.layers.\(layer)"
            // Self-attention sub-layer.
            let attentionInput = hidden
            let attended = try attention(hidden, keyValue: hidden, prefix: "\(prefix).self_attn", layout: .bart(headDim: config.headDim), bias: bias)
            let attentionBranch = try pet.encoderBranch(&self, sublayer: .attention, layer: layer, modulePrefix: prefix + ".", x: attentionInput, h: attended)
            hidden = try graph.layerNorm(
                try graph.builder.add(attentionInput, try graph.dropout(attentionBranch)), "\(prefix).self_attn_layer_norm",
                eps: config.layerNormEps, origin: .backbone)
            // Feed-forward sub-layer.
            let ffnInput = hidden
            let ffn = try bartFeedForward(hidden, prefix: prefix)
            let ffnBranch = try pet.encoderBranch(&self, sublayer: .feedForward, layer: layer, modulePrefix: prefix + ".", x: ffnInput, h: ffn)
            hidden = try graph.layerNorm(
                try graph.builder.add(ffnInput, try graph.dropout(ffnBranch)), "\(prefix).final_layer_norm",
                eps: config.layerNormEps, origin: .backbone)
        }
        return hidden
    }

    /// fc2(dropout(gelu(fc1 x))).
    mutating func bartFeedForward(_ x: Value, prefix: String) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let hidden = try projection(x, "\(prefix).fc1", out: config.ffnDim, bias: true, role: .output)
        let activated = try graph.dropout(try graph.gelu(hidden, approx: "erf"))
        return try projection(activated, "\(prefix).fc2", out: config.dModel, bias: true, role: .output)
    }

    mutating func bartDecoder(_ decoderIds: Value, encoderOutput: Value, crossBias: Value) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let length = graph.shape(decoderIds)[1]
        var hidden = try bartEmbed(decoderIds, positionsName: "model.decoder.embed_positions.weight")
        hidden = try graph.layerNorm(hidden, "model.decoder.layernorm_embedding", eps: config.layerNormEps, origin: .backbone)
        hidden = try graph.dropout(hidden)
        let causal = try causalBias(length, masked: Lowering.float32Lowest)
        for layer in 0..<config.decoderLayers {
            let cross = try crossKeysValues(encoderOutput, layer: layer)
            hidden = try bartDecoderLayer(hidden, layer: layer, selfBias: causal, cache: nil, cross: cross, crossBias: crossBias).hidden
        }
        return hidden
    }

    /// One post-LN decoder layer. Without a cache the self-attention attends over `x` itself;
    /// with one, `x` is one position whose keys and values are written into the cache at `step`.
    mutating func bartDecoderLayer(
        _ x: Value, layer: Int, selfBias: Value, cache: KVCache?, cross: (keys: Value, values: Value), crossBias: Value
    ) throws(Diagnostic) -> (hidden: Value, cache: KVCache?) {
        let config = spec.backbone
        let pet = self.pet
        let prefix = "model.decoder.layers.\(layer)"
        let layout = AttentionLayout.bart(headDim: config.headDim)
        let (keys, values, updated) = try selfKeysValues(x, prefix: "\(prefix).self_attn", layout: layout, cache: cache)
        let selfAttended = try attend(x, keys: keys, values: values, prefix: "\(prefix).self_attn", layout: layout, bias: selfBias)
        let selfBranch = try pet.decoderBranch(&self, sublayer: .selfAttention, layer: layer, modulePrefix: prefix + ".", h: selfAttended)
        var hidden = try graph.layerNorm(try graph.builder.add(x, try graph.dropout(selfBranch)), "\(prefix).self_attn_layer_norm", eps: config.layerNormEps, origin: .backbone)

        let crossAttended = try attend(hidden, keys: cross.keys, values: cross.values, prefix: "\(prefix).encoder_attn", layout: layout, bias: crossBias)
        let crossBranch = try pet.decoderBranch(&self, sublayer: .crossAttention, layer: layer, modulePrefix: prefix + ".", h: crossAttended)
        hidden = try graph.layerNorm(try graph.builder.add(hidden, try graph.dropout(crossBranch)), "\(prefix).encoder_attn_layer_norm", eps: config.layerNormEps, origin: .backbone)

        let ffn = try bartFeedForward(hidden, prefix: prefix)
        let ffnBranch = try pet.decoderBranch(&self, sublayer: .feedForward, layer: layer, modulePrefix: prefix + ".", h: ffn)
        hidden = try graph.layerNorm(try graph.builder.add(hidden, try graph.dropout(ffnBranch)), "\(prefix).final_layer_norm", eps: config.layerNormEps, origin: .backbone)
        return (hidden, updated)
    }

    /// Tied LM head plus `final_logits_bias`.
    mutating func bartHead(_ decoded: Value) throws(Diagnostic) -> Value {
        let logits = try graph.builder.matmul(decoded, try sharedEmbedding(), transposeB: true)
        let finalBias = try graph.parameter("final_logits_bias", [1, spec.backbone.vocabSize], origin: .backbone, initializer: .zeros, isBuffer: true)
        return try graph.builder.add(logits, finalBias)
    }

    /// [1, 1, T, T]: 0 on and below the diagonal, `masked` above it.
    mutating func causalBias(_ length: Int, masked: Double) throws(Diagnostic) -> Value {
        let rows = try graph.builder.emit(.iota, [], ["axis": .int(0)], type: TensorType(.i64, [length, length]))
        let columns = try graph.builder.emit(.iota, [], ["axis": .int(1)], type: TensorType(.i64, [length, length]))
        let future = try graph.builder.compare(columns, "gt", rows)
        let bias = try graph.builder.select(future, try graph.splat(masked, .scalar(.f32)), try graph.splat(0, .scalar(.f32)))
        return try graph.builder.reshape(bias, [1, 1, length, length])
    }
}
