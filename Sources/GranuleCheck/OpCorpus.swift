/// A small program per differentiable op and shape (broadcasting included): the op's result `%y`
/// is weighted by a random input `%w` and summed into a scalar loss, so every element of the
/// adjoint differs. Gradient checks, the JIT and AOT equivalence tests all run this corpus.
public struct GradientCase: Sendable, CustomStringConvertible {
    public var name: String
    public var parameters: String
    public var body: String
    public var resultType: String
    public var description: String { name }

    public init(name: String, parameters: String, body: String, resultType: String) {
        self.name = name
        self.parameters = parameters
        self.body = body
        self.resultType = resultType
    }

    public var source: String {
        let rank = resultType.split(separator: ",").count - (resultType.hasSuffix("[]") ? 1 : 0)
        let axes = (0..<rank).map(String.init).joined(separator: ", ")
        return """
            func @f(\(parameters), %w: \(resultType) input) -> (loss: f32[]) {
            \(body)
              %wy = mul %y, %w : \(resultType)
              %loss = reduce_sum %wy {axes = [\(axes)]} : f32[]
              return %loss
            }
            """
    }
}

/// `%xp = x*x + 0.5`: a positive version of `%x` for ops defined on positive numbers.
private func positive(_ name: String, _ type: String) -> String {
    """
      %\(name).sq = mul %\(name), %\(name) : \(type)
      %\(name).half = constant splat<0.5> : f32[]
      %\(name)p = add %\(name).sq, %\(name).half : \(type)
    """
}

private func unaryCases() -> [GradientCase] {
    var cases: [GradientCase] = []
    for type in ["f32[7]", "f32[3,4]"] {
        for op in ["neg", "abs", "exp", "tanh", "sigmoid", "relu", "erf"] {
            cases.append(GradientCase(name: "\(op) \(type)", parameters: "%x: \(type) trainable", body: "  %y = \(op) %x : \(type)", resultType: type))
        }
        for op in ["log", "sqrt", "rsqrt"] {
            cases.append(GradientCase(name: "\(op) \(type)", parameters: "%x: \(type) trainable", body: positive("x", type) + "\n  %y = \(op) %xp : \(type)", resultType: type))
        }
        for exponent in ["3.0", "0.5", "-1.5"] {
            cases.append(GradientCase(name: "pow \(exponent) \(type)", parameters: "%x: \(type) trainable", body: positive("x", type) + "\n  %y = pow %xp {exponent = \(exponent)} : \(type)", resultType: type))
        }
        for approx in ["erf", "tanh"] {
            cases.append(GradientCase(name: "gelu \(approx) \(type)", parameters: "%x: \(type) trainable", body: "  %y = gelu %x {approx = \(approx)} : \(type)", resultType: type))
        }
    }
    return cases
}

private func binaryCases() -> [GradientCase] {
    var cases: [GradientCase] = []
    let shapes = [("f32[3,4]", "f32[3,4]", "f32[3,4]"), ("f32[3,4]", "f32[4]", "f32[3,4]"), ("f32[3,1]", "f32[2,1,4]", "f32[2,3,4]")]
    for (a, b, y) in shapes {
        for op in ["add", "sub", "mul", "max", "min"] {
            cases.append(GradientCase(name: "\(op) \(a) \(b)", parameters: "%a: \(a) trainable, %b: \(b) trainable", body: "  %y = \(op) %a, %b : \(y)", resultType: y))
        }
        cases.append(GradientCase(name: "div \(a) \(b)", parameters: "%a: \(a) trainable, %b: \(b) trainable", body: positive("b", b) + "\n  %y = div %a, %bp : \(y)", resultType: y))
        cases.append(GradientCase(
            name: "select \(a) \(b)", parameters: "%a: \(a) trainable, %b: \(b) trainable, %c: \(y) input",
            body: "  %zero = constant splat<0.0> : f32[]\n  %cond = compare %c, %zero {predicate = gt} : i1\(y.dropFirst(3))\n  %y = select %cond, %a, %b : \(y)",
            resultType: y))
    }
    return cases
}

private func reductionCases() -> [GradientCase] {
    var cases: [GradientCase] = []
    for op in ["reduce_sum", "reduce_mean", "reduce_max"] {
        cases.append(GradientCase(name: "\(op) [1]", parameters: "%x: f32[3,4] trainable", body: "  %y = \(op) %x {axes = [1]} : f32[3]", resultType: "f32[3]"))
        cases.append(GradientCase(name: "\(op) [0,2] keepdims", parameters: "%x: f32[2,3,4] trainable", body: "  %y = \(op) %x {axes = [0, 2], keepdims = true} : f32[1,3,1]", resultType: "f32[1,3,1]"))
    }
    return cases
}

private func matmulCases() -> [GradientCase] {
    var cases: [GradientCase] = []
    for transposeA in [false, true] {
        for transposeB in [false, true] {
            var flags: [String] = []
            if transposeA { flags.append("transpose_a = true") }
            if transposeB { flags.append("transpose_b = true") }
            let attributes = flags.isEmpty ? "" : " {\(flags.joined(separator: ", "))}"
            let shapes: [(String, String, String)] = [
                (transposeA ? "f32[4,3]" : "f32[3,4]", transposeB ? "f32[5,4]" : "f32[4,5]", "f32[3,5]"),
                (transposeA ? "f32[2,4,3]" : "f32[2,3,4]", transposeB ? "f32[2,5,4]" : "f32[2,4,5]", "f32[2,3,5]"),
                (transposeA ? "f32[2,2,4,3]" : "f32[2,2,3,4]", transposeB ? "f32[5,4]" : "f32[4,5]", "f32[2,2,3,5]"),
            ]
            for (a, b, y) in shapes {
                cases.append(GradientCase(name: "matmul\(attributes) \(a) \(b)", parameters: "%a: \(a) trainable, %b: \(b) trainable", body: "  %y = matmul %a, %b\(attributes) : \(y)", resultType: y))
            }
        }
    }
    return cases
}

private func movementCases() -> [GradientCase] {
    [
        GradientCase(name: "reshape", parameters: "%x: f32[2,6] trainable", body: "  %y = reshape %x : f32[3,2,2]", resultType: "f32[3,2,2]"),
        GradientCase(name: "transpose", parameters: "%x: f32[2,3,4] trainable", body: "  %y = transpose %x {perm = [2, 0, 1]} : f32[4,2,3]", resultType: "f32[4,2,3]"),
        GradientCase(name: "slice", parameters: "%x: f32[4,5] trainable", body: "  %y = slice %x {limit = [3, 5], start = [1, 2]} : f32[2,3]", resultType: "f32[2,3]"),
        GradientCase(name: "pad", parameters: "%x: f32[2,3] trainable", body: "  %y = pad %x {high = [0, 2], low = [1, 1]} : f32[3,6]", resultType: "f32[3,6]"),
        GradientCase(name: "concat", parameters: "%a: f32[2,3] trainable, %b: f32[2,1] trainable, %c: f32[2,2] trainable", body: "  %y = concat %a, %b, %c {axis = 1} : f32[2,6]", resultType: "f32[2,6]"),
        GradientCase(name: "broadcast_to", parameters: "%x: f32[3,1] trainable", body: "  %y = broadcast_to %x : f32[2,3,4]", resultType: "f32[2,3,4]"),
        GradientCase(name: "gather", parameters: "%t: f32[6,3] trainable, %i: i64[2,4] input", body: "  %y = gather %t, %i : f32[2,4,3]", resultType: "f32[2,4,3]"),
        GradientCase(name: "gather repeated rows", parameters: "%t: f32[3,2] trainable", body: "  %i = constant dense<[0, 2, 2, 0, 2]> : i32[5]\n  %y = gather %t, %i : f32[5,2]", resultType: "f32[5,2]"),
        GradientCase(name: "scatter_add", parameters: "%t: f32[5,3] trainable, %i: i64[4] input, %u: f32[4,3] trainable", body: "  %y = scatter_add %t, %i, %u : f32[5,3]", resultType: "f32[5,3]"),
        GradientCase(name: "cast f64", parameters: "%x: f32[3,2] trainable", body: "  %d = cast %x : f64[3,2]\n  %e = exp %d : f64[3,2]\n  %y = cast %e : f32[3,2]", resultType: "f32[3,2]"),
        GradientCase(name: "max_pool2d", parameters: "%x: f32[2,4,4,3] trainable", body: "  %y = max_pool2d %x {window = [2, 2]} : f32[2,3,3,3]", resultType: "f32[2,3,3,3]"),
        GradientCase(name: "max_pool2d 3x2", parameters: "%x: f32[3,4,2] trainable", body: "  %y = max_pool2d %x {window = [3, 2]} : f32[1,3,2]", resultType: "f32[1,3,2]"),
        GradientCase(name: "dropout", parameters: "%x: f32[4,6] trainable, %seed: i64[] input", body: "  %y = dropout %x, %seed {offset = 7, rate = 0.3} : f32[4,6]", resultType: "f32[4,6]"),
        // Second shapes of the data-movement ops.
        GradientCase(name: "reshape to rank 1", parameters: "%x: f32[2,3,2] trainable", body: "  %y = reshape %x : f32[12]", resultType: "f32[12]"),
        GradientCase(name: "transpose last two", parameters: "%x: f32[2,3,4] trainable", body: "  %y = transpose %x {perm = [0, 2, 1]} : f32[2,4,3]", resultType: "f32[2,4,3]"),
        GradientCase(name: "slice rank 3", parameters: "%x: f32[3,4,5] trainable", body: "  %y = slice %x {limit = [2, 4, 3], start = [1, 1, 0]} : f32[1,3,3]", resultType: "f32[1,3,3]"),
        GradientCase(name: "pad rank 3", parameters: "%x: f32[2,2,3] trainable", body: "  %y = pad %x {high = [1, 0, 0], low = [0, 2, 1]} : f32[3,4,4]", resultType: "f32[3,4,4]"),
        GradientCase(name: "concat axis 0", parameters: "%a: f32[1,3] trainable, %b: f32[2,3] trainable", body: "  %y = concat %a, %b {axis = 0} : f32[3,3]", resultType: "f32[3,3]"),
        GradientCase(name: "broadcast_to leading", parameters: "%x: f32[4] trainable", body: "  %y = broadcast_to %x : f32[3,4]", resultType: "f32[3,4]"),
        GradientCase(name: "scatter_add rank 3 repeated", parameters: "%t: f32[3,2,2] trainable, %u: f32[4,2,2] trainable", body: "  %i = constant dense<[2, 0, 2, 1]> : i64[4]\n  %y = scatter_add %t, %i, %u : f32[3,2,2]", resultType: "f32[3,2,2]"),
        GradientCase(name: "cast f64 round trip", parameters: "%x: f32[5] trainable", body: "  %d = cast %x : f64[5]\n  %t = tanh %d : f64[5]\n  %y = cast %t : f32[5]", resultType: "f32[5]"),
        GradientCase(name: "dropout rank 3", parameters: "%x: f32[2,3,5] trainable, %seed: i64[] input", body: "  %y = dropout %x, %seed {offset = 2, rate = 0.5} : f32[2,3,5]", resultType: "f32[2,3,5]"),
    ]
}

private func compositeCases() -> [GradientCase] {
    var cases: [GradientCase] = []
    for (type, axis) in [("f32[3,5]", 1), ("f32[4,3]", 0), ("f32[2,3,4]", 2)] {
        for op in ["softmax", "log_softmax"] {
            cases.append(GradientCase(name: "\(op) \(type) axis \(axis)", parameters: "%x: \(type) trainable", body: "  %y = \(op) %x {axis = \(axis)} : \(type)", resultType: type))
        }
    }
    for (type, last) in [("f32[3,5]", 5), ("f32[2,3,4]", 4), ("f32[6]", 6)] {
        cases.append(GradientCase(
            name: "layer_norm \(type)", parameters: "%x: \(type) trainable, %g: f32[\(last)] trainable, %b: f32[\(last)] trainable",
            body: "  %y = layer_norm %x, %g, %b {eps = 1e-05} : \(type)", resultType: type))
        cases.append(GradientCase(
            name: "rms_norm \(type)", parameters: "%x: \(type) trainable, %g: f32[\(last)] trainable",
            body: "  %y = rms_norm %x, %g {eps = 1e-06} : \(type)", resultType: type))
    }
    let labels = "  %labels = constant dense<[0, -100, 3, 1, 2, 4]> : i64[2,3]"
    for (reduction, type) in [("none", "f32[2,3]"), ("sum", "f32[]"), ("mean", "f32[]"), ("sample_mean", "f32[2]")] {
        cases.append(GradientCase(
            name: "cross_entropy \(reduction)", parameters: "%x: f32[2,3,5] trainable",
            body: labels + "\n  %y = cross_entropy %x, %labels {reduction = \(reduction)} : \(type)", resultType: type))
    }
    cases.append(GradientCase(
        name: "cross_entropy mean i32 labels, custom ignore", parameters: "%x: f32[4,3] trainable, %labels: i32[4] input",
        body: "  %y = cross_entropy %x, %labels {ignore_index = 1, reduction = mean} : f32[]", resultType: "f32[]"))
    return cases
}

/// Every case of the corpus.
public let allGradientCases = unaryCases() + binaryCases() + reductionCases() + matmulCases() + movementCases() + compositeCases()

