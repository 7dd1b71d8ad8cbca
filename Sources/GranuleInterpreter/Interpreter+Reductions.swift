import GranuleIR

/// `reduce_sum`, `reduce_mean` and `reduce_max` over a set of axes.
///
/// Each input element is added into the output slot its index maps to (the reduced axes
/// collapsed), visiting the input in row-major order; float sums accumulate in `Double`. The mean
/// over zero elements is 0/0 = NaN and the max over zero elements is the identity of max
/// (-inf, or the dtype's minimum for integers). `reduce_max` propagates NaN.
///
/// i1 has no arithmetic: `reduce_sum` over i1 is a logical or (saturating at 1), which keeps the
/// result a valid i1 value.
extension Interpreter {
    func reduce(_ opcode: Opcode, _ x: Tensor, axes: [Int], type: TensorType) throws(Diagnostic) -> Tensor {
        let shape = x.type.shape
        var kept = shape
        for axis in axes { kept[axis] = 1 }
        let outputCount = Indexing.count(kept)
        let slot = Indexing.broadcastOffsets(from: kept, to: shape)
        let reducedCount = axes.reduce(1) { $0 * shape[$1] }

        switch x.storage {
        case .float(let values):
            var result: [Double]
            if opcode == .reduceMax {
                result = [Double](repeating: -.infinity, count: outputCount)
                for (i, value) in values.enumerated() {
                    let j = slot?[i] ?? i
                    if value.isNaN || value > result[j] { result[j] = value }
                }
            } else {
                result = [Double](repeating: 0, count: outputCount)
                values.withUnsafeBufferPointer { v in
                    result.withUnsafeMutableBufferPointer { r in
                        for i in 0..<v.count { r[slot?[i] ?? i] += v[i] }
                    }
                }
                if opcode == .reduceMean {
                    let divisor = Double(reducedCount)
                    result = result.map { $0 / divisor }
                }
            }
            return Tensor(type, floats: result)

        case .int(let values):
            let dtype = type.dtype
            var result: [Int64]
            switch opcode {
            case .reduceMax:
                let identity: Int64 = dtype == .i64 ? .min : dtype == .i32 ? Int64(Int32.min) : 0
                result = [Int64](repeating: identity, count: outputCount)
                for (i, value) in values.enumerated() {
                    let j = slot?[i] ?? i
                    result[j] = Swift.max(result[j], value)
                }
            case .reduceSum:
                result = [Int64](repeating: 0, count: outputCount)
                for (i, value) in values.enumerated() {
                    let j = slot?[i] ?? i
                    result[j] = dtype.wrap(result[j] &+ value)
                }
            default:
                throw Interpreter.internalError("'\(opcode.name)' has no integer form")
            }
            return Tensor(type, ints: result)
        }
    }
}
