import GranuleIR

/// Turns sums of zero-padded pieces that do not overlap into one `concat`: `add(pad(a), pad(b))`
/// where `a` and `b` are padded along the same single axis into disjoint ranges is `concat(a, b)`
/// along that axis, with zero constants in the gaps. Add trees flatten: a sum of such sums is one
/// concat of all the pieces.
///
/// Why: the gradient of a slice is a pad, so the input gradient of a merged GEMM
/// (`merge-shared-matmuls`, whose result is sliced into 18 pieces on BART-base) arrives as a chain
/// of 17 adds of pads. Fused into one kernel that tests every pad at every element, it cost 12.7 ms
/// per step; a concat is a row-wise copy of the pieces.
///
/// Each rewritten add keeps its result value, so uses need no update; sums it absorbed and pads
/// left without uses are left for `dce`. The result equals the sum's except that `-0 + 0` is
/// `+0` where the concat keeps `-0`. It deliberately does not touch pads along more than one
/// axis, overlapping pieces, or sums that mix pads with other values.
public struct ConcatDisjointPads: FunctionPass {
    public let name = "pads-to-concat"

    public init() {}

    /// A value that is a sum of zero-padded `sources` along `axis`, each starting at `start`.
    private struct Pieces {
        var axis: Int
        var pieces: [(source: Value, start: Int)]
    }

    public func run(on function: Function) throws(Diagnostic) -> Function {
        var sums: [Value: Pieces] = [:]
        var result = function
        result.operations = []
        var builder = GraphBuilder(result)
        for op in function.operations {
            switch op.opcode {
            case .pad:
                if let (axis, start) = singleAxisPad(op) { sums[op.result] = Pieces(axis: axis, pieces: [(op.operands[0], start)]) }
            case .add:
                let type = function.type(of: op.result)
                guard let left = sums[op.operands[0]], let right = sums[op.operands[1]], left.axis == right.axis,
                    function.type(of: op.operands[0]) == type, function.type(of: op.operands[1]) == type,
                    let merged = disjoint(left.pieces + right.pieces, axis: left.axis, function)
                else { break }
                sums[op.result] = Pieces(axis: left.axis, pieces: merged)
                var operands: [Value] = []
                var position = 0
                for (source, start) in merged {
                    if start > position { operands.append(try builder.zeros(type.with(shape: shape(type.shape, left.axis, start - position)))) }
                    operands.append(source)
                    position = start + function.type(of: source).shape[left.axis]
                }
                if position < type.shape[left.axis] {
                    operands.append(try builder.zeros(type.with(shape: shape(type.shape, left.axis, type.shape[left.axis] - position))))
                }
                builder.function.operations.append(Operation(
                    result: op.result, opcode: .concat, operands: operands,
                    attributes: Attributes(["axis": .int(left.axis)]), location: op.location))
                continue
            default:
                break
            }
            builder.function.operations.append(op)
        }
        return builder.function
    }

    /// `(axis, low)` when `op` pads exactly one axis (a pad of nothing counts as none).
    private func singleAxisPad(_ op: Operation) -> (Int, Int)? {
        guard let low = try? op.attributes.ints("low"), let high = try? op.attributes.ints("high") else { return nil }
        let padded = low.indices.filter { low[$0] != 0 || high[$0] != 0 }
        guard padded.count == 1 else { return nil }
        return (padded[0], low[padded[0]])
    }

    /// The pieces in order of their start when no two overlap, else nil.
    private func disjoint(_ pieces: [(source: Value, start: Int)], axis: Int, _ function: Function) -> [(source: Value, start: Int)]? {
        let sorted = pieces.sorted { $0.start < $1.start }
        for (previous, next) in zip(sorted, sorted.dropFirst())
        where previous.start + function.type(of: previous.source).shape[axis] > next.start {
            return nil
        }
        return sorted
    }

    private func shape(_ shape: [Int], _ axis: Int, _ size: Int) -> [Int] {
        var result = shape
        result[axis] = size
        return result
    }
}
