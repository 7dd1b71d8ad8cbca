import Foundation
import GranuleIR

/// The AdamW optimizer step, compiled into the program as IR state rather than run by a side loop.
///
/// For every function `@f` that has an autodiff sibling `@f_grad` (results: the loss, then
/// `grad.<name>` for each trainable parameter), adds `@f_train_step`: `@f_grad`'s computation
/// followed by gradient clipping and one AdamW update, with the same parameters plus
///
/// - `%learning_rate: f32[] input`: the scheduled learning rate of this step, computed by the driver;
/// - `%adam.step: i64[] state`: how many steps were taken (0 before the first call);
/// - `%adam.m.<name>` and `%adam.v.<name>` (`state`, the type of `%<name>`): the first and second
///   moments of each trainable parameter, zero before the first call. Frozen parameters get none.
///
/// and the results, in this order: the loss (named as in `@f`); for each trainable parameter its
/// updated value named `<name>`, `writes %<name>`; the new moments `adam.m.<name>` and
/// `adam.v.<name>` (each writes its state), all first moments before all second moments; `adam.step`
/// (writes `%adam.step`); and `grad_norm`, the global gradient norm *before* clipping (for logging
/// and the driver's NaN/Inf check). Every written result is named like the parameter it writes, so
/// the results of a call, saved as safetensors, are a checkpoint of the trainable weights and the
/// optimizer state.
///
/// Semantics: `torch.nn.utils.clip_grad_norm_(trainable, maxGradNorm)` followed by Hugging Face's
/// `transformers.optimization.AdamW(correct_bias=True)` (removed from transformers 5; the VL-PET
/// recipe, spec section 6.1, uses the 4.x one). In order:
///
///     norm  = sqrt(Σ_p Σ g_p²)                                  (over every trainable gradient)
///     scale = min(1, maxGradNorm / (norm + 1e-6));  g_p ← scale · g_p
///     t     = step + 1
///     step_size = lr · sqrt(1 − β2^t) / (1 − β1^t)
///     per parameter p:
///       m ← β1·m + (1 − β1)·g
///       v ← β2·v + (1 − β2)·g²
///       p ← p − step_size · m / (sqrt(v) + eps)       (eps outside the bias correction, as HF)
///       p ← p − (lr · weightDecay) · p                (decoupled decay after the Adam update, with
///                                                      lr, not step_size; skipped for no-decay names)
///
/// A parameter is in the no-decay group when its name contains one of `noDecayPatterns` (default
/// `bias` and `LayerNorm.weight`, the official code's two groups). BART/T5 norm weights are named
/// `layer_norm`/`layernorm_embedding`, so they do get weight decay, as in the official runs.
///
/// The learning-rate schedule is not in the IR: the driver feeds `learning_rate` per call, with
/// `get_linear_schedule_with_warmup` (`linearWarmupDecay`): for the call that sees `adam.step = k`
/// (k = 0 for the first step), with peak `lr0`, `W` warm-up steps and `T` total steps,
///
///     lr(k) = lr0 · (k / max(1, W))                      if k < W
///     lr(k) = lr0 · max(0, (T − k) / max(1, T − W))      otherwise
///
/// evaluated in double precision and rounded to f32. The official code uses W = int(0.1 · T); with
/// W ≥ 1 the first step has lr 0 and only fills the moments.
///
/// Precision: the per-element update is f32 (the parameter's dtype), like PyTorch's fp32 run. The
/// step counter is an exact `i64`, so it never loses counts and checkpoints resume bit-identically.
/// IR `pow` has a constant exponent, so β^t is computed as `exp(t · ln β)` with `ln β` folded at
/// compile time; that scalar chain (t, β^t, the bias corrections, `step_size` and `lr · wd`) is
/// computed in f64 and rounded to f32 once at the end (PyTorch also computes `step_size` in Python
/// doubles and rounds it to f32 in the kernel). The relative error of β^t is below
/// `|t · ln β| · 2⁻⁵²` (< 1e-14 while β^t is not negligible), so `1 − β2^t` (= 1e-3 at t = 1)
/// keeps ~11 significant digits; in f32 it would keep only ~4.
///
/// What it does not do: no other optimizers, per-group learning rates, AMSGrad, gradient
/// accumulation or loss scaling; no learning-rate schedule or NaN check in the IR (the driver
/// checks `grad_norm` and the loss; by then the call has written the weights, so the last good
/// checkpoint is the one on disk). A trainable parameter that the loss does not reach gets a zero
/// gradient from autodiff, so its moments decay and it is still weight-decayed (PyTorch skips a
/// parameter whose `.grad` is None). Gradients autodiff made for `input` parameters (`--wrt`) are
/// ignored, `@f`'s other results (e.g. logits) are not returned, `@f` and `@f_grad` are kept
/// unchanged, and an existing `@f_train_step` is left alone. No cleanup: run `simplify,cse,dce`.
public struct AdamW: ModulePass {
    public let name = "adamw"
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var weightDecay: Double
    /// The global L2 norm gradients are clipped to; nil disables clipping (`grad_norm` is still returned).
    public var maxGradNorm: Double?
    /// Parameters whose name contains one of these substrings get no weight decay.
    public var noDecayPatterns: [String]

    public init(
        beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-6, weightDecay: Double = 0.01,
        maxGradNorm: Double? = 5.0, noDecayPatterns: [String] = ["bias", "LayerNorm.weight"]
    ) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.maxGradNorm = maxGradNorm
        self.noDecayPatterns = noDecayPatterns
    }

    public static func trainStepFunctionName(_ name: String) -> String { name + "_train_step" }
    public static let learningRateName = "learning_rate"
    public static let stepName = "adam.step"
    public static let gradientNormName = "grad_norm"
    public static func firstMomentName(_ parameter: String) -> String { "adam.m." + parameter }
    public static func secondMomentName(_ parameter: String) -> String { "adam.v." + parameter }

    /// Whether the parameter named `name` is weight-decayed (not in the no-decay group).
    public func decays(_ name: String) -> Bool {
        weightDecay != 0 && !noDecayPatterns.contains { name.contains($0) }
    }

    /// `get_linear_schedule_with_warmup`'s learning rate for the step that sees `adam.step = step`.
    public static func linearWarmupDecay(step: Int, peak: Double, warmupSteps: Int, totalSteps: Int) -> Double {
        if step < warmupSteps { return peak * (Double(step) / Double(max(1, warmupSteps))) }
        return peak * max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
    }

    public func run(on module: Module) throws(Diagnostic) -> Module {
        var result = module
        for function in module.functions {
            let stepName = AdamW.trainStepFunctionName(function.name)
            guard let gradient = module.function(named: Autodiff.gradientFunctionName(function.name)),
                result.function(named: stepName) == nil
            else { continue }
            result.functions.append(try trainStep(gradient, named: stepName))
        }
        return result
    }

    /// `@f_train_step` built from `@f_grad`.
    public func trainStep(_ gradient: Function, named stepName: String) throws(Diagnostic) -> Function {
        func fail(_ message: String) -> Diagnostic { Diagnostic("adamw: @\(gradient.name): \(message)", at: gradient.location) }
        let trainables = gradient.parameters(withRole: .trainable)
        guard !trainables.isEmpty else { throw fail("has no trainable parameters") }
        guard let loss = gradient.results.first, gradient.type(of: loss.value).rank == 0,
            gradient.type(of: loss.value).dtype.isFloat
        else { throw fail("the first result must be a float scalar loss") }

        // The gradient of each trainable parameter, by result name.
        var gradients: [Value] = []
        for parameter in trainables {
            let name = gradient.name(of: parameter.value)
            guard let result = gradient.results.first(where: { $0.name == "grad." + name }) else {
                throw fail("has no result 'grad.\(name)' (is it autodiff's output?)")
            }
            guard gradient.type(of: result.value) == gradient.type(of: parameter.value) else {
                let types = (gradient.type(of: result.value), gradient.type(of: parameter.value))
                throw fail("'grad.\(name)' is \(types.0), %\(name) is \(types.1)")
            }
            guard let first = name.first, first.isASCII, first.isLetter || first == "_" else {
                throw fail("%\(name) must start with a letter or '_' to name the result that writes it")
            }
            gradients.append(result.value)
        }
        let names = trainables.map { gradient.name(of: $0.value) }
        let resultNames = [loss.name, AdamW.stepName, AdamW.gradientNormName] + names
            + names.map(AdamW.firstMomentName) + names.map(AdamW.secondMomentName)
        if let clash = Dictionary(grouping: resultNames, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw fail("two results would be named '\(clash)'")
        }

        var b = GraphBuilder(gradient)
        b.function.name = stepName
        b.function.results = []
        func newParameter(_ name: String, _ type: TensorType, _ role: Role) throws(Diagnostic) -> Value {
            guard b.function.value(named: name) == nil else { throw fail("already has a value named %\(name)") }
            return b.function.addParameter(named: name, type: type, role: role)
        }
        let learningRate = try newParameter(AdamW.learningRateName, .scalar(.f32), .input)
        let step = try newParameter(AdamW.stepName, .scalar(.i64), .state)
        var firstMoments: [Value] = []
        var secondMoments: [Value] = []
        for (name, parameter) in zip(names, trainables) {
            firstMoments.append(try newParameter(AdamW.firstMomentName(name), gradient.type(of: parameter.value), .state))
        }
        for (name, parameter) in zip(names, trainables) {
            secondMoments.append(try newParameter(AdamW.secondMomentName(name), gradient.type(of: parameter.value), .state))
        }

        // Scalars of each dtype, made once.
        var converted: [String: Value] = [:]
        func scalar(_ value: Value, as dtype: DType, key: String) throws(Diagnostic) -> Value {
            if b.type(value).dtype == dtype { return value }
            if let existing = converted[key + "." + dtype.rawValue] { return existing }
            let cast = try b.emit(.cast, [value], type: .scalar(dtype), name: key + "." + dtype.rawValue)
            converted[key + "." + dtype.rawValue] = cast
            return cast
        }
        func constant(_ value: Double, _ dtype: DType) throws(Diagnostic) -> Value {
            try b.function.appendScalar(value, dtype)
        }

        // 1. Global norm over every trainable gradient (f32, reductions accumulate like the interpreter's).
        var sumOfSquares: Value?
        for g in gradients {
            let rank = b.type(g).rank
            let squares = try b.mul(g, g)
            var partial = rank == 0 ? squares : try b.reduceSum(squares, axes: Array(0..<rank))
            partial = try scalar(partial, as: .f32, key: "sumsq.\(partial.id)")
            if let sum = sumOfSquares { sumOfSquares = try b.add(sum, partial) } else { sumOfSquares = partial }
        }
        let norm = try b.emit(.sqrt, [sumOfSquares!], name: AdamW.gradientNormName)

        // 2. Clipping: scale = min(1, max / (norm + 1e-6)), as clip_grad_norm_ (which always multiplies).
        var clipped = gradients
        if let maxGradNorm {
            let denominator = try b.add(norm, try constant(1e-6, .f32))
            let coefficient = try b.div(try constant(maxGradNorm, .f32), denominator)
            let scale = try b.emit(.min, [coefficient, try constant(1, .f32)], name: "clip.scale")
            for index in gradients.indices {
                let g = gradients[index]
                clipped[index] = try b.mul(g, try scalar(scale, as: b.type(g).dtype, key: "clip.scale"))
            }
        }

        // 3. The step's scalars in f64: t = step + 1, β^t = exp(t·ln β), the bias corrections.
        let t = try b.emit(.add, [step, try constant(1, .i64)], name: "adam.t")
        let tReal = try b.emit(.cast, [t], type: .scalar(.f64), name: "adam.t.f64")
        func correction(_ beta: Double) throws(Diagnostic) -> Value {
            let power = try b.exp(try b.mul(tReal, try constant(log(beta), .f64)))
            return try b.sub(try constant(1, .f64), power)
        }
        let correction1 = try correction(beta1)
        let correction2 = try correction(beta2)
        let learningRate64 = try b.emit(.cast, [learningRate], type: .scalar(.f64), name: "learning_rate.f64")
        let stepSize64 = try b.div(try b.mul(learningRate64, try b.emit(.sqrt, [correction2])), correction1)
        let stepSize = try b.emit(.cast, [stepSize64], type: .scalar(.f32), name: "adam.step_size")
        var decayFactor: Value?
        if names.contains(where: decays) {
            let decay64 = try b.mul(learningRate64, try constant(weightDecay, .f64))
            decayFactor = try b.emit(.cast, [decay64], type: .scalar(.f32), name: "adam.decay")
        }

        // 4. Per parameter: moments, Adam update, decoupled decay.
        var newParameters: [Value] = []
        var newFirst: [Value] = []
        var newSecond: [Value] = []
        for (index, parameter) in trainables.enumerated() {
            let name = names[index]
            let p = parameter.value
            let dtype = b.type(p).dtype
            let g = clipped[index]
            let m = try b.add(
                try b.mul(firstMoments[index], try constant(beta1, dtype)), try b.mul(g, try constant(1 - beta1, dtype)))
            let v = try b.add(
                try b.mul(secondMoments[index], try constant(beta2, dtype)),
                try b.mul(try b.mul(g, g), try constant(1 - beta2, dtype)))
            let denominator = try b.add(try b.emit(.sqrt, [v]), try constant(epsilon, dtype))
            let update = try b.div(try b.mul(m, try scalar(stepSize, as: dtype, key: "adam.step_size")), denominator)
            var updated = try b.sub(p, update)
            if decays(name), let decayFactor {
                updated = try b.sub(updated, try b.mul(updated, try scalar(decayFactor, as: dtype, key: "adam.decay")))
            }
            b.function.rename(m, to: "new." + AdamW.firstMomentName(name))
            b.function.rename(v, to: "new." + AdamW.secondMomentName(name))
            b.function.rename(updated, to: "new." + name)
            newParameters.append(updated)
            newFirst.append(m)
            newSecond.append(v)
        }

        var function = b.function
        function.results = [FunctionResult(name: loss.name, value: loss.value)]
        for (index, parameter) in trainables.enumerated() {
            function.results.append(FunctionResult(name: names[index], value: newParameters[index], writes: parameter.value))
        }
        for (index, name) in names.enumerated() {
            function.results.append(
                FunctionResult(name: AdamW.firstMomentName(name), value: newFirst[index], writes: firstMoments[index]))
        }
        for (index, name) in names.enumerated() {
            function.results.append(
                FunctionResult(name: AdamW.secondMomentName(name), value: newSecond[index], writes: secondMoments[index]))
        }
        function.results.append(FunctionResult(name: AdamW.stepName, value: t, writes: step))
        function.results.append(FunctionResult(name: AdamW.gradientNormName, value: norm))
        return function
    }
}
