import Foundation
import GranuleIR
import GranuleInterpreter
import GranuleSupport

/// Makes deterministic random values for a function's parameters: floats ~ N(0, scale²) (rounded
/// to f32 for f32 tensors), integers in the range their uses allow (rows of the table they index,
/// classes of the logits they label), booleans 0/1, and dropout seeds anywhere in i64.
public enum RandomInputs {
    public static func make(
        for function: Function, seed: UInt64, scale: Double = 1, skipping provided: Set<String> = []
    ) -> [String: Tensor] {
        var generator = SeededGenerator(seed: seed)
        let bounds = integerBounds(function)
        var inputs: [String: Tensor] = [:]
        for parameter in function.parameters {
            let name = function.name(of: parameter.value)
            let type = function.type(of: parameter.value)
            guard !provided.contains(name) else { continue }
            let count = type.elementCount
            switch type.dtype {
            case .f32, .f64:
                let values = (0..<count).map { _ -> Double in
                    let sample = generator.normal() * scale
                    return type.dtype == .f32 ? Double(Float(sample)) : sample
                }
                inputs[name] = Tensor(type, floats: values)
            case .i1:
                inputs[name] = Tensor(type, ints: (0..<count).map { _ in Int64.random(in: 0...1, using: &generator) })
            case .i32, .i64:
                if type.rank == 0, bounds[parameter.value] == nil {
                    inputs[name] = Tensor(type, ints: [Int64.random(in: 0...Int64(Int32.max), using: &generator)])
                } else {
                    let bound = Int64(max(bounds[parameter.value] ?? 2, 1))
                    inputs[name] = Tensor(type, ints: (0..<count).map { _ in Int64.random(in: 0..<bound, using: &generator) })
                }
            }
        }
        return inputs
    }

    /// For integer parameters used as indices or labels, the exclusive upper bound their uses allow.
    static func integerBounds(_ function: Function) -> [Value: Int] {
        var bounds: [Value: Int] = [:]
        func limit(_ value: Value, _ bound: Int) { bounds[value] = min(bounds[value] ?? bound, bound) }
        for op in function.operations {
            switch op.opcode {
            case .gather: limit(op.operands[1], function.type(of: op.operands[0]).shape[0])
            case .scatterAdd: limit(op.operands[1], function.type(of: op.operands[0]).shape[0])
            case .crossEntropy, .crossEntropyGrad:
                limit(op.operands[1], function.type(of: op.operands[0]).shape.last ?? 1)
            default: break
            }
        }
        return bounds
    }
}
