import GranuleIR

/// Multi-head attention as BART and T5 compute it.
struct AttentionLayout {
    /// Names of the four projections under the attention's prefix (`q_proj`... or `q`...).
    var query: String
    var key: String
    var value: String
    var output: String
    var hasBias: Bool
    /// Multiplier of the query projection (BART: head_dim^-1/2; T5: none).
    var queryScale: Double?

    static func bart(headDim: Int) -> AttentionLayout {
        AttentionLayout(query: "q_proj", key: "k_proj", value: "v_proj", output: "out_proj", hasBias: true, queryScale: 1 / Double(headDim).squareRoot())
    }

    static let t5 = AttentionLayout(query: "q", key: "k", value: "v", output: "o", hasBias: false, queryScale: nil)
}

/// Which projection of an attention a PET hook sees.
enum ProjectionRole: Sendable { case query, key, value, output }

extension Lowering {
    /// `softmax((x Wq)(kv Wk)ᵀ + bias) (kv Wv) Wo` over `heads` heads.
    /// `bias` broadcasts to [B, heads, Tq, Tk]; `valueHook` may modify the projected values
    /// ([B, Tk, heads·headDim]) before they are split into heads (the decoder value-path adapter).
    mutating func attention(
        _ x: Value, keyValue: Value, prefix: String, layout: AttentionLayout, bias: Value?,
        valueHook: ((inout Lowering, Value) throws(Diagnostic) -> Value)? = nil
    ) throws(Diagnostic) -> Value {
        let (keys, values) = try projectKeysValues(keyValue, prefix: prefix, layout: layout, valueHook: valueHook)
        return try attend(x, keys: keys, values: values, prefix: prefix, layout: layout, bias: bias)
    }

    /// Keys and values split into heads, [B, heads, Tk, headDim] each: what a KV cache holds.
    mutating func projectKeysValues(
        _ keyValue: Value, prefix: String, layout: AttentionLayout,
        valueHook: ((inout Lowering, Value) throws(Diagnostic) -> Value)? = nil
    ) throws(Diagnostic) -> (keys: Value, values: Value) {
        let inner = spec.backbone.heads * spec.backbone.headDim
        let k = try projection(keyValue, "\(prefix).\(layout.key)", out: inner, bias: layout.hasBias, role: .key)
        var v = try projection(keyValue, "\(prefix).\(layout.value)", out: inner, bias: layout.hasBias, role: .value)
        if let valueHook { v = try valueHook(&self, v) }
        return (try splitHeads(k), try splitHeads(v))
    }

    /// The query side of attention over given keys and values, then the output projection.
    mutating func attend(_ x: Value, keys: Value, values: Value, prefix: String, layout: AttentionLayout, bias: Value?) throws(Diagnostic) -> Value {
        let config = spec.backbone
        let inner = config.heads * config.headDim
        let (batch, queries) = (graph.shape(x)[0], graph.shape(x)[1])
        var q = try projection(x, "\(prefix).\(layout.query)", out: inner, bias: layout.hasBias, role: .query)
        if let scale = layout.queryScale { q = try graph.builder.mul(q, by: scale) }
        var scores = try graph.builder.matmul(try splitHeads(q), keys, transposeB: true)
        if let bias { scores = try graph.builder.add(scores, bias) }
        var probabilities = try graph.builder.emit(.softmax, [scores], ["axis": .int(3)])
        probabilities = try graph.dropout(probabilities)
        let context = try graph.builder.matmul(probabilities, values)
        let merged = try graph.builder.reshape(try graph.builder.transpose(context, [0, 2, 1, 3]), [batch, queries, inner])
        return try projection(merged, "\(prefix).\(layout.output)", out: config.dModel, bias: layout.hasBias, role: .output)
    }

    /// [B, T, heads·headDim] → [B, heads, T, headDim].
    mutating func splitHeads(_ t: Value) throws(Diagnostic) -> Value {
        let (batch, length) = (graph.shape(t)[0], graph.shape(t)[1])
        let split = try graph.builder.reshape(t, [batch, length, spec.backbone.heads, spec.backbone.headDim])
        return try graph.builder.transpose(split, [0, 2, 1, 3])
    }

    /// A backbone projection `prefix` (`nn.Linear` [out, in]), through the PET method's hook (LoRA).
    mutating func projection(_ x: Value, _ prefix: String, out: Int, bias: Bool, role: ProjectionRole) throws(Diagnostic) -> Value {
        let inFeatures = graph.shape(x).last!
        let weight = try graph.parameter("\(prefix).weight", [out, inFeatures], origin: .backbone, initializer: backboneLinearInit(inFeatures))
        let biasValue = bias ? try graph.parameter("\(prefix).bias", [out], origin: .backbone, initializer: .zeros) : nil
        let y = try graph.linear(x, weight: weight, bias: biasValue)
        return try pet.adjustProjection(&self, prefix: prefix, role: role, input: x, output: y)
    }
}
