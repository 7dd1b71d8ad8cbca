import GranuleIR

/// A decoder self-attention cache: keys and values [B, heads, T, headDim] for every target
/// position, and the position `step` (i64[]) the current token is written to.
struct KVCache {
    var keys: Value
    var values: Value
    var step: Value
}

/// The graphs generation needs (spec 3.6):
///
/// - `@encode(input_ids, attention_mask[, vis_feats, vis_boxes]) -> (encoder_output, cross_bias,
///   cross_keys.<l>, cross_values.<l>)`: the encoder once per sequence, and every decoder layer's
///   cross-attention keys and values (VL-PET's value-path adapter included), so that they are
///   computed once per sequence;
/// - `@decode_step(token [B,1], step [], cross_bias, cross_keys.<l>, cross_values.<l>,
///   self_keys.<l>, self_values.<l>) -> (logits [B,V], self_keys.<l>, self_values.<l>)`: one
///   decoder position; the self-attention caches are `state` written back by the results.
///
/// Both run without dropout. Teacher-forced `@decode_step`s reproduce `@loss`'s logits.
extension Lowering {
    static func generationFunctions(_ spec: ModelSpec) throws(Diagnostic) -> [Function] {
        var encode = Lowering(spec: spec, graph: ModelGraph(name: "encode", dropoutRate: 0), pet: PETLowering(spec: spec))
        try encode.lowerEncode()
        var step = Lowering(spec: spec, graph: ModelGraph(name: "decode_step", dropoutRate: 0), pet: PETLowering(spec: spec))
        try step.lowerDecodeStep()
        return [encode.finish().module.functions[0], step.finish().module.functions[0]]
    }

    var encoderLength: Int { spec.batch.textLength + spec.pet.promptLength + (spec.visual?.tokens ?? 0) }

    var cacheType: TensorType {
        TensorType(.f32, [spec.batch.size, spec.backbone.heads, spec.batch.targetLength, spec.backbone.headDim])
    }

    mutating func lowerEncode() throws(Diagnostic) {
        let batch = spec.batch
        let inputIds = graph.input("input_ids", TensorType(.i64, [batch.size, batch.textLength]))
        let attentionMask = graph.input("attention_mask", TensorType(.i64, [batch.size, batch.textLength]))
        var visual: (features: Value, boxes: Value)?
        if let input = spec.visual {
            visual = (
                graph.input("vis_feats", TensorType(.f32, [batch.size, input.images, input.grid[0], input.grid[1], input.featureDim])),
                graph.input("vis_boxes", TensorType(.f32, [batch.size, input.tokens, 4])))
        }
        let mask = try encoderMask(attentionMask)
        let encoderOutput: Value
        let crossBias: Value
        switch spec.backbone.family {
        case .bart:
            crossBias = try maskBias(mask, masked: Lowering.float32Lowest)
            encoderOutput = try bartEncoder(inputIds: inputIds, visual: visual, bias: crossBias)
        case .t5:
            encoderOutput = try t5Encoder(inputIds: inputIds, visual: visual, mask: mask)
            crossBias = try maskBias(mask, masked: Lowering.t5CrossMask)
        }
        var results = [FunctionResult(name: "encoder_output", value: encoderOutput), FunctionResult(name: "cross_bias", value: crossBias)]
        for layer in 0..<spec.backbone.decoderLayers {
            let (keys, values) = try crossKeysValues(encoderOutput, layer: layer)
            results.append(FunctionResult(name: "cross_keys.\(layer)", value: keys))
            results.append(FunctionResult(name: "cross_values.\(layer)", value: values))
        }
        graph.builder.function.results = results
    }

    mutating func lowerDecodeStep() throws(Diagnostic) {
        let config = spec.backbone
        let batch = spec.batch.size
        let length = spec.batch.targetLength
        let token = graph.input("token", TensorType(.i64, [batch, 1]))
        let step = graph.input("step", .scalar(.i64))
        let crossBias = graph.input("cross_bias", TensorType(.f32, [batch, 1, 1, encoderLength]))
        let crossType = TensorType(.f32, [batch, config.heads, encoderLength, config.headDim])
        var cross: [(keys: Value, values: Value)] = []
        for layer in 0..<config.decoderLayers {
            cross.append((graph.input("cross_keys.\(layer)", crossType), graph.input("cross_values.\(layer)", crossType)))
        }
        var caches: [KVCache] = []
        for layer in 0..<config.decoderLayers {
            let keys = graph.builder.function.addParameter(named: "self_keys.\(layer)", type: cacheType, role: .state)
            let values = graph.builder.function.addParameter(named: "self_values.\(layer)", type: cacheType, role: .state)
            caches.append(KVCache(keys: keys, values: values, step: step))
        }
        let inputs = caches.flatMap { [$0.keys, $0.values] }

        // Positions after `step` hold no token yet: mask them out.
        let positions = try graph.builder.emit(.iota, [], ["axis": .int(0)], type: TensorType(.i64, [length]))
        let future = try graph.builder.compare(positions, "gt", step)
        let masked = spec.backbone.family == .bart ? Lowering.float32Lowest : Lowering.t5SelfMask
        let futureBias = try graph.builder.reshape(
            try graph.builder.select(future, try graph.splat(masked, .scalar(.f32)), try graph.splat(0, .scalar(.f32))), [1, 1, 1, length])

        var hidden: Value
        var updated: [KVCache] = []
        switch config.family {
        case .bart:
            let tokens = try graph.builder.emit(.gather, [try sharedEmbedding(), token])
            let scaled = config.scaleEmbedding ? try graph.builder.mul(tokens, by: Double(config.dModel).squareRoot()) : tokens
            let table = try graph.parameter("model.decoder.embed_positions.weight", [config.maxPositions + 2, config.dModel], origin: .backbone, initializer: .normal(std: config.initStd))
            // A step outside the cache would match no position below and leave the caches as they
            // were (T5's bias lookup checks it); taken through the positions it is an error.
            let checkedStep = try graph.builder.emit(.gather, [positions, try graph.builder.reshape(step, [1])], name: "step_in_cache")
            let index = try graph.builder.add(checkedStep, try graph.splat(2, .scalar(.i64)))
            hidden = try graph.builder.add(scaled, try graph.builder.emit(.gather, [table, index]))
            hidden = try graph.layerNorm(hidden, "model.decoder.layernorm_embedding", eps: config.layerNormEps, origin: .backbone)
            for layer in 0..<config.decoderLayers {
                let result = try bartDecoderLayer(hidden, layer: layer, selfBias: futureBias, cache: caches[layer], cross: cross[layer], crossBias: crossBias)
                hidden = result.hidden
                updated.append(result.cache!)
            }
            hidden = try bartHead(hidden)
        case .t5:
            hidden = try graph.builder.emit(.gather, [try sharedEmbedding(), token])
            // The relative-position bias of query `step` against every key position.
            let buckets = RelativePosition.buckets(
                queries: length, keys: length, bidirectional: false, buckets: config.relativeBuckets, maxDistance: config.relativeMaxDistance)
            let table = try graph.constant(buckets, TensorType(.i64, [length, length]))
            let row = try graph.builder.emit(.gather, [table, try graph.builder.reshape(step, [1])])
            let selfBias = try graph.builder.add(try relativeBias(row, table: Lowering.t5DecoderBiasTable), futureBias)
            for layer in 0..<config.decoderLayers {
                let result = try t5DecoderLayer(hidden, layer: layer, selfBias: selfBias, cache: caches[layer], cross: cross[layer], crossBias: crossBias)
                hidden = result.hidden
                updated.append(result.cache!)
            }
            hidden = try t5Head(try t5DecoderOutput(hidden))
        }
        let logits = try graph.builder.reshape(hidden, [batch, config.vocabSize])
        var results = [FunctionResult(name: "logits", value: logits)]
        for (layer, cache) in updated.enumerated() {
            results.append(FunctionResult(name: "self_keys.\(layer)", value: cache.keys, writes: inputs[2 * layer]))
            results.append(FunctionResult(name: "self_values.\(layer)", value: cache.values, writes: inputs[2 * layer + 1]))
        }
        graph.builder.function.results = results
    }

    /// A decoder layer's cross-attention keys and values from the encoder output, through the
    /// PET method's value hook (VL-PET's value-path adapter).
    mutating func crossKeysValues(_ encoderOutput: Value, layer: Int) throws(Diagnostic) -> (keys: Value, values: Value) {
        let prefix = spec.backbone.family == .bart ? "model.decoder.layers.\(layer).encoder_attn" : "decoder.block.\(layer).layer.1.EncDecAttention"
        let layout = spec.backbone.family == .bart ? AttentionLayout.bart(headDim: spec.backbone.headDim) : .t5
        return try projectKeysValues(encoderOutput, prefix: prefix, layout: layout, valueHook: { lowering, value throws(Diagnostic) in
            try lowering.pet.crossAttentionValue(&lowering, layer: layer, encoderOutput: encoderOutput, value: value)
        })
    }

    /// Self-attention keys and values of `x`; with a cache, written into it at the cache's step
    /// and returned whole (with the updated cache).
    mutating func selfKeysValues(_ x: Value, prefix: String, layout: AttentionLayout, cache: KVCache?) throws(Diagnostic) -> (Value, Value, KVCache?) {
        let (keys, values) = try projectKeysValues(x, prefix: prefix, layout: layout)
        guard let cache else { return (keys, values, nil) }
        let length = graph.shape(cache.keys)[2]
        let positions = try graph.builder.emit(.iota, [], ["axis": .int(2)], type: TensorType(.i64, [1, 1, length, 1]))
        let here = try graph.builder.compare(positions, "eq", cache.step)
        let newKeys = try graph.builder.select(here, keys, cache.keys)
        let newValues = try graph.builder.select(here, values, cache.values)
        return (newKeys, newValues, KVCache(keys: newKeys, values: newValues, step: cache.step))
    }
}
