import GranuleIR

/// Reverse-mode automatic differentiation.
///
/// For every function `@f` with `trainable` parameters whose first result is a float scalar (the
/// loss), adds a function `@f_grad` with the same parameters that returns the loss, then
/// `grad.<name>` for every trainable parameter (and for each input named in
/// `extraGradientInputs`), then `@f`'s other results. `@f` itself is kept.
///
/// Algorithm:
/// 1. Activity: a value is *varied* if it depends on a differentiated parameter through ops that
///    carry gradients (`GradientRules.isDifferentiable`), and *useful* if the loss depends on it.
///    Only values that are both get adjoints.
/// 2. Seed the loss's adjoint with 1 and walk the ops backwards, calling each op's gradient rule
///    for exactly the operands that get adjoints, summing adjoints of values used several times.
/// 3. A differentiated parameter that the loss does not depend on gets a zero gradient.
///
/// What it deliberately does not do: no gradients for `frozen`, `state` or other `input`
/// parameters, and no ops whose only use would be such a gradient (a frozen weight's matmul gets
/// the input-gradient matmul only); no second derivatives; no cleanup (run `simplify,cse,dce`).
public struct Autodiff: ModulePass {
    public let name = "autodiff"
    public var extraGradientInputs: [String]

    public init(extraGradientInputs: [String] = []) { self.extraGradientInputs = extraGradientInputs }

    public static func gradientFunctionName(_ name: String) -> String { name + "_grad" }

    public func run(on module: Module) throws(Diagnostic) -> Module {
        var result = module
        for function in module.functions {
            let gradientName = Autodiff.gradientFunctionName(function.name)
            guard module.function(named: gradientName) == nil, try isDifferentiable(function) else { continue }
            var gradient = try differentiate(function)
            gradient.name = gradientName
            result.functions.append(gradient)
        }
        return result
    }

    private func isDifferentiable(_ function: Function) throws(Diagnostic) -> Bool {
        let extras = function.parameters.filter { extraGradientInputs.contains(function.name(of: $0.value)) }
        guard !function.parameters(withRole: .trainable).isEmpty || !extras.isEmpty else { return false }
        guard let loss = function.results.first, function.type(of: loss.value).rank == 0,
            function.type(of: loss.value).dtype.isFloat
        else { return false }
        return true
    }

    /// The parameters to differentiate with respect to, in parameter order.
    private func gradientParameters(_ function: Function) throws(Diagnostic) -> [Parameter] {
        for name in extraGradientInputs {
            guard let value = function.value(named: name), let parameter = function.parameter(for: value) else {
                throw Diagnostic("autodiff: @\(function.name) has no parameter %\(name)", at: function.location)
            }
            guard function.type(of: parameter.value).dtype.isFloat else {
                throw Diagnostic("autodiff: %\(name) is \(function.type(of: value)); only float parameters have gradients", at: parameter.location)
            }
        }
        return function.parameters.filter {
            $0.role == .trainable || ($0.role == .input && extraGradientInputs.contains(function.name(of: $0.value)))
        }
    }

    public func differentiate(_ function: Function) throws(Diagnostic) -> Function {
        let parameters = try gradientParameters(function)
        let loss = function.results[0].value

        // 1. Activity analysis.
        var varied = [Bool](repeating: false, count: function.valueCount)
        for parameter in parameters { varied[parameter.value.id] = true }
        for op in function.operations {
            varied[op.result.id] = op.operands.indices.contains {
                varied[op.operands[$0].id] && GradientRules.isDifferentiable(op.opcode, operand: $0)
            }
        }
        var useful = [Bool](repeating: false, count: function.valueCount)
        useful[loss.id] = true
        for op in function.operations.reversed() where useful[op.result.id] {
            for operand in op.operands { useful[operand.id] = true }
        }
        let active = { (value: Value) in varied[value.id] && useful[value.id] }

        // 2. Backward sweep.
        var builder = GraphBuilder(function)
        var adjoints: [Value: Value] = [:]
        if active(loss) {
            adjoints[loss] = try builder.function.appendScalar(1, function.type(of: loss).dtype, name: "d." + function.name(of: loss))
        }
        for op in function.operations.reversed() {
            guard active(op.result), let dy = adjoints[op.result] else { continue }
            let needed = op.operands.indices.map {
                active(op.operands[$0]) && GradientRules.isDifferentiable(op.opcode, operand: $0)
            }
            guard needed.contains(true) else { continue }
            let grads = try GradientRules.gradients(of: op, resultGradient: dy, needed: needed, builder: &builder)
            for (operand, gradient) in zip(op.operands, grads) {
                guard let gradient else { continue }
                if let existing = adjoints[operand] {
                    adjoints[operand] = try builder.add(existing, gradient)
                } else {
                    adjoints[operand] = gradient
                }
            }
        }

        // 3. Results: loss, gradients, then the remaining original results.
        var gradientResults: [FunctionResult] = []
        for parameter in parameters {
            let type = function.type(of: parameter.value)
            let name = function.name(of: parameter.value)
            var gradient = adjoints[parameter.value]
            if gradient == nil { gradient = try builder.zeros(type) }
            gradientResults.append(FunctionResult(name: "grad." + name, value: gradient!))
        }
        var result = builder.function
        result.results = [function.results[0]] + gradientResults + function.results.dropFirst()
        result.results = result.results.map { FunctionResult(name: $0.name, value: $0.value, writes: nil, location: $0.location) }
        nameAdjoints(&result, adjoints, firstNewValue: function.valueCount)
        return result
    }

    /// Names each adjoint created by the backward sweep `d.<value>`, so dumps read as math.
    private func nameAdjoints(_ function: inout Function, _ adjoints: [Value: Value], firstNewValue: Int) {
        var renamed: Set<Value> = []
        for (primal, adjoint) in adjoints.sorted(by: { $0.key < $1.key })
        where adjoint.id >= firstNewValue && renamed.insert(adjoint).inserted {
            function.rename(adjoint, to: "d." + function.name(of: primal))
        }
    }
}
