import GranuleIR
import GranuleInterpreter
import GranulePasses

/// Compares autodiff's gradients with central finite differences, both evaluated by the
/// interpreter in float64 so that the comparison measures the gradient rules, not rounding.
public struct GradientCheck: Sendable {
    /// Step of the central difference `(f(x+h) − f(x−h)) / 2h`.
    public var step: Double = 1e-5
    /// Check at most this many elements per tensor (spread evenly); nil checks all of them.
    public var maxElementsPerTensor: Int? = nil
    /// Also differentiate with respect to these inputs.
    public var extraGradientInputs: [String] = []

    public init(step: Double = 1e-5, maxElementsPerTensor: Int? = nil, extraGradientInputs: [String] = []) {
        self.step = step
        self.maxElementsPerTensor = maxElementsPerTensor
        self.extraGradientInputs = extraGradientInputs
    }

    /// The comparison for one differentiated parameter.
    public struct Entry: Sendable {
        public var parameter: String
        public var checkedElements: Int
        /// max |analytic − numeric| / max |numeric| over the checked elements; 0 for a gradient that
        /// is zero by both measures (see `isZero`); infinite when either side has a NaN or infinity.
        public var relativeError: Double
        /// Both the analytic gradient (below 1e-12) and the finite differences (below 1e-9, their
        /// noise level) vanish: a relative error means nothing there. Attention's key bias is one
        /// such parameter (softmax ignores a shift shared by every key).
        public var isZero: Bool
        public var maxAbsoluteError: Double
        public var gradientNorm: Double
    }

    public struct Report: Sendable {
        public var loss: Double
        public var entries: [Entry]
        public var worstRelativeError: Double { entries.map(\.relativeError).max() ?? 0 }
    }

    /// Differentiates `function` with autodiff and checks every gradient it returns.
    public func run(_ function: Function, inputs: [String: Tensor]) throws(Diagnostic) -> Report {
        let gradientFunction = try Autodiff(extraGradientInputs: extraGradientInputs).differentiate(function)
        try Verifier.verify(gradientFunction)
        let outputs = try Interpreter(precision: .float64).run(gradientFunction, inputs: inputs)
        let gradients = outputs.dropFirst().filter { $0.name.hasPrefix("grad.") }
        return try check(function, inputs: inputs, loss: outputs[0].tensor.floats[0], gradients: Array(gradients))
    }

    /// Checks gradients computed elsewhere (named `grad.<parameter>`, e.g. by `granule run` on a
    /// differentiated and optimized program) against finite differences of `function`.
    public func check(
        _ function: Function, inputs: [String: Tensor], loss: Double, gradients: [(name: String, tensor: Tensor)]
    ) throws(Diagnostic) -> Report {
        let interpreter = Interpreter(precision: .float64)
        var entries: [Entry] = []
        for (name, analytic) in gradients {
            let parameter = String(name.dropFirst("grad.".count))
            guard name.hasPrefix("grad."), let original = inputs[parameter] else {
                throw Diagnostic("gradient '\(name)' does not name a parameter of @\(function.name) as grad.<parameter>")
            }
            guard analytic.type.shape == original.type.shape, analytic.type.dtype.isFloat else {
                throw Diagnostic("gradient '\(name)' is \(analytic.type) but %\(parameter) is \(original.type)")
            }
            let count = original.elementCount
            let indices = sampledIndices(count)
            var maxError = 0.0
            var maxNumeric = 0.0
            var maxAnalytic = 0.0
            var nonFinite = false
            for index in indices {
                var plus = inputs
                var minus = inputs
                plus[parameter] = perturbed(original, index, by: step)
                minus[parameter] = perturbed(original, index, by: -step)
                let up = try interpreter.run(function, inputs: plus)[0].tensor.floats[0]
                let down = try interpreter.run(function, inputs: minus)[0].tensor.floats[0]
                let numeric = (up - down) / (2 * step)
                // max() would drop a NaN: a gradient of NaNs must fail, not compare as 0.
                if !numeric.isFinite || !analytic.floats[index].isFinite { nonFinite = true }
                maxError = max(maxError, Swift.abs(analytic.floats[index] - numeric))
                maxNumeric = max(maxNumeric, Swift.abs(numeric))
                maxAnalytic = max(maxAnalytic, Swift.abs(analytic.floats[index]))
            }
            let isZero = !nonFinite && maxAnalytic < 1e-12 && maxNumeric < 1e-9
            let norm = analytic.floats.reduce(0) { $0 + $1 * $1 }.squareRoot()
            entries.append(Entry(
                parameter: parameter, checkedElements: indices.count,
                relativeError: nonFinite ? .infinity : isZero ? 0 : maxError / max(maxNumeric, 1e-30), isZero: isZero,
                maxAbsoluteError: maxError, gradientNorm: norm))
        }
        return Report(loss: loss, entries: entries)
    }

    private func sampledIndices(_ count: Int) -> [Int] {
        guard let limit = maxElementsPerTensor, count > limit else { return Array(0..<count) }
        return (0..<limit).map { $0 * count / limit }
    }

    private func perturbed(_ tensor: Tensor, _ index: Int, by delta: Double) -> Tensor {
        var values = tensor.floats
        values[index] += delta
        return Tensor(tensor.type, floats: values)
    }
}
