import Foundation
import GranuleIR

/// The attributes of `cross_entropy` and `cross_entropy_grad`.
struct CrossEntropyOptions {
    enum Reduction: String {
        case none, sum, mean
        case sampleMean = "sample_mean"
    }

    var ignoreIndex: Int64
    var reduction: Reduction

    init(_ attributes: Attributes) throws(Diagnostic) {
        ignoreIndex = Int64(try attributes.int("ignore_index", default: -100))
        let name = try attributes.symbol("reduction", oneOf: TypeRules.crossEntropyReductions)
        guard let reduction = Reduction(rawValue: name) else { throw Diagnostic("unknown reduction '\(name)'") }
        self.reduction = reduction
    }
}

/// `cross_entropy %logits, %labels` and `cross_entropy_grad %logits, %labels, %dloss`, fused
/// because the softmax they share is the numerically delicate part.
///
/// Logits are `[..., V]` and labels `[...]`; position p has loss ℓ_p = logsumexp(row p) −
/// logits[p, label_p], or 0 when its label is `ignore_index`. Reductions: `none` keeps ℓ per
/// position, `sum` adds them, `mean` divides the sum by max(count, 1) where count is the number of
/// non-ignored positions, and `sample_mean` does the same per sample (the first label axis). The
/// gradient of the loss with upstream gradient g is g·(softmax(row) − onehot(label)) per row.
extension Interpreter {
    func crossEntropy(
        _ logits: Tensor, _ labels: Tensor, dloss: Tensor?, _ options: CrossEntropyOptions, type: TensorType
    ) throws(Diagnostic) -> Tensor {
        let opName = dloss == nil ? "cross_entropy" : "cross_entropy_grad"
        let z = try logits.floatValues()
        let y = try labels.intValues()
        let classes = logits.type.shape.last ?? 0
        let positions = y.count
        let samples = labels.type.rank >= 1 ? labels.type.shape[0] : 1
        let perSample = samples > 0 ? positions / samples : 0

        // Check the labels and count the positions that contribute, overall and per sample.
        var count = 0
        var sampleCounts = [Int](repeating: 0, count: samples)
        for (p, label) in y.enumerated() where label != options.ignoreIndex {
            guard label >= 0, label < Int64(classes) else {
                let at = Indexing.multiIndex(p, in: labels.type.shape).map(String.init).joined(separator: ", ")
                throw Diagnostic("'\(opName)' label \(label) at labels[\(at)] is out of range [0, \(classes)) and is not the ignore_index \(options.ignoreIndex)")
            }
            count += 1
            sampleCounts[p / perSample] += 1
        }

        // Row maxima and Σ exp(z − max), shared by the loss (logsumexp) and the gradient (softmax).
        var maxima = [Double](repeating: -.infinity, count: positions)
        var sums = [Double](repeating: 0, count: positions)
        for p in 0..<positions {
            let base = p * classes
            var maximum = -Double.infinity
            for v in 0..<classes where z[base + v].isNaN || z[base + v] > maximum { maximum = z[base + v] }
            var sum = 0.0
            for v in 0..<classes { sum += Foundation.exp(z[base + v] - maximum) }
            maxima[p] = maximum
            sums[p] = sum
        }

        guard let dloss else {
            var losses = [Double](repeating: 0, count: positions)
            for (p, label) in y.enumerated() where label != options.ignoreIndex {
                let logSumExp = maxima[p].isFinite ? maxima[p] + Foundation.log(sums[p]) : maxima[p]
                losses[p] = logSumExp - z[p * classes + Int(label)]
            }
            switch options.reduction {
            case .none:
                return Tensor(type, floats: losses)
            case .sum:
                return Tensor(type, floats: [losses.reduce(0, +)])
            case .mean:
                return Tensor(type, floats: [losses.reduce(0, +) / Double(Swift.max(count, 1))])
            case .sampleMean:
                var totals = [Double](repeating: 0, count: samples)
                for p in 0..<positions { totals[p / perSample] += losses[p] }
                return Tensor(type, floats: (0..<samples).map { totals[$0] / Double(Swift.max(sampleCounts[$0], 1)) })
            }
        }

        let upstream = try dloss.floatValues()
        var result = [Double](repeating: 0, count: z.count)
        for (p, label) in y.enumerated() where label != options.ignoreIndex {
            let g: Double
            switch options.reduction {
            case .none: g = upstream[p]
            case .sum: g = upstream[0]
            case .mean: g = upstream[0] / Double(Swift.max(count, 1))
            case .sampleMean: g = upstream[p / perSample] / Double(Swift.max(sampleCounts[p / perSample], 1))
            }
            let base = p * classes
            for v in 0..<classes {
                let probability = Foundation.exp(z[base + v] - maxima[p]) / sums[p]
                result[base + v] = g * (probability - (v == Int(label) ? 1 : 0))
            }
        }
        return Tensor(logits.type, floats: result)
    }
}
