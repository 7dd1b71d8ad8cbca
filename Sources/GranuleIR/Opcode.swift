/// Every op of the IR. The raw value is the op's name in the text form.
///
/// Each op has, in one place each: its shape/type rule (`TypeRules.swift`), its text form (the
/// generic `%r = name %a, %b {attrs} : type`; `Printer.swift`/`Parser.swift`), its semantics
/// (`GranuleInterpreter/Interpreter+Ops.swift`), its gradient rule (`GranulePasses/GradientRules.swift`)
/// and its tests; `IR/README.md` documents all of them in one table.
public enum Opcode: String, Sendable, CaseIterable, Hashable {
    // Elementwise unary.
    case neg, abs, exp, log, tanh, sigmoid, relu, sqrt, rsqrt, erf, pow, gelu
    // Elementwise binary with numpy-style broadcasting.
    case add, sub, mul, div, max, min
    case compare, select
    // Reductions over axes.
    case reduceSum = "reduce_sum", reduceMean = "reduce_mean", reduceMax = "reduce_max"
    // Linear algebra.
    case matmul
    // Data movement.
    case reshape, transpose, slice, pad, concat
    case broadcastTo = "broadcast_to"
    case gather
    case scatterAdd = "scatter_add"
    // Sources and conversions.
    case iota, constant, cast
    // Vision.
    case maxPool2d = "max_pool2d"
    case maxPool2dGrad = "max_pool2d_grad"
    // Randomness.
    case dropout
    // Composites with hand-written gradients.
    case softmax
    case logSoftmax = "log_softmax"
    case layerNorm = "layer_norm"
    case rmsNorm = "rms_norm"
    case crossEntropy = "cross_entropy"
    case crossEntropyGrad = "cross_entropy_grad"

    public var name: String { rawValue }

    /// Ops whose result type is given by the `: type` annotation rather than inferred from operands.
    public var takesDeclaredType: Bool {
        switch self {
        case .constant, .iota, .cast, .reshape, .broadcastTo: true
        default: false
        }
    }




    /// Ops that are commutative in their two operands (used by CSE and simplify).
    public var isCommutative: Bool {
        switch self {
        case .add, .mul, .max, .min: true
        default: false
        }
    }
}
