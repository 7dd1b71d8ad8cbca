import GranuleIR

/// `max_pool2d` (stride 1, no padding, over axes [..., H, W, C]) and its gradient.
///
/// Both are defined through one argmax: the FIRST window position, in row-major (di, dj) order,
/// that attains the maximum (a NaN counts as the maximum). The gradient routes each output's
/// gradient to exactly that position, so the pair is consistent even with ties.
extension Interpreter {
    func maxPool2d(_ x: Tensor, window: [Int], type: TensorType) throws(Diagnostic) -> Tensor {
        let positions = try Interpreter.poolArgmax(x, window: window)
        return Tensor(type, storage: x.storage.gathered(positions))
    }

    func maxPool2dGrad(_ x: Tensor, _ dy: Tensor, window: [Int]) throws(Diagnostic) -> Tensor {
        let positions = try Interpreter.poolArgmax(x, window: window)
        let gradient = try dy.floatValues()
        var result = [Double](repeating: 0, count: x.elementCount)
        for (p, position) in positions.enumerated() { result[position] += gradient[p] }
        return Tensor(x.type, floats: result)
    }

    /// For each output element in row-major order, the flat index in `x` of its window's maximum.
    static func poolArgmax(_ x: Tensor, window: [Int]) throws(Diagnostic) -> [Int] {
        let values = try x.floatValues()
        let shape = x.type.shape
        let rank = shape.count
        let (height, width, channels) = (shape[rank - 3], shape[rank - 2], shape[rank - 1])
        let (kh, kw) = (window[0], window[1])
        let (outHeight, outWidth) = (height - kh + 1, width - kw + 1)
        let batches = Indexing.count(Array(shape.dropLast(3)))
        var positions: [Int] = []
        positions.reserveCapacity(batches * outHeight * outWidth * channels)
        for b in 0..<batches {
            for i in 0..<outHeight {
                for j in 0..<outWidth {
                    for c in 0..<channels {
                        var best = ((b * height + i) * width + j) * channels + c
                        var bestValue = values[best]
                        for di in 0..<kh {
                            for dj in 0..<kw {
                                let index = ((b * height + i + di) * width + j + dj) * channels + c
                                let value = values[index]
                                if !bestValue.isNaN, value.isNaN || value > bestValue {
                                    best = index
                                    bestValue = value
                                }
                            }
                        }
                        positions.append(best)
                    }
                }
            }
        }
        return positions
    }
}
