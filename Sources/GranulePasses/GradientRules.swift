import GranuleIR

/// The gradient rule of every op, side by side (reverse mode).
///
/// `gradients(of:)` receives an op `y = f(x_0, ..., x_n)`, the adjoint `dy` of its result and a
/// mask of the operands whose adjoints are wanted, and emits ops computing `dx_i` for exactly those
/// operands. Operands not asked for get no work at all: that is how a frozen weight gets no
/// weight-gradient matmul. Rules recompute what they need from the forward values (`x`, `y`)
/// rather than saving extra tensors; composites (softmax, layer_norm, ...) are differentiated by
/// hand into primitive ops.
enum GradientRules {
    /// Whether the result of `opcode` can carry a gradient back to operand `index`.
    static func isDifferentiable(_ opcode: Opcode, operand index: Int) -> Bool {
        switch opcode {
        case .compare, .iota, .constant, .maxPool2dGrad, .crossEntropyGrad: false
        case .select: index > 0
        case .gather: index == 0
        case .scatterAdd: index != 1
        case .dropout, .crossEntropy: index == 0
        default: true
        }
    }

    static func gradients(
        of op: Operation, resultGradient dy: Value, needed: [Bool], builder b: inout GraphBuilder
    ) throws(Diagnostic) -> [Value?] {
        let x = op.operands
        let y = op.result
        let attributes = op.attributes
        var grads = [Value?](repeating: nil, count: x.count)
        func wants(_ index: Int) -> Bool { index < needed.count && needed[index] }
        func shape(_ value: Value) -> [Int] { b.function.type(of: value).shape }

        switch op.opcode {
        case .neg:
            grads[0] = try b.neg(dy)
        case .abs:
            let zero = try b.scalar(0, like: x[0])
            let positive = try b.select(try b.compare(x[0], "gt", zero), dy, zero)
            grads[0] = try b.select(try b.compare(x[0], "lt", zero), try b.neg(dy), positive)
        case .exp:
            grads[0] = try b.mul(dy, y)
        case .log:
            grads[0] = try b.div(dy, x[0])
        case .tanh:
            // d tanh = 1 - y^2
            let one = try b.scalar(1, like: y)
            grads[0] = try b.mul(dy, try b.sub(one, try b.mul(y, y)))
        case .sigmoid:
            let one = try b.scalar(1, like: y)
            grads[0] = try b.mul(dy, try b.mul(y, try b.sub(one, y)))
        case .relu:
            let zero = try b.scalar(0, like: x[0])
            grads[0] = try b.select(try b.compare(x[0], "gt", zero), dy, zero)
        case .sqrt:
            grads[0] = try b.div(try b.mul(dy, by: 0.5), y)
        case .rsqrt:
            // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
            grads[0] = try b.mul(dy, try b.mul(try b.mul(y, y), try b.mul(y, by: -0.5)))
        case .erf:
            // d erf = 2/sqrt(pi) exp(-x^2)
            let gaussian = try b.exp(try b.neg(try b.mul(x[0], x[0])))
            grads[0] = try b.mul(dy, try b.mul(gaussian, by: 2 / Double.pi.squareRoot()))
        case .pow:
            let exponent = try attributes.float("exponent")
            let lowered = try b.emit(.pow, [x[0]], ["exponent": .float(exponent - 1)])
            grads[0] = try b.mul(dy, try b.mul(lowered, by: exponent))
        case .gelu:
            grads[0] = try b.mul(dy, try geluDerivative(x[0], approx: try attributes.symbol("approx", oneOf: ["erf", "tanh"]), &b))
        case .add:
            if wants(0) { grads[0] = try b.unbroadcast(dy, to: shape(x[0])) }
            if wants(1) { grads[1] = try b.unbroadcast(dy, to: shape(x[1])) }
        case .sub:
            if wants(0) { grads[0] = try b.unbroadcast(dy, to: shape(x[0])) }
            if wants(1) { grads[1] = try b.unbroadcast(try b.neg(dy), to: shape(x[1])) }
        case .mul:
            if wants(0) { grads[0] = try b.unbroadcast(try b.mul(dy, x[1]), to: shape(x[0])) }
            if wants(1) { grads[1] = try b.unbroadcast(try b.mul(dy, x[0]), to: shape(x[1])) }
        case .div:
            // y = a / b: da = dy / b, db = -dy * y / b
            if wants(0) { grads[0] = try b.unbroadcast(try b.div(dy, x[1]), to: shape(x[0])) }
            if wants(1) { grads[1] = try b.unbroadcast(try b.neg(try b.div(try b.mul(dy, y), x[1])), to: shape(x[1])) }
        case .max, .min:
            // The first operand wins ties, as in the forward op.
            let firstWins = try b.compare(x[0], op.opcode == .max ? "ge" : "le", x[1])
            let zero = try b.scalar(0, like: dy)
            if wants(0) { grads[0] = try b.unbroadcast(try b.select(firstWins, dy, zero), to: shape(x[0])) }
            if wants(1) { grads[1] = try b.unbroadcast(try b.select(firstWins, zero, dy), to: shape(x[1])) }
        case .select:
            let zero = try b.scalar(0, like: dy)
            if wants(1) { grads[1] = try b.unbroadcast(try b.select(x[0], dy, zero), to: shape(x[1])) }
            if wants(2) { grads[2] = try b.unbroadcast(try b.select(x[0], zero, dy), to: shape(x[2])) }
        case .reduceSum, .reduceMean:
            let keptShape = TypeRules.reducedShape(shape(x[0]), axes: try attributes.ints("axes"), keepDims: true)
            var spread = try b.broadcast(try b.reshape(dy, keptShape), to: shape(x[0]))
            if op.opcode == .reduceMean {
                let count = try attributes.ints("axes").reduce(1) { $0 * shape(x[0])[$1] }
                spread = try b.mul(spread, by: 1 / Double(count))
            }
            grads[0] = spread
        case .reduceMax:
            // Every element equal to the maximum receives the gradient.
            let keptShape = TypeRules.reducedShape(shape(x[0]), axes: try attributes.ints("axes"), keepDims: true)
            let maximum = try b.broadcast(try b.reshape(y, keptShape), to: shape(x[0]))
            let spread = try b.broadcast(try b.reshape(dy, keptShape), to: shape(x[0]))
            grads[0] = try b.select(try b.compare(x[0], "eq", maximum), spread, try b.scalar(0, like: dy))
        case .matmul:
            (grads[0], grads[1]) = try matmulGradients(op, dy, wantA: wants(0), wantB: wants(1), &b)
        case .reshape:
            grads[0] = try b.reshape(dy, shape(x[0]))
        case .transpose:
            let perm = try attributes.ints("perm")
            var inverse = perm
            for (index, axis) in perm.enumerated() { inverse[axis] = index }
            grads[0] = try b.transpose(dy, inverse)
        case .slice:
            let start = try attributes.ints("start")
            let limit = try attributes.ints("limit")
            let high = zip(limit, shape(x[0])).map { $1 - $0 }
            grads[0] = try b.emit(.pad, [dy], ["low": .ints(start), "high": .ints(high)])
        case .pad:
            let low = try attributes.ints("low")
            let limit = zip(low, shape(x[0])).map { $0 + $1 }
            grads[0] = try b.emit(.slice, [dy], ["start": .ints(low), "limit": .ints(limit)])
        case .concat:
            let axis = try attributes.int("axis")
            var offset = 0
            for index in x.indices {
                let size = shape(x[index])[axis]
                if wants(index) {
                    var start = [Int](repeating: 0, count: shape(dy).count)
                    var limit = shape(dy)
                    start[axis] = offset
                    limit[axis] = offset + size
                    grads[index] = try b.emit(.slice, [dy], ["start": .ints(start), "limit": .ints(limit)])
                }
                offset += size
            }
        case .broadcastTo:
            grads[0] = try b.unbroadcast(dy, to: shape(x[0]))
        case .gather:
            grads[0] = try b.emit(.scatterAdd, [try b.zeros(b.type(x[0])), x[1], dy])
        case .scatterAdd:
            if wants(0) { grads[0] = dy }
            if wants(2) { grads[2] = try b.emit(.gather, [dy, x[1]]) }
        case .cast:
            if b.type(x[0]).dtype.isFloat { grads[0] = try b.emit(.cast, [dy], type: b.type(x[0])) }
        case .maxPool2d:
            grads[0] = try b.emit(.maxPool2dGrad, [x[0], dy], ["window": attributes["window"]!])
        case .dropout:
            // The mask is a function of (seed, offset, index): the same op regenerates it.
            grads[0] = try b.function.append(.dropout, [dy, x[1]], attributes: attributes)
        case .softmax:
            // dx = y * (dy - sum(dy * y))
            let axis = try attributes.int("axis")
            let inner = try b.reduceSum(try b.mul(dy, y), axes: [axis], keepDims: true)
            grads[0] = try b.mul(y, try b.sub(dy, inner))
        case .logSoftmax:
            // dx = dy - exp(y) * sum(dy)
            let axis = try attributes.int("axis")
            let total = try b.reduceSum(dy, axes: [axis], keepDims: true)
            grads[0] = try b.sub(dy, try b.mul(try b.exp(y), total))
        case .layerNorm, .rmsNorm:
            let results = try normGradients(op, dy, wants: wants, &b)
            for (index, gradient) in results.enumerated() { grads[index] = gradient }
        case .crossEntropy:
            grads[0] = try b.function.append(.crossEntropyGrad, [x[0], x[1], dy], attributes: attributes)
        case .compare, .iota, .constant:
            break
        case .maxPool2dGrad, .crossEntropyGrad:
            throw Diagnostic("'\(op.opcode.name)' is itself a gradient op and has no gradient (second derivatives are not supported)", at: op.location)
        }
        return grads.enumerated().map { wants($0.offset) ? $0.element : nil }
    }

    /// d/dx gelu(x): Φ(x) + x φ(x) for the erf form; the derivative of the tanh approximation otherwise.
    static func geluDerivative(_ x: Value, approx: String, _ b: inout GraphBuilder) throws(Diagnostic) -> Value {
        let half = try b.scalar(0.5, like: x)
        let one = try b.scalar(1, like: x)
        if approx == "erf" {
            let cdf = try b.mul(half, try b.add(one, try b.emit(.erf, [try b.mul(x, by: 1 / 2.0.squareRoot())])))
            let density = try b.mul(try b.exp(try b.mul(try b.mul(x, x), by: -0.5)), by: 1 / (2 * Double.pi).squareRoot())
            return try b.add(cdf, try b.mul(x, density))
        }
        // u = c (x + k x^3), gelu = 0.5 x (1 + tanh u)
        let c = (2 / Double.pi).squareRoot()
        let k = 0.044715
        let xSquared = try b.mul(x, x)
        let inner = try b.add(one, try b.mul(xSquared, by: k))
        let t = try b.emit(.tanh, [try b.mul(try b.mul(x, inner), by: c)])
        let left = try b.mul(half, try b.add(one, t))
        let sech2 = try b.sub(one, try b.mul(t, t))
        let du = try b.mul(try b.add(one, try b.mul(xSquared, by: 3 * k)), by: c)
        return try b.add(left, try b.mul(try b.mul(half, x), try b.mul(sech2, du)))
    }

    /// Gradients of `y = op(a) · op(b)` where `op` transposes the last two axes when its flag is set.
    /// `dA' = dY·B'ᵀ` and `dB' = A'ᵀ·dY`, with the transposes folded into matmul flags; a matrix `b`
    /// shared by every batch of `a` gets its gradient summed over the batch by flattening it into rows.
    static func matmulGradients(
        _ op: Operation, _ dy: Value, wantA: Bool, wantB: Bool, _ b: inout GraphBuilder
    ) throws(Diagnostic) -> (Value?, Value?) {
        let (lhs, rhs) = (op.operands[0], op.operands[1])
        let transposeA = try op.attributes.bool("transpose_a")
        let transposeB = try op.attributes.bool("transpose_b")
        let sharedRhs = b.type(rhs).rank == 2 && b.type(lhs).rank > 2
        var gradA: Value?
        var gradB: Value?
        if wantA {
            if !transposeA {
                gradA = try b.matmul(dy, rhs, transposeB: !transposeB)
            } else if !sharedRhs {
                gradA = try b.matmul(rhs, dy, transposeA: transposeB, transposeB: true)
            } else {
                gradA = try b.transposeLastTwo(try b.matmul(dy, rhs, transposeB: !transposeB))
            }
        }
        if wantB {
            if !sharedRhs {
                gradB = transposeB
                    ? try b.matmul(dy, lhs, transposeA: true, transposeB: transposeA)
                    : try b.matmul(lhs, dy, transposeA: !transposeA)
            } else {
                let lhsRows = transposeA ? try b.transposeLastTwo(lhs) : lhs
                let k = b.type(lhsRows).shape.last!
                let n = b.type(dy).shape.last!
                let rows = b.type(dy).elementCount / n
                let flatA = try b.reshape(lhsRows, [rows, k])
                let flatDy = try b.reshape(dy, [rows, n])
                gradB = transposeB
                    ? try b.matmul(flatDy, flatA, transposeA: true)
                    : try b.matmul(flatA, flatDy, transposeA: true)
            }
        }
        return (gradA, gradB)
    }

    /// Gradients of layer_norm (x, γ, β) and rms_norm (x, γ), recomputing the statistics from x:
    /// `x̂ = (x − μ)·r`, `dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`
    /// (rms_norm: no mean is subtracted, so the middle term drops).
    static func normGradients(
        _ op: Operation, _ dy: Value, wants: (Int) -> Bool, _ b: inout GraphBuilder
    ) throws(Diagnostic) -> [Value?] {
        let x = op.operands[0]
        let gamma = op.operands[1]
        let eps = try op.attributes.float("eps")
        let rank = b.type(x).rank
        let last = rank - 1
        let leading = Array(0..<last)
        let isLayerNorm = op.opcode == .layerNorm

        let centered = isLayerNorm ? try b.sub(x, try b.reduceMean(x, axes: [last], keepDims: true)) : x
        let meanSquare = try b.reduceMean(try b.mul(centered, centered), axes: [last], keepDims: true)
        let inverseStd = try b.emit(.rsqrt, [try b.add(meanSquare, try b.scalar(eps, like: x))])
        let normalized = try b.mul(centered, inverseStd)

        var grads = [Value?](repeating: nil, count: op.operands.count)
        if wants(0) {
            let dNormalized = try b.mul(dy, gamma)
            let projection = try b.reduceMean(try b.mul(dNormalized, normalized), axes: [last], keepDims: true)
            var inner = try b.sub(dNormalized, try b.mul(normalized, projection))
            if isLayerNorm { inner = try b.sub(inner, try b.reduceMean(dNormalized, axes: [last], keepDims: true)) }
            grads[0] = try b.mul(inverseStd, inner)
        }
        if wants(1) {
            let product = try b.mul(dy, normalized)
            grads[1] = leading.isEmpty ? product : try b.reduceSum(product, axes: leading)
        }
        if isLayerNorm, wants(2) {
            grads[2] = leading.isEmpty ? dy : try b.reduceSum(dy, axes: leading)
        }
        return grads
    }
}
