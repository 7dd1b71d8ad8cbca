#if canImport(Glibc)
import Glibc
#endif
import GranuleIR

/// The reference semantics of the IR: runs a function op by op on concrete tensors.
///
/// It is the oracle that compiled code, gradients and passes are tested against, so it favours
/// plain, obviously-correct kernels (flat arrays, precomputed strides, Double arithmetic) over
/// speed, while staying fast enough for model-sized tests.
///
/// Precision: in `.float32` mode every op that produces an f32 tensor computes in `Double` and
/// rounds each element to `Float`, which for the basic arithmetic ops is exactly IEEE single
/// precision; reductions, matmul and normalisations accumulate in `Double` before that final
/// rounding. In `.float64` mode nothing is rounded, so f32 behaves like f64: finite-difference
/// gradient checks need that headroom.
///
/// Integer arithmetic wraps to the dtype's width (two's complement), as compiled code does.
public struct Interpreter: Sendable {
    public enum Precision: Sendable {
        case float32, float64
    }

    public var precision: Precision

    public init(precision: Precision = .float32) {
        self.precision = precision
    }

    /// Runs `function` on `inputs`, keyed by parameter name without the `%` (e.g. "fc1.w"), and
    /// returns its results in signature order. Inputs that name no parameter are ignored.
    ///
    /// The function is verified first, so shape and attribute errors are reported as the verifier
    /// reports them; run-time errors (an index out of range, a bad label) carry the op's location.
    /// The most elements one tensor may have: physical memory / 8 bytes per element.
    public static let maxElements: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? Int(pages) / 8 * Int(size) : Int.max
    }()

    public func run(_ function: Function, inputs: [String: Tensor]) throws(Diagnostic) -> [(name: String, tensor: Tensor)] {
        try Verifier.verify(function)
        var values = [Tensor?](repeating: nil, count: function.valueCount)
        for parameter in function.parameters {
            values[parameter.value.id] = try input(for: parameter, of: function, in: inputs)
        }

        let lastUse = Interpreter.lastUses(function)
        for (index, op) in function.operations.enumerated() {
            let location = op.location ?? function.location
            var operands: [Tensor] = []
            operands.reserveCapacity(op.operands.count)
            for operand in op.operands {
                guard let value = values[operand.id] else {
                    throw Diagnostic("internal error: %\(function.name(of: operand)) has no value", at: location)
                }
                operands.append(value)
            }
            let type = function.type(of: op.result)
            // The interpreter holds every element as a Double or Int64: a tensor larger than the
            // machine's memory is an error here, not an allocation trap inside evaluate.
            if type.elementCount > Interpreter.maxElements {
                throw Diagnostic("%\(function.name(of: op.result)) is \(type): \(type.elementCount) elements need \(type.elementCount / (1 << 27)) GiB "
                    + "in the interpreter, more than this machine's memory", at: location)
            }
            var result: Tensor
            do {
                result = try evaluate(op, operands, type: type)
            } catch {
                throw Diagnostic(error.message, at: error.location ?? location)
            }
            guard result.type == type, result.inconsistency == nil else {
                throw Diagnostic("internal error: '\(op.opcode.name)' produced \(result.type), expected \(type)", at: location)
            }
            if precision == .float32, type.dtype == .f32, !op.opcode.onlyMovesValues {
                result.roundToFloat()
            }
            operands.removeAll()
            // Free what this op was the last user of, so model-sized programs fit in memory.
            for operand in op.operands where lastUse[operand.id] == index { values[operand.id] = nil }
            if lastUse[op.result.id] > index { values[op.result.id] = result }
        }

        var results: [(name: String, tensor: Tensor)] = []
        for result in function.results {
            guard let value = values[result.value.id] else {
                throw Diagnostic("internal error: result '\(result.name)' has no value", at: result.location ?? function.location)
            }
            results.append((result.name, value))
        }
        return results
    }

    /// The index of the last op that reads each value; `Int.max` for returned values (never
    /// freed) and -1 for values nothing reads.
    static func lastUses(_ function: Function) -> [Int] {
        var lastUse = [Int](repeating: -1, count: function.valueCount)
        for (index, op) in function.operations.enumerated() {
            for operand in op.operands { lastUse[operand.id] = index }
        }
        for result in function.results { lastUse[result.value.id] = .max }
        return lastUse
    }

    /// The input for one parameter, checked against its declared type. In `.float32` mode f32
    /// inputs are rounded to `Float`, so every f32 value the kernels see is a `Float`.
    private func input(for parameter: Parameter, of function: Function, in inputs: [String: Tensor]) throws(Diagnostic) -> Tensor {
        let name = function.name(of: parameter.value)
        let type = function.type(of: parameter.value)
        let location = parameter.location ?? function.location
        guard var tensor = inputs[name] else {
            throw Diagnostic("missing input for parameter %\(name) of type \(type)", at: location)
        }
        guard tensor.type == type else {
            throw Diagnostic("input for parameter %\(name) must be \(type), got \(tensor.type)", at: location)
        }
        if let problem = tensor.inconsistency {
            throw Diagnostic("input for parameter %\(name) \(problem)", at: location)
        }
        if precision == .float32, type.dtype == .f32 { tensor.roundToFloat() }
        return tensor
    }

    /// A failure that a verified function should never cause: a bug in a kernel, not in the input.
    static func internalError(_ message: String) -> Diagnostic {
        Diagnostic("internal error: \(message)")
    }
}

extension Tensor {
    /// Rounds every float element to the nearest `Float` (f32 semantics in `.float32` mode).
    mutating func roundToFloat() {
        guard case .float(var values) = storage else { return }
        storage = .int([])  // release the enum's reference so `values` is uniquely owned
        values.withUnsafeMutableBufferPointer { buffer in
            for index in buffer.indices { buffer[index] = Double(Float(buffer[index])) }
        }
        storage = .float(values)
    }
}

extension Opcode {
    /// Ops whose f32 results are copies of operand elements (or zeros): they need no rounding,
    /// since every f32 operand is already a `Float` in `.float32` mode.
    var onlyMovesValues: Bool {
        switch self {
        case .reshape, .transpose, .slice, .pad, .concat, .broadcastTo, .gather, .select, .reduceMax,
            .maxPool2d, .relu, .neg, .abs, .max, .min:
            true
        default:
            false
        }
    }
}
