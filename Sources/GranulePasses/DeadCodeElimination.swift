import GranuleIR

/// Dead-code elimination: removes every op whose result no function result depends on.
///
/// Algorithm: mark the returned values live; walk the ops backwards, marking the operands of live
/// ops live; keep the live ops in their original order. Parameters are never removed (they are the
/// function's interface), and the value table keeps the names of removed values, which is harmless.
public struct DeadCodeElimination: FunctionPass {
    public let name = "dce"

    public init() {}

    public func run(on function: Function) throws(Diagnostic) -> Function {
        var live = [Bool](repeating: false, count: function.valueCount)
        for result in function.results { live[result.value.id] = true }
        for op in function.operations.reversed() where live[op.result.id] {
            for operand in op.operands { live[operand.id] = true }
        }
        var result = function
        result.operations.removeAll { !live[$0.result.id] }
        return result
    }
}
