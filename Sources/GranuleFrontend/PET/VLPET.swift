import GranuleIR

/// VL-PET's encoder module (spec 1.2–1.4) and decoder value-path adapter (spec 1.5).
///
/// Encoder sub-layer with input X and output H:
/// `H' = H + ΔH(H)` (multi-head down projections stacked into one `d→r` matrix, gelu_tanh, up),
/// then the branch `s · G ⊙ H'` whose gate G has the chosen granularity:
/// large `σ(up(gelu_tanh(down X)))` [B,N,d]; middleX `σ(w·(X + H') + b)` [B,N,1];
/// middleY `1 + z` [d] (the released code: no sigmoid); small `mean_t σ(w·[X_t, H'_t] + b)` [B,1,1].
extension PETLowering {
    func vlpetBranch(
        _ lowering: inout Lowering, _ options: PETMethod.VLPETOptions, sublayer: EncoderSublayer, modulePrefix: String, x: Value, h: Value
    ) throws(Diagnostic) -> Value {
        let d = lowering.graph.shape(h).last!
        let s = sublayer == .attention ? "attn" : "ff"
        let zeroInit = options.zeroInit

        // ΔH: VL-PET's multi-head adapter, or a PHM adapter for "Compacter + G" (Table 9).
        let adapted: Value
        switch options.base {
        case .adapter:
            let (downWeight, downBias) = linearInit(fanIn: d)
            let down = try lowering.graph.linear(h, "\(modulePrefix)\(s)_adapter_multihead_down", out: options.r, origin: .pet, weightInit: downWeight, biasInit: downBias)
            let activated = try lowering.graph.gelu(down, approx: "tanh")
            let (upWeight, upBias) = zeroInit ? (.zeros, .zeros) : linearInit(fanIn: options.r)
            let up = try lowering.graph.linear(activated, "\(modulePrefix)\(s)_adapter_multihead_up", out: d, origin: .pet, weightInit: upWeight, biasInit: upBias)
            adapted = try lowering.graph.builder.add(h, up)
        case .compacter(let n):
            adapted = try adapterBranch(&lowering, kind: .phm(n: n), r: options.r, prefix: "\(modulePrefix)\(s)_adapter", h: h, zeroUp: zeroInit)
        case .lora:
            adapted = h  // LoRA acts inside the attention's projections (adjustProjection).
        }

        let gatePrefix = "\(modulePrefix)encoder_\(s)_adapter_gating"
        var branch: Value
        switch options.granularity {
        case .large:
            let (downWeight, downBias) = linearInit(fanIn: d)
            let down = try lowering.graph.linear(x, "\(gatePrefix)_large_x_down", out: options.gateR, origin: .pet, weightInit: downWeight, biasInit: downBias)
            let activated = try lowering.graph.gelu(down, approx: "tanh")
            let (upWeight, upBias) = zeroInit ? (.zeros, .zeros) : linearInit(fanIn: options.gateR)
            let logits = try lowering.graph.linear(activated, "\(gatePrefix)_large_x_up", out: d, origin: .pet, weightInit: upWeight, biasInit: upBias)
            let gate = try lowering.graph.builder.emit(.sigmoid, [logits])
            branch = try lowering.graph.builder.mul(gate, adapted)
        case .middlex:
            let (weightInit, biasInit) = zeroInit ? (.zeros, .zeros) : linearInit(fanIn: d)
            let sum = try lowering.graph.builder.add(x, adapted)
            let logits = try lowering.graph.linear(sum, "\(gatePrefix)_middle_xy_add", out: 1, origin: .pet, weightInit: weightInit, biasInit: biasInit)
            branch = try lowering.graph.builder.mul(try lowering.graph.builder.emit(.sigmoid, [logits]), adapted)
        case .middley:
            let z = try lowering.graph.parameter("\(gatePrefix)_middle_ia3_add", [d], origin: .pet,
                initializer: zeroInit ? .zeros : .normal(std: 0.02))
            branch = try lowering.graph.builder.add(adapted, try lowering.graph.builder.mul(adapted, z))
        case .small:
            let (weightInit, biasInit) = zeroInit ? (.zeros, .zeros) : linearInit(fanIn: 2 * d)
            let joined = try lowering.graph.builder.emit(.concat, [x, adapted], ["axis": .int(2)])
            let logits = try lowering.graph.linear(joined, "\(gatePrefix)_small_xy_cat", out: 1, origin: .pet, weightInit: weightInit, biasInit: biasInit)
            // The mean runs over every position, padding included (spec 1.3).
            let gate = try lowering.graph.builder.reduceMean(try lowering.graph.builder.emit(.sigmoid, [logits]), axes: [1], keepDims: true)
            branch = try lowering.graph.builder.mul(gate, adapted)
        }
        if options.scale != 1 { branch = try lowering.graph.builder.mul(branch, by: options.scale) }
        return branch
    }

    /// `V + up(gelu_tanh(down(E)))` on a decoder cross-attention's values (N_h = 1, no gate, no scaling).
    func valuePathAdapter(
        _ lowering: inout Lowering, _ options: PETMethod.VLPETOptions, layer: Int, encoderOutput: Value, value: Value
    ) throws(Diagnostic) -> Value {
        let prefix = family == .bart
            ? "model.decoder.layers.\(layer).encoder_attn.attn_value_parallel_adapter.adapters.shared"
            : "decoder.block.\(layer).layer.1.EncDecAttention.attn_value_parallel_adapter.adapters.shared"
        let kind: AdapterKind
        switch options.base {
        case .adapter: kind = .plain
        case .compacter(let n): kind = .phm(n: n)
        case .lora: return value  // the value-path module is LoRA on v (adjustProjection)
        }
        let down = try adapterProjection(&lowering, kind: kind, encoderOutput, "\(prefix).down_sampler", out: options.valueR, zero: false)
        let activated = try lowering.graph.gelu(down, approx: "tanh")
        let up = try adapterProjection(&lowering, kind: kind, activated, "\(prefix).up_sampler", out: lowering.graph.shape(value).last!, zero: options.zeroInit)
        return try lowering.graph.builder.add(value, up)
    }
}
