import GranuleIR

/// The semantics of every op, dispatched to one kernel per op family (one file each). Kernels
/// receive operands whose types the verifier has checked and return the value of the declared
/// result type; their errors carry no location (the caller attaches the op's).
extension Interpreter {
    func evaluate(_ op: Operation, _ x: [Tensor], type: TensorType) throws(Diagnostic) -> Tensor {
        let attributes = op.attributes
        switch op.opcode {
        case .neg, .abs, .exp, .log, .tanh, .sigmoid, .relu, .sqrt, .rsqrt, .erf, .pow, .gelu:
            return try unary(op.opcode, x[0], attributes)
        case .add, .sub, .mul, .div, .max, .min:
            return try binary(op.opcode, x[0], x[1], type: type)
        case .compare:
            return try compare(x[0], x[1], predicate: attributes.symbol("predicate", oneOf: TypeRules.comparePredicates), type: type)
        case .select:
            return try select(x[0], x[1], x[2], type: type)
        case .reduceSum, .reduceMean, .reduceMax:
            return try reduce(op.opcode, x[0], axes: TypeRules.checkedAxes(attributes, rank: x[0].type.rank), type: type)
        case .matmul:
            return try matmul(x[0], x[1], attributes, type: type)
        case .reshape:
            return Tensor(type, storage: x[0].storage)
        case .transpose:
            return transpose(x[0], perm: try attributes.ints("perm"), type: type)
        case .slice:
            return slice(x[0], start: try attributes.ints("start"), type: type)
        case .pad:
            return pad(x[0], low: try attributes.ints("low"), type: type)
        case .concat:
            return try concat(x, axis: attributes.int("axis"), type: type)
        case .broadcastTo:
            return broadcast(x[0], to: type)
        case .gather:
            return try gather(x[0], x[1], type: type)
        case .scatterAdd:
            return try scatterAdd(x[0], x[1], x[2])
        case .iota:
            return iota(axis: try attributes.int("axis"), type: type)
        case .constant:
            return try constant(op.constant, type: type)
        case .cast:
            return try cast(x[0], to: type)
        case .maxPool2d:
            return try maxPool2d(x[0], window: attributes.ints("window"), type: type)
        case .maxPool2dGrad:
            return try maxPool2dGrad(x[0], x[1], window: attributes.ints("window"))
        case .dropout:
            return try dropout(x[0], seed: x[1], rate: attributes.float("rate"), offset: attributes.int("offset"))
        case .softmax:
            return try softmax(x[0], axis: attributes.int("axis"), log: false)
        case .logSoftmax:
            return try softmax(x[0], axis: attributes.int("axis"), log: true)
        case .layerNorm:
            return try normalize(x[0], gamma: x[1], beta: x[2], eps: attributes.float("eps"), rms: false)
        case .rmsNorm:
            return try normalize(x[0], gamma: x[1], beta: nil, eps: attributes.float("eps"), rms: true)
        case .crossEntropy:
            return try crossEntropy(x[0], x[1], dloss: nil, CrossEntropyOptions(attributes), type: type)
        case .crossEntropyGrad:
            return try crossEntropy(x[0], x[1], dloss: x[2], CrossEntropyOptions(attributes), type: type)
        }
    }
}
