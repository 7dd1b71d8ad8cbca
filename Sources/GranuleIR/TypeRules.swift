/// The shape and type rule of every op, in one place.
///
/// `resultType` checks an op's operand types and attributes and returns its result type. For the
/// ops that take their type from the annotation (`Opcode.takesDeclaredType`), it checks that the
/// declared type is consistent with the operands instead. Errors carry no location: the verifier
/// and the builder attach the op's.
public enum TypeRules {
    public static func resultType(
        of opcode: Opcode, operands: [TensorType], attributes: Attributes,
        constant: ConstantData? = nil, declared: TensorType? = nil
    ) throws(Diagnostic) -> TensorType {
        try checkAttributeNames(opcode, attributes)
        if opcode.takesDeclaredType, declared == nil {
            throw Diagnostic("'\(opcode.name)' needs its result type written as ': type'")
        }
        if let declared, declared.checkedElementCount == nil {
            throw Diagnostic("result type \(declared) has a negative dimension or more than 2^40 elements")
        }
        switch opcode {
        case .neg, .abs, .exp, .log, .tanh, .sigmoid, .relu, .sqrt, .rsqrt, .erf:
            let x = try unary(opcode, operands)
            if opcode == .neg || opcode == .abs || opcode == .relu {
                try requireNumber(x, opcode)
            } else {
                try requireFloat(x, opcode)
            }
            return x
        case .pow:
            let x = try unary(opcode, operands)
            try requireFloat(x, opcode)
            _ = try attributes.float("exponent")
            return x
        case .gelu:
            let x = try unary(opcode, operands)
            try requireFloat(x, opcode)
            _ = try attributes.symbol("approx", oneOf: ["erf", "tanh"])
            return x
        case .add, .sub, .mul, .div, .max, .min:
            let (a, b) = try binary(opcode, operands)
            guard !a.dtype.isBool else { throw Diagnostic("'\(opcode.name)' does not take i1 operands") }
            return a.with(shape: try broadcast(a.shape, b.shape))
        case .compare:
            let (a, b) = try binary(opcode, operands)
            _ = try attributes.symbol("predicate", oneOf: comparePredicates)
            return TensorType(.i1, try broadcast(a.shape, b.shape))
        case .select:
            try arity(opcode, operands, 3)
            guard operands[0].dtype == .i1 else { throw Diagnostic("'select' condition must be i1, got \(operands[0])") }
            guard operands[1].dtype == operands[2].dtype else {
                throw Diagnostic("'select' branches must have one dtype, got \(operands[1]) and \(operands[2])")
            }
            let shape = try broadcast(try broadcast(operands[0].shape, operands[1].shape), operands[2].shape)
            return operands[1].with(shape: shape)
        case .reduceSum, .reduceMean, .reduceMax:
            let x = try unary(opcode, operands)
            if opcode == .reduceMean { try requireFloat(x, opcode) }
            if opcode == .reduceSum { try requireNumber(x, opcode) }
            let axes = try checkedAxes(attributes, rank: x.rank)
            let keep = try attributes.bool("keepdims")
            return x.with(shape: reducedShape(x.shape, axes: axes, keepDims: keep))
        case .matmul:
            return try matmulType(operands, attributes)
        case .reshape:
            let x = try unary(opcode, operands)
            let target = declared!
            guard target.dtype == x.dtype else { throw Diagnostic("'reshape' cannot change dtype \(x.dtype) to \(target.dtype)") }
            guard target.elementCount == x.elementCount else {
                throw Diagnostic("'reshape' from \(x) to \(target) changes the element count")
            }
            return target
        case .transpose:
            let x = try unary(opcode, operands)
            let perm = try attributes.ints("perm")
            guard perm.count == x.rank, Set(perm) == Set(0..<x.rank) else {
                throw Diagnostic("'perm' \(perm) is not a permutation of 0..<\(x.rank)")
            }
            return x.with(shape: perm.map { x.shape[$0] })
        case .slice:
            let x = try unary(opcode, operands)
            let start = try attributes.ints("start")
            let limit = try attributes.ints("limit")
            guard start.count == x.rank, limit.count == x.rank else {
                throw Diagnostic("'slice' needs 'start' and 'limit' with one entry per axis (\(x.rank))")
            }
            for axis in 0..<x.rank where !(0 <= start[axis] && start[axis] <= limit[axis] && limit[axis] <= x.shape[axis]) {
                throw Diagnostic("slice of axis \(axis) is [\(start[axis]), \(limit[axis])) but its size is \(x.shape[axis])")
            }
            return x.with(shape: zip(start, limit).map { $1 - $0 })
        case .pad:
            let x = try unary(opcode, operands)
            let low = try attributes.ints("low")
            let high = try attributes.ints("high")
            guard low.count == x.rank, high.count == x.rank, (low + high).allSatisfy({ $0 >= 0 && $0 <= TensorType.maxElementCount }) else {
                throw Diagnostic("'pad' needs non-negative 'low' and 'high' with one entry per axis (\(x.rank))")
            }
            return try checked(x.with(shape: (0..<x.rank).map { x.shape[$0] + low[$0] + high[$0] }))
        case .concat:
            guard let first = operands.first else { throw Diagnostic("'concat' needs at least one operand") }
            let axis = try attributes.int("axis")
            guard (0..<first.rank).contains(axis) else { throw Diagnostic("'axis' \(axis) is out of range for rank \(first.rank)") }
            var total = 0
            for operand in operands {
                guard operand.dtype == first.dtype, operand.rank == first.rank,
                    (0..<first.rank).allSatisfy({ $0 == axis || operand.shape[$0] == first.shape[$0] })
                else { throw Diagnostic("'concat' operands \(first) and \(operand) differ off axis \(axis)") }
                total += operand.shape[axis]
            }
            var shape = first.shape
            shape[axis] = total
            return try checked(first.with(shape: shape))
        case .broadcastTo:
            let x = try unary(opcode, operands)
            let target = declared!
            guard target.dtype == x.dtype, target.rank >= x.rank,
                broadcastShapes(x.shape, target.shape) == target.shape
            else { throw Diagnostic("cannot broadcast \(x) to \(target)") }
            return target
        case .gather:
            try arity(opcode, operands, 2)
            let (table, indices) = (operands[0], operands[1])
            guard table.rank >= 1 else { throw Diagnostic("'gather' table must have rank >= 1") }
            guard indices.dtype.isInteger else { throw Diagnostic("'gather' indices must be i32 or i64, got \(indices)") }
            return try checked(table.with(shape: indices.shape + table.shape.dropFirst()))
        case .scatterAdd:
            try arity(opcode, operands, 3)
            let (target, indices, updates) = (operands[0], operands[1], operands[2])
            guard target.rank >= 1 else { throw Diagnostic("'scatter_add' target must have rank >= 1") }
            try requireNumber(target, opcode)
            guard indices.dtype.isInteger else { throw Diagnostic("'scatter_add' indices must be i32 or i64, got \(indices)") }
            let expected = target.with(shape: indices.shape + target.shape.dropFirst())
            guard updates == expected else { throw Diagnostic("'scatter_add' updates must be \(expected), got \(updates)") }
            return target
        case .iota:
            try arity(opcode, operands, 0)
            let target = declared!
            let axis = try attributes.int("axis")
            guard (0..<target.rank).contains(axis) else { throw Diagnostic("'axis' \(axis) is out of range for \(target)") }
            guard !target.dtype.isBool else { throw Diagnostic("'iota' cannot produce i1") }
            return target
        case .constant:
            try arity(opcode, operands, 0)
            let target = declared!
            guard let constant else { throw Diagnostic("'constant' needs data: splat<v> or dense<[...]>") }
            if let count = constant.elementCountIfDense, count != target.elementCount {
                throw Diagnostic("constant has \(count) values but \(target) has \(target.elementCount) elements")
            }
            switch constant {
            case .splat(let value):
                guard value.converted(to: target.dtype) != nil else { throw Diagnostic("\(value) is not a valid \(target.dtype) value") }
            case .dense(let values):
                if let bad = values.first(where: { $0.converted(to: target.dtype) == nil }) {
                    throw Diagnostic("\(bad) is not a valid \(target.dtype) value")
                }
            }
            return target
        case .cast:
            let x = try unary(opcode, operands)
            let target = declared!
            guard target.shape == x.shape else { throw Diagnostic("'cast' cannot change shape \(x) to \(target)") }
            return target
        case .maxPool2d:
            let x = try unary(opcode, operands)
            return try maxPoolType(x, attributes)
        case .maxPool2dGrad:
            try arity(opcode, operands, 2)
            let pooled = try maxPoolType(operands[0], attributes)
            guard operands[1] == pooled else { throw Diagnostic("'max_pool2d_grad' gradient must be \(pooled), got \(operands[1])") }
            return operands[0]
        case .dropout:
            try arity(opcode, operands, 2)
            try requireFloat(operands[0], opcode)
            guard operands[1] == .scalar(.i64) else { throw Diagnostic("'dropout' seed must be i64[], got \(operands[1])") }
            let rate = try attributes.float("rate")
            guard rate >= 0, rate < 1 else { throw Diagnostic("'rate' must be in [0, 1), got \(rate)") }
            guard try attributes.int("offset") >= 0 else { throw Diagnostic("'offset' must be non-negative") }
            return operands[0]
        case .softmax, .logSoftmax:
            let x = try unary(opcode, operands)
            try requireFloat(x, opcode)
            let axis = try attributes.int("axis")
            guard (0..<x.rank).contains(axis) else { throw Diagnostic("'axis' \(axis) is out of range for rank \(x.rank)") }
            return x
        case .layerNorm, .rmsNorm:
            let expected = opcode == .layerNorm ? 3 : 2
            try arity(opcode, operands, expected)
            let x = operands[0]
            try requireFloat(x, opcode)
            guard x.rank >= 1 else { throw Diagnostic("'\(opcode.name)' needs rank >= 1") }
            for weight in operands.dropFirst() where weight != x.with(shape: [x.shape.last!]) {
                throw Diagnostic("'\(opcode.name)' weights must be \(x.with(shape: [x.shape.last!])), got \(weight)")
            }
            guard try attributes.float("eps") > 0 else { throw Diagnostic("'eps' must be positive") }
            return x
        case .crossEntropy:
            try arity(opcode, operands, 2)
            return try crossEntropyType(operands[0], operands[1], attributes)
        case .crossEntropyGrad:
            try arity(opcode, operands, 3)
            let loss = try crossEntropyType(operands[0], operands[1], attributes)
            guard operands[2] == loss else { throw Diagnostic("'cross_entropy_grad' gradient must be \(loss), got \(operands[2])") }
            return operands[0]
        }
    }

    public static let comparePredicates = ["eq", "ne", "lt", "le", "gt", "ge"]
    public static let crossEntropyReductions = ["none", "sum", "mean", "sample_mean"]

    /// The attributes each op accepts; anything else is an error (catches typos like `tranpose_b`).
    public static func allowedAttributes(_ opcode: Opcode) -> [String] {
        switch opcode {
        case .pow: ["exponent"]
        case .gelu: ["approx"]
        case .compare: ["predicate"]
        case .reduceSum, .reduceMean, .reduceMax: ["axes", "keepdims"]
        case .matmul: ["transpose_a", "transpose_b"]
        case .transpose: ["perm"]
        case .slice: ["limit", "start"]
        case .pad: ["high", "low"]
        case .concat, .iota, .softmax, .logSoftmax: ["axis"]
        case .maxPool2d, .maxPool2dGrad: ["window"]
        case .dropout: ["offset", "rate"]
        case .layerNorm, .rmsNorm: ["eps"]
        case .crossEntropy, .crossEntropyGrad: ["ignore_index", "reduction"]
        default: []
        }
    }

    /// The shape left after reducing `axes`.
    public static func reducedShape(_ shape: [Int], axes: [Int], keepDims: Bool) -> [Int] {
        var result: [Int] = []
        for (axis, dim) in shape.enumerated() {
            if axes.contains(axis) {
                if keepDims { result.append(1) }
            } else {
                result.append(dim)
            }
        }
        return result
    }

    /// `axes` of a reduction: non-negative, strictly increasing, in range.
    public static func checkedAxes(_ attributes: Attributes, rank: Int) throws(Diagnostic) -> [Int] {
        let axes = try attributes.ints("axes")
        for (index, axis) in axes.enumerated() {
            guard (0..<rank).contains(axis) else { throw Diagnostic("axis \(axis) is out of range for rank \(rank)") }
            guard index == 0 || axes[index - 1] < axis else { throw Diagnostic("'axes' must be strictly increasing, got \(axes)") }
        }
        return axes
    }

    /// Shapes of a matmul's operands as (batch, rows, inner, columns) after applying the transpose flags.
    public struct MatmulDims: Sendable {
        public var batch: [Int]
        public var m: Int
        public var k: Int
        public var n: Int
    }

    public static func matmulDims(_ a: TensorType, _ b: TensorType, _ attributes: Attributes) throws(Diagnostic) -> MatmulDims {
        guard a.rank >= 2, b.rank >= 2 else { throw Diagnostic("'matmul' operands need rank >= 2, got \(a) and \(b)") }
        let transposeA = try attributes.bool("transpose_a")
        let transposeB = try attributes.bool("transpose_b")
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, ka) = transposeA ? (ac, ar) : (ar, ac)
        let (kb, n) = transposeB ? (bc, br) : (br, bc)
        guard ka == kb else { throw Diagnostic("'matmul' inner dimensions differ: \(a) and \(b) give \(ka) vs \(kb)") }
        let batchA = Array(a.shape.dropLast(2))
        let batchB = Array(b.shape.dropLast(2))
        guard batchA == batchB || batchB.isEmpty else {
            throw Diagnostic("'matmul' batch dimensions must match (or b must be a matrix): \(a) and \(b)")
        }
        return MatmulDims(batch: batchA, m: m, k: ka, n: n)
    }

    static func matmulType(_ operands: [TensorType], _ attributes: Attributes) throws(Diagnostic) -> TensorType {
        try arity(.matmul, operands, 2)
        let (a, b) = (operands[0], operands[1])
        guard a.dtype == b.dtype, a.dtype.isFloat else { throw Diagnostic("'matmul' needs two float operands of one dtype, got \(a) and \(b)") }
        let dims = try matmulDims(a, b, attributes)
        return try checked(a.with(shape: dims.batch + [dims.m, dims.n]))
    }

    static func maxPoolType(_ x: TensorType, _ attributes: Attributes) throws(Diagnostic) -> TensorType {
        try requireFloat(x, .maxPool2d)
        let window = try attributes.ints("window")
        guard window.count == 2, window.allSatisfy({ $0 >= 1 }) else { throw Diagnostic("'window' must be two positive sizes like [2, 2]") }
        guard x.rank >= 3 else { throw Diagnostic("'max_pool2d' pools axes [..., H, W, C]; needs rank >= 3, got \(x)") }
        var shape = x.shape
        let (h, w) = (x.rank - 3, x.rank - 2)
        guard shape[h] >= window[0], shape[w] >= window[1] else { throw Diagnostic("window \(window) is larger than the grid of \(x)") }
        shape[h] -= window[0] - 1
        shape[w] -= window[1] - 1
        return x.with(shape: shape)
    }

    static func crossEntropyType(_ logits: TensorType, _ labels: TensorType, _ attributes: Attributes) throws(Diagnostic) -> TensorType {
        try requireFloat(logits, .crossEntropy)
        guard logits.rank >= 1 else { throw Diagnostic("'cross_entropy' logits need rank >= 1") }
        guard labels.dtype.isInteger, labels.shape == Array(logits.shape.dropLast()) else {
            throw Diagnostic("'cross_entropy' labels must be integers of shape \(Array(logits.shape.dropLast())), got \(labels)")
        }
        _ = try attributes.int("ignore_index", default: -100)
        switch try attributes.symbol("reduction", oneOf: crossEntropyReductions) {
        case "none": return labels.with(dtype: logits.dtype)
        case "sample_mean":
            guard labels.rank >= 1 else { throw Diagnostic("'sample_mean' needs labels with a sample axis") }
            return TensorType(logits.dtype, [labels.shape[0]])
        default: return .scalar(logits.dtype)
        }
    }

    // MARK: helpers

    static func checkAttributeNames(_ opcode: Opcode, _ attributes: Attributes) throws(Diagnostic) {
        let allowed = allowedAttributes(opcode)
        for name in attributes.names where !allowed.contains(name) {
            let expected = allowed.isEmpty ? "none" : allowed.joined(separator: ", ")
            throw Diagnostic("'\(opcode.name)' has no attribute '\(name)' (expected: \(expected))")
        }
    }

    static func arity(_ opcode: Opcode, _ operands: [TensorType], _ count: Int) throws(Diagnostic) {
        guard operands.count == count else {
            throw Diagnostic("'\(opcode.name)' takes \(count) operand\(count == 1 ? "" : "s"), got \(operands.count)")
        }
    }

    static func unary(_ opcode: Opcode, _ operands: [TensorType]) throws(Diagnostic) -> TensorType {
        try arity(opcode, operands, 1)
        return operands[0]
    }

    static func binary(_ opcode: Opcode, _ operands: [TensorType]) throws(Diagnostic) -> (TensorType, TensorType) {
        try arity(opcode, operands, 2)
        guard operands[0].dtype == operands[1].dtype else {
            throw Diagnostic("'\(opcode.name)' operands must have one dtype, got \(operands[0]) and \(operands[1])")
        }
        return (operands[0], operands[1])
    }

    static func broadcast(_ a: [Int], _ b: [Int]) throws(Diagnostic) -> [Int] {
        guard let shape = broadcastShapes(a, b) else {
            throw Diagnostic("shapes [\(a.map(String.init).joined(separator: ","))] and [\(b.map(String.init).joined(separator: ","))] do not broadcast")
        }
        return shape
    }

    static func requireFloat(_ type: TensorType, _ opcode: Opcode) throws(Diagnostic) {
        guard type.dtype.isFloat else { throw Diagnostic("'\(opcode.name)' needs a float operand, got \(type)") }
    }

    /// Arithmetic that would leave {0, 1} (negation, sums) is not defined on i1.
    static func requireNumber(_ type: TensorType, _ opcode: Opcode) throws(Diagnostic) {
        guard !type.dtype.isBool else { throw Diagnostic("'\(opcode.name)' does not take i1 operands") }
    }

    static func checked(_ type: TensorType) throws(Diagnostic) -> TensorType {
        guard type.checkedElementCount != nil else { throw Diagnostic("result type \(type) has more than 2^40 elements") }
        return type
    }
}
