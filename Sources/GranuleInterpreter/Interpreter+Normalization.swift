import Foundation
import GranuleIR

/// `softmax`, `log_softmax`, `layer_norm` and `rms_norm`: ops that normalise along one axis,
/// computed in `Double` with the max subtracted first (softmax) and two passes (layer norm) for
/// numerical stability.
extension Interpreter {
    /// softmax: exp(x − max) / Σ exp(x − max); log_softmax: x − max − log Σ exp(x − max).
    func softmax(_ x: Tensor, axis: Int, log: Bool) throws(Diagnostic) -> Tensor {
        let values = try x.floatValues()
        let (outer, size, inner) = Indexing.split(x.type.shape, at: axis)
        var result = [Double](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { v in
            result.withUnsafeMutableBufferPointer { r in
                for o in 0..<outer {
                    for i in 0..<inner {
                        let base = o * size * inner + i
                        var maximum = -Double.infinity
                        for a in 0..<size {
                            let value = v[base + a * inner]
                            if value.isNaN || value > maximum { maximum = value }
                        }
                        var sum = 0.0
                        for a in 0..<size { sum += Foundation.exp(v[base + a * inner] - maximum) }
                        if log {
                            let logSum = Foundation.log(sum)
                            for a in 0..<size { r[base + a * inner] = v[base + a * inner] - maximum - logSum }
                        } else {
                            for a in 0..<size { r[base + a * inner] = Foundation.exp(v[base + a * inner] - maximum) / sum }
                        }
                    }
                }
            }
        }
        return Tensor(x.type, floats: result)
    }

    /// Over the last axis: layer_norm y = (x − μ)/sqrt(σ² + eps)·γ + β with the biased variance;
    /// rms_norm y = x/sqrt(mean(x²) + eps)·γ.
    func normalize(_ x: Tensor, gamma: Tensor, beta: Tensor?, eps: Double, rms: Bool) throws(Diagnostic) -> Tensor {
        let values = try x.floatValues()
        let g = try gamma.floatValues()
        let b = try beta?.floatValues()
        let width = x.type.shape.last ?? 1
        let rows = width > 0 ? values.count / width : 0
        let count = Double(width)
        var result = [Double](repeating: 0, count: values.count)
        for row in 0..<rows {
            let base = row * width
            if rms {
                var squares = 0.0
                for j in 0..<width { squares += values[base + j] * values[base + j] }
                let denominator = (squares / count + eps).squareRoot()
                for j in 0..<width { result[base + j] = values[base + j] / denominator * g[j] }
            } else {
                var sum = 0.0
                for j in 0..<width { sum += values[base + j] }
                let mean = sum / count
                var squares = 0.0
                for j in 0..<width {
                    let centered = values[base + j] - mean
                    squares += centered * centered
                }
                let denominator = (squares / count + eps).squareRoot()
                for j in 0..<width { result[base + j] = (values[base + j] - mean) / denominator * g[j] + (b?[j] ?? 0) }
            }
        }
        return Tensor(x.type, floats: result)
    }
}
