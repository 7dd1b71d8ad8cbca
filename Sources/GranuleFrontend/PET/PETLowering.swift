import GranuleIR

/// Encoder and decoder sub-layers, where PET methods insert modules.
enum EncoderSublayer: Sendable { case attention, feedForward }
enum DecoderSublayer: Sendable { case selfAttention, crossAttention, feedForward }

/// The hooks through which a PET method changes the backbone's graph, and its rule for which
/// parameters train. Each method's modules live in their own file (VLPET.swift, Adapter.swift,
/// LoRA.swift, PromptTuning.swift); BitFit and full fine-tuning only change the trainable set.
struct PETLowering: Sendable {
    let spec: ModelSpec

    var family: BackboneConfig.Family { spec.backbone.family }

    /// The branch added to an encoder sub-layer's residual: `H` unless a module modifies it.
    /// `modulePrefix` is the sub-layer's checkpoint prefix (`model.encoder.layers.3.`,
    /// `encoder.block.3.layer.1.`); `x` is the sub-layer's input, `h` its output.
    func encoderBranch(
        _ lowering: inout Lowering, sublayer: EncoderSublayer, layer: Int, modulePrefix: String, x: Value, h: Value
    ) throws(Diagnostic) -> Value {
        switch spec.pet {
        case .vlpet(let options):
            return try vlpetBranch(&lowering, options, sublayer: sublayer, modulePrefix: modulePrefix, x: x, h: h)
        case .vlAdapter(let r):
            return try adapterBranch(&lowering, kind: .plain, r: r, prefix: adapterPrefix(modulePrefix, encoder: sublayer), h: h)
        case .compacter(let r, let n):
            return try adapterBranch(&lowering, kind: .phm(n: n), r: r, prefix: adapterPrefix(modulePrefix, encoder: sublayer), h: h)
        default:
            return h
        }
    }

    /// The branch added to a decoder sub-layer's residual (VL-Adapter and Compacter only).
    func decoderBranch(
        _ lowering: inout Lowering, sublayer: DecoderSublayer, layer: Int, modulePrefix: String, h: Value
    ) throws(Diagnostic) -> Value {
        switch spec.pet {
        case .vlAdapter(let r):
            return try adapterBranch(&lowering, kind: .plain, r: r, prefix: adapterPrefix(modulePrefix, decoder: sublayer), h: h)
        case .compacter(let r, let n):
            return try adapterBranch(&lowering, kind: .phm(n: n), r: r, prefix: adapterPrefix(modulePrefix, decoder: sublayer), h: h)
        default:
            return h
        }
    }

    /// The projected values of a decoder cross-attention (VL-PET's value-path adapter).
    func crossAttentionValue(_ lowering: inout Lowering, layer: Int, encoderOutput: Value, value: Value) throws(Diagnostic) -> Value {
        guard case .vlpet(let options) = spec.pet else { return value }
        return try valuePathAdapter(&lowering, options, layer: layer, encoderOutput: encoderOutput, value: value)
    }

    /// A backbone projection's output, after LoRA where it applies.
    func adjustProjection(
        _ lowering: inout Lowering, prefix: String, role: ProjectionRole, input: Value, output: Value
    ) throws(Diagnostic) -> Value {
        let isAttention = prefix.contains("ttention") || prefix.contains("attn")
        switch spec.pet {
        case .lora(let r, let alpha) where isAttention && (role == .query || role == .value):
            return try loraUpdate(&lowering, prefix: prefix, r: r, alpha: alpha, input: input, output: output)
        case .vlpet(let options):
            // LoRA + G: q and v of encoder self-attention, v of decoder cross-attention.
            guard case .lora(let alpha) = options.base else { return output }
            let encoderSelf = prefix.hasPrefix("model.encoder.") || prefix.hasPrefix("encoder.")
            let decoderCross = prefix.hasSuffix("encoder_attn") || prefix.hasSuffix("EncDecAttention")
            guard isAttention, (encoderSelf && (role == .query || role == .value)) || (decoderCross && role == .value) else { return output }
            return try loraUpdate(&lowering, prefix: prefix, r: options.r, alpha: alpha, input: input, output: output)
        default:
            return output
        }
    }

    /// Whether a parameter trains under this method (spec 2 and 7; the official code's name rules).
    func isTrainable(_ parameter: ModelParameter) -> Bool {
        if parameter.origin == .pet || parameter.origin == .visual { return true }
        let name = parameter.name
        let isNorm = name.contains("layer_norm") || name.contains("layernorm")
        switch spec.pet {
        case .vlpet:
            return name.contains("encoder.") && isNorm
        case .vlAdapter, .compacter:
            return isNorm
        case .lora, .bitfit:
            return name.contains("bias")
        case .promptTuning:
            return false
        case .full:
            return true
        }
    }

    /// Where VL-Adapter / Compacter modules of an encoder sub-layer are named.
    func adapterPrefix(_ modulePrefix: String, encoder sublayer: EncoderSublayer) -> String {
        if family == .t5 { return modulePrefix + "adapter" }
        return modulePrefix + (sublayer == .attention ? "attn_adapter" : "ff_adapter")
    }

    func adapterPrefix(_ modulePrefix: String, decoder sublayer: DecoderSublayer) -> String {
        if family == .t5 { return modulePrefix + "adapter" }
        switch sublayer {
        case .selfAttention: return modulePrefix + "attn_adapter"
        case .crossAttention: return modulePrefix + "cross_attn_adapter"
        case .feedForward: return modulePrefix + "ff_adapter"
        }
    }

    /// New linear layers: BART N(0, 0.02) weights and zero biases; T5 keeps PyTorch's default
    /// U(±1/√fan_in) for both (spec 1.6).
    func linearInit(fanIn: Int) -> (weight: ModelParameter.Initializer, bias: ModelParameter.Initializer) {
        if family == .bart { return (.normal(std: 0.02), .zeros) }
        let bound = 1 / Double(fanIn).squareRoot()
        return (.uniform(bound: bound), .uniform(bound: bound))
    }
}
