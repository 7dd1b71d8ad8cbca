import GranuleIR

/// The sizes and conventions of a backbone, read from a Hugging Face `config.json`.
public struct BackboneConfig: Sendable, Equatable {
    public enum Family: String, Sendable { case bart, t5 }

    public var family: Family
    public var dModel: Int
    public var encoderLayers: Int
    public var decoderLayers: Int
    public var heads: Int
    /// Per-head width (BART: dModel / heads; T5: `d_kv`).
    public var headDim: Int
    public var ffnDim: Int
    /// Token rows of the (already resized) shared embedding.
    public var vocabSize: Int
    public var padTokenId: Int
    public var eosTokenId: Int
    public var decoderStartTokenId: Int

    // Generation defaults of the config (Hugging Face `generate` reads them): nil / 0 / false when absent.
    public var bosTokenId: Int?
    public var forcedEosTokenId: Int?
    public var noRepeatNgramSize = 0
    public var earlyStopping = false

    // BART
    /// `init_std`: the standard deviation of Hugging Face's `_init_weights` for new BART weights.
    public var initStd = 0.02
    public var maxPositions = 0
    public var scaleEmbedding = false
    public var layerNormEps = 1e-5

    // T5
    public var relativeBuckets = 32
    public var relativeMaxDistance = 128
    /// `gated-gelu` (T5 v1.1) instead of ReLU.
    public var gatedGelu = false
    public var tiedEmbeddings = true

    /// Reads and validates a config; every error names the file and the field.
    public static func load(path: String) throws(Diagnostic) -> BackboneConfig {
        let json = try JSONFields.load(path)
        let modelType = try json.required("model_type").string()
        switch modelType {
        case "bart": return try bart(json)
        case "t5": return try t5(json)
        default:
            throw Diagnostic(file: path, "field 'model_type': unsupported model type \"\(modelType)\" (Granule compiles \"bart\" and \"t5\")")
        }
    }

    private static func bart(_ json: JSONFields) throws(Diagnostic) -> BackboneConfig {
        let d = try json.required("d_model").positiveInt()
        let heads = try json.required("encoder_attention_heads").positiveInt()
        let decoderHeads = try json.optional("decoder_attention_heads")?.positiveInt() ?? heads
        guard decoderHeads == heads else {
            throw Diagnostic(file: json.file, "field 'decoder_attention_heads': \(decoderHeads) differs from encoder_attention_heads (\(heads)); Granule needs them equal")
        }
        guard d % heads == 0 else {
            throw Diagnostic(file: json.file, "field 'd_model': \(d) is not divisible by encoder_attention_heads \(heads)")
        }
        let ffn = try json.required("encoder_ffn_dim").positiveInt()
        if let decoderFFN = try json.optional("decoder_ffn_dim"), try decoderFFN.positiveInt() != ffn {
            throw decoderFFN.failure("the same value as encoder_ffn_dim (\(ffn))")
        }
        let activation = try json.optional("activation_function")?.string() ?? "gelu"
        guard activation == "gelu" else { throw try json.required("activation_function").failure("\"gelu\"") }
        let normalizeBefore = try json.optional("normalize_before")?.bool() ?? false
        let finalLayerNorm = try json.optional("add_final_layer_norm")?.bool() ?? false
        if normalizeBefore || finalLayerNorm {
            throw Diagnostic(file: json.file, "pre-LN BART variants (normalize_before / add_final_layer_norm) are not supported")
        }
        var config = BackboneConfig(
            family: .bart, dModel: d,
            encoderLayers: try json.required("encoder_layers").positiveInt(),
            decoderLayers: try json.required("decoder_layers").positiveInt(),
            heads: heads, headDim: d / heads, ffnDim: ffn,
            vocabSize: try json.required("vocab_size").positiveInt(),
            padTokenId: try json.optional("pad_token_id")?.int() ?? 1,
            eosTokenId: try json.optional("eos_token_id")?.int() ?? 2,
            decoderStartTokenId: try json.optional("decoder_start_token_id")?.int() ?? 2)
        config.maxPositions = try json.required("max_position_embeddings").positiveInt()
        config.scaleEmbedding = try json.optional("scale_embedding")?.bool() ?? false
        config.initStd = try json.optional("init_std")?.double() ?? 0.02
        guard config.initStd > 0, config.initStd.isFinite else { throw try json.required("init_std").failure("a positive number") }
        return try config.validated(json)
    }

    private static func t5(_ json: JSONFields) throws(Diagnostic) -> BackboneConfig {
        let layers = try json.required("num_layers").positiveInt()
        let projection = try json.optional("feed_forward_proj")?.string(oneOf: ["relu", "gated-gelu"]) ?? "relu"
        var config = BackboneConfig(
            family: .t5, dModel: try json.required("d_model").positiveInt(),
            encoderLayers: layers,
            decoderLayers: try json.optional("num_decoder_layers")?.positiveInt() ?? layers,
            heads: try json.required("num_heads").positiveInt(),
            headDim: try json.required("d_kv").positiveInt(),
            ffnDim: try json.required("d_ff").positiveInt(),
            vocabSize: try json.required("vocab_size").positiveInt(),
            padTokenId: try json.optional("pad_token_id")?.int() ?? 0,
            eosTokenId: try json.optional("eos_token_id")?.int() ?? 1,
            decoderStartTokenId: try json.optional("decoder_start_token_id")?.int() ?? 0)
        config.relativeBuckets = try json.optional("relative_attention_num_buckets")?.positiveInt() ?? 32
        config.relativeMaxDistance = try json.optional("relative_attention_max_distance")?.positiveInt() ?? 128
        // The encoder's bidirectional buckets are halved, and half of those are exact distances:
        // fewer than 4 leaves no exact bucket, and a max distance within the decoder's exact range
        // leaves no log-spaced one (Hugging Face divides by zero in both cases).
        if config.relativeBuckets < 4 {
            throw try json.required("relative_attention_num_buckets").failure("at least 4 (the encoder halves them twice)")
        }
        if config.relativeMaxDistance <= config.relativeBuckets / 2 {
            throw try json.required("relative_attention_max_distance").failure(
                "more than half of relative_attention_num_buckets (\(config.relativeBuckets))")
        }
        config.layerNormEps = try json.optional("layer_norm_epsilon")?.double() ?? 1e-6
        if !(config.layerNormEps > 0 && config.layerNormEps.isFinite) {
            throw try json.required("layer_norm_epsilon").failure("a positive number")
        }
        config.gatedGelu = projection == "gated-gelu"
        config.tiedEmbeddings = try json.optional("tie_word_embeddings")?.bool() ?? true
        return try config.validated(json)
    }

    private func validated(_ json: JSONFields) throws(Diagnostic) -> BackboneConfig {
        var config = self
        config.bosTokenId = try json.optional("bos_token_id")?.int()
        config.forcedEosTokenId = try json.optional("forced_eos_token_id")?.int()
        config.noRepeatNgramSize = try json.optional("no_repeat_ngram_size")?.int() ?? 0
        config.earlyStopping = try json.optional("early_stopping")?.bool() ?? false
        guard config.noRepeatNgramSize >= 0 else { throw try json.required("no_repeat_ngram_size").failure("an n-gram size >= 0") }
        var ids = [("pad_token_id", padTokenId), ("eos_token_id", eosTokenId), ("decoder_start_token_id", decoderStartTokenId)]
        if let bos = config.bosTokenId { ids.append(("bos_token_id", bos)) }
        if let forced = config.forcedEosTokenId { ids.append(("forced_eos_token_id", forced)) }
        for (name, id) in ids where !(0..<vocabSize).contains(id) {
            throw Diagnostic(file: json.file, "field '\(name)': \(id) is outside the vocabulary [0, \(vocabSize))")
        }
        return config
    }
}
