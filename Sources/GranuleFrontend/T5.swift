import GranuleIR

/// T5 (spec 4.2, VL-T5 assembly of 3.3): pre-RMSNorm blocks, no attention scaling, relative
/// position buckets owned by layer 0 (text×text block only in the VL encoder), ReLU or gated-GELU
/// FFN without biases, tied head scaled by d^-1/2 (untied heads unscaled).
extension Lowering {
    /// Masks of Hugging Face 4.2.1's T5 (spec 4.2): −1e4 in self-attention, −1e9 across.
    static let t5SelfMask = -10000.0
    static let t5CrossMask = -1e9

    mutating func t5Logits(inputIds: Value, attentionMask: Value, visual: (features: Value, boxes: Value)?, labels: Value) throws(Diagnostic) -> Value {
        guard spec.pet.promptLength == 0 else {
            throw Diagnostic(file: spec.backbonePath, "prompt tuning is defined for BART backbones only (spec 7.7)")
        }
        let mask = try encoderMask(attentionMask)
        let encoderOutput = try t5Encoder(inputIds: inputIds, visual: visual, mask: mask)
        let decoded = try t5Decoder(try shiftRight(labels), encoderOutput: encoderOutput, crossBias: try maskBias(mask, masked: Lowering.t5CrossMask))
        return try t5Head(decoded)
    }

    mutating func t5Encoder(inputIds: Value, visual: (features: Value, boxes: Value)?, mask: Value) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let pet = self.pet
        let textLength = spec.batch.textLength
        var hidden = try graph.builder.emit(.gather, [try sharedEmbedding(), inputIds])
        if let visual {
            let embedded = try visualEmbedding(features: visual.features, boxes: visual.boxes, prefix: "encoder.visual_embedding")
            hidden = try graph.builder.emit(.concat, [hidden, embedded], ["axis": .int(1)])
        }
        hidden = try graph.dropout(hidden)
        let length = graph.shape(hidden)[1]

        // Relative position bias on the text×text block (zero wherever a visual token is involved),
        // plus the padding mask; computed once, shared by every layer.
        let buckets = RelativePosition.buckets(
            queries: textLength, keys: textLength, bidirectional: true, buckets: config.relativeBuckets, maxDistance: config.relativeMaxDistance)
        var positionBias = try relativeBias(
            try graph.constant(buckets, TensorType(.i64, [textLength, textLength])), table: "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
        if length > textLength {
            let extra = length - textLength
            positionBias = try graph.builder.emit(.pad, [positionBias], ["low": .ints([0, 0, 0, 0]), "high": .ints([0, 0, extra, extra])])
        }
        let bias = try graph.builder.add(positionBias, try maskBias(mask, masked: Lowering.t5SelfMask))

        for layer in 0..<config.encoderLayers {
            let attentionPrefix = "encoder.block.\(layer).layer.0"
            let normalized = try graph.rmsNorm(hidden, "\(attentionPrefix).layer_norm", eps: config.layerNormEps, origin: .backbone)
            let attended = try attention(normalized, keyValue: normalized, prefix: "\(attentionPrefix).SelfAttention", layout: .t5, bias: bias)
            let attentionBranch = try pet.encoderBranch(&self, sublayer: .attention, layer: layer, modulePrefix: attentionPrefix + ".", x: hidden, h: attended)
            hidden = try graph.builder.add(hidden, try graph.dropout(attentionBranch))

            let ffnPrefix = "encoder.block.\(layer).layer.1"
            let ffn = try t5FeedForward(try graph.rmsNorm(hidden, "\(ffnPrefix).layer_norm", eps: config.layerNormEps, origin: .backbone), prefix: ffnPrefix)
            let ffnBranch = try pet.encoderBranch(&self, sublayer: .feedForward, layer: layer, modulePrefix: ffnPrefix + ".", x: hidden, h: ffn)
            hidden = try graph.builder.add(hidden, try graph.dropout(ffnBranch))
        }
        return try graph.dropout(try graph.rmsNorm(hidden, "encoder.final_layer_norm", eps: config.layerNormEps, origin: .backbone))
    }

    mutating func t5Decoder(_ decoderIds: Value, encoderOutput: Value, crossBias: Value) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let length = graph.shape(decoderIds)[1]
        var hidden = try graph.dropout(try graph.builder.emit(.gather, [try sharedEmbedding(), decoderIds]))
        let buckets = RelativePosition.buckets(
            queries: length, keys: length, bidirectional: false, buckets: config.relativeBuckets, maxDistance: config.relativeMaxDistance)
        let positionBias = try relativeBias(try graph.constant(buckets, TensorType(.i64, [length, length])), table: Lowering.t5DecoderBiasTable)
        let selfBias = try graph.builder.add(positionBias, try causalBias(length, masked: Lowering.t5SelfMask))
        for layer in 0..<config.decoderLayers {
            let cross = try crossKeysValues(encoderOutput, layer: layer)
            hidden = try t5DecoderLayer(hidden, layer: layer, selfBias: selfBias, cache: nil, cross: cross, crossBias: crossBias).hidden
        }
        return try t5DecoderOutput(hidden)
    }

    static let t5DecoderBiasTable = "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"

    /// One pre-norm decoder block (see `bartDecoderLayer` for the cache).
    mutating func t5DecoderLayer(
        _ x: Value, layer: Int, selfBias: Value, cache: KVCache?, cross: (keys: Value, values: Value), crossBias: Value
    ) throws(Diagnostic) -> (hidden: Value, cache: KVCache?) {
        let config = spec.backbone
        let pet = self.pet
        let selfPrefix = "decoder.block.\(layer).layer.0"
        let normalized = try graph.rmsNorm(x, "\(selfPrefix).layer_norm", eps: config.layerNormEps, origin: .backbone)
        let (keys, values, updated) = try selfKeysValues(normalized, prefix: "\(selfPrefix).SelfAttention", layout: .t5, cache: cache)
        let selfAttended = try attend(normalized, keys: keys, values: values, prefix: "\(selfPrefix).SelfAttention", layout: .t5, bias: selfBias)
        let selfBranch = try pet.decoderBranch(&self, sublayer: .selfAttention, layer: layer, modulePrefix: selfPrefix + ".", h: selfAttended)
        var hidden = try graph.builder.add(x, try graph.dropout(selfBranch))

        let crossPrefix = "decoder.block.\(layer).layer.1"
        let crossInput = try graph.rmsNorm(hidden, "\(crossPrefix).layer_norm", eps: config.layerNormEps, origin: .backbone)
        let crossAttended = try attend(crossInput, keys: cross.keys, values: cross.values, prefix: "\(crossPrefix).EncDecAttention", layout: .t5, bias: crossBias)
        let crossBranch = try pet.decoderBranch(&self, sublayer: .crossAttention, layer: layer, modulePrefix: crossPrefix + ".", h: crossAttended)
        hidden = try graph.builder.add(hidden, try graph.dropout(crossBranch))

        let ffnPrefix = "decoder.block.\(layer).layer.2"
        let ffn = try t5FeedForward(try graph.rmsNorm(hidden, "\(ffnPrefix).layer_norm", eps: config.layerNormEps, origin: .backbone), prefix: ffnPrefix)
        let ffnBranch = try pet.decoderBranch(&self, sublayer: .feedForward, layer: layer, modulePrefix: ffnPrefix + ".", h: ffn)
        hidden = try graph.builder.add(hidden, try graph.dropout(ffnBranch))
        return (hidden, updated)
    }

    mutating func t5DecoderOutput(_ hidden: Value) throws(Diagnostic) -> Value {
        try graph.dropout(try graph.rmsNorm(hidden, "decoder.final_layer_norm", eps: spec.backbone.layerNormEps, origin: .backbone))
    }

    /// The LM head: tied and scaled by d^-1/2, or an untied `lm_head` (T5 v1.1).
    mutating func t5Head(_ decoded: Value) throws(Diagnostic) -> Value {
        let config = spec.backbone
        if config.tiedEmbeddings {
            let scaled = try graph.builder.mul(decoded, by: 1 / Double(config.dModel).squareRoot())
            return try graph.builder.matmul(scaled, try sharedEmbedding(), transposeB: true)
        }
        let head = try graph.parameter("lm_head.weight", [config.vocabSize, config.dModel], origin: .backbone, initializer: .normal(std: 1))
        return try graph.builder.matmul(decoded, head, transposeB: true)
    }

    /// `wo(dropout(relu(wi x)))`, or `wo(dropout(gelu_tanh(wi_0 x) ⊙ wi_1 x))` for gated-GELU.
    mutating func t5FeedForward(_ x: Value, prefix: String) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let dense = "\(prefix).DenseReluDense"
        let activated: Value
        if config.gatedGelu {
            let gate = try graph.gelu(try projection(x, "\(dense).wi_0", out: config.ffnDim, bias: false, role: .output), approx: "tanh")
            let linear = try projection(x, "\(dense).wi_1", out: config.ffnDim, bias: false, role: .output)
            activated = try graph.builder.mul(gate, linear)
        } else {
            activated = try graph.builder.emit(.relu, [try projection(x, "\(dense).wi", out: config.ffnDim, bias: false, role: .output)])
        }
        return try projection(try graph.dropout(activated), "\(dense).wo", out: config.dModel, bias: false, role: .output)
    }

    /// [1, heads, queries, keys] from bucket ids [queries, keys] and layer 0's bias embedding.
    mutating func relativeBias(_ buckets: Value, table: String) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let (queries, keys) = (graph.shape(buckets)[0], graph.shape(buckets)[1])
        let weights = try graph.parameter(table, [config.relativeBuckets, config.heads], origin: .backbone,
            initializer: .normal(std: 1 / Double(config.dModel).squareRoot()))
        let gathered = try graph.builder.emit(.gather, [weights, buckets])
        let perHead = try graph.builder.transpose(gathered, [2, 0, 1])
        return try graph.builder.reshape(perHead, [1, config.heads, queries, keys])
    }
}
