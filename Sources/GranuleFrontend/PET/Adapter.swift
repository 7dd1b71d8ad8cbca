import GranuleIR

/// Bottleneck adapters: VL-Adapter's `H + up(gelu_tanh(down(H)))` (spec 7.2) and Compacter's
/// version whose projections are PHM layers `W = Σᵢ Aᵢ ⊗ Bᵢ` (spec 7.3).
extension PETLowering {
    enum AdapterKind: Sendable, Equatable {
        case plain
        case phm(n: Int)
    }

    /// `h + up(gelu_tanh(down(h)))` with parameters under `prefix.down_sampler` / `prefix.up_sampler`.
    func adapterBranch(_ lowering: inout Lowering, kind: AdapterKind, r: Int, prefix: String, h: Value, zeroUp: Bool = false) throws(Diagnostic) -> Value {
        let d = lowering.graph.shape(h).last!
        let down = try adapterProjection(&lowering, kind: kind, h, "\(prefix).down_sampler", out: r, zero: false)
        let activated = try lowering.graph.gelu(down, approx: "tanh")
        let up = try adapterProjection(&lowering, kind: kind, activated, "\(prefix).up_sampler", out: d, zero: zeroUp)
        return try lowering.graph.builder.add(h, up)
    }

    /// One adapter projection: `nn.Linear` for plain adapters, a PHM layer for Compacter.
    func adapterProjection(_ lowering: inout Lowering, kind: AdapterKind, _ x: Value, _ prefix: String, out: Int, zero: Bool) throws(Diagnostic) -> Value {
        let inFeatures = lowering.graph.shape(x).last!
        switch kind {
        case .plain:
            let (weightInit, biasInit) = zero ? (.zeros, .zeros) : linearInit(fanIn: inFeatures)
            return try lowering.graph.linear(x, prefix, out: out, origin: .pet, weightInit: weightInit, biasInit: biasInit)
        case .phm(let n):
            return try phmLinear(&lowering, x, prefix, out: out, n: n, zero: zero)
        }
    }

    /// `x·W + b` with `W[p·(in/n) + a, q·(out/n) + c] = Σᵢ A[i, p, q]·B[i, a, c]`: the Kronecker
    /// sum built by broadcasting, then one matmul. A (`phm_rule`) starts N(0, 1e-4²) and B
    /// (`phm_weight`) Glorot-uniform with gain √2, as Compacter does.
    func phmLinear(_ lowering: inout Lowering, _ x: Value, _ prefix: String, out: Int, n: Int, zero: Bool) throws(Diagnostic) -> Value {
        let inFeatures = lowering.graph.shape(x).last!
        let (inBlock, outBlock) = (inFeatures / n, out / n)
        let glorot = (2 * 6.0 / Double(inBlock + outBlock)).squareRoot()
        let rule = try lowering.graph.parameter("\(prefix).phm_rule", [n, n, n], origin: .pet, initializer: .normal(std: 1e-4))
        let weight = try lowering.graph.parameter("\(prefix).phm_weight", [n, inBlock, outBlock], origin: .pet,
            initializer: zero ? .zeros : .uniform(bound: glorot))
        let bias = try lowering.graph.parameter("\(prefix).bias", [out], origin: .pet, initializer: .zeros)
        let expandedRule = try lowering.graph.builder.reshape(rule, [n, n, 1, n, 1])
        let expandedWeight = try lowering.graph.builder.reshape(weight, [n, 1, inBlock, 1, outBlock])
        let products = try lowering.graph.builder.mul(expandedRule, expandedWeight)
        let summed = try lowering.graph.builder.reduceSum(products, axes: [0])
        let kronecker = try lowering.graph.builder.reshape(summed, [inFeatures, out])
        return try lowering.graph.builder.add(try lowering.graph.builder.matmul(x, kronecker), bias)
    }
}
