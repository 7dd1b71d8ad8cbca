import ArgumentParser
import Foundation
import GranuleCheck
import GranuleIR
import GranuleInterpreter

struct GradcheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Differentiate a loss function and compare its gradients with central finite differences (float64).")

    @Argument(help: "The .tir file.") var file: String

    @Option(help: "The loss function (its first result must be a float scalar).")
    var function: String?

    @Option(help: "A .safetensors file with parameter values; others are random.")
    var inputs: String?

    @Option(help: "Seed for the random parameter values.")
    var seed: UInt64 = 1

    @Option(help: "Standard deviation of random float values.")
    var scale: Double = 1

    @Option(help: "Check at most this many elements per parameter.")
    var maxElements: Int?

    @Option(help: "Fail if any relative error exceeds this.")
    var tolerance: Double = 1e-6

    @Option(help: "Check these gradients (a .safetensors file with loss and grad.<param> tensors, e.g. from `granule run` of the differentiated program) instead of differentiating here.")
    var gradients: String?

    @Option(name: .customLong("wrt"), help: "Also check gradients with respect to these inputs (comma-separated).")
    var withRespectTo: String?

    func validate() throws {
        if let maxElements, maxElements < 1 { throw ValidationError("--max-elements must be at least 1, got \(maxElements)") }
        guard tolerance.isFinite, tolerance >= 0 else { throw ValidationError("--tolerance must be a finite number ≥ 0, got \(tolerance)") }
        guard scale.isFinite, scale >= 0 else { throw ValidationError("--scale must be a finite number ≥ 0, got \(scale)") }
    }

    func run() throws {
        try runReportingErrors {
            let module = try loadModule(path: file)
            let function = try selectFunction(module, named: self.function, path: file)
            guard let first = function.results.first,
                function.type(of: first.value).dtype.isFloat, function.type(of: first.value).rank == 0
            else {
                let got = function.results.first.map { "\(function.type(of: $0.value))" } ?? "nothing"
                throw CommandFailure("\(file): error: @\(function.name) returns \(got) first; gradcheck needs a float scalar loss")
            }
            let wrt = withRespectTo.map { $0.split(separator: ",").map(String.init) } ?? []
            let values = try inputValues(for: function, file: inputs, randomSeed: seed, scale: scale)
            let check = GradientCheck(maxElementsPerTensor: maxElements, extraGradientInputs: wrt)
            let report: GradientCheck.Report
            if let gradients {
                let given = try Safetensors.read(path: gradients)
                guard let loss = given.first(where: { $0.name == "loss" }), loss.tensor.type.dtype.isFloat, loss.tensor.elementCount == 1 else {
                    throw CommandFailure("\(gradients): error: no float scalar tensor 'loss'")
                }
                // Every gradient the function has must be there: an absent one would pass unchecked.
                let expected = function.parameters.filter { $0.role == .trainable }.map { function.name(of: $0.value) } + wrt
                let missing = expected.filter { name in !given.contains { $0.name == "grad." + name } }
                if !missing.isEmpty {
                    throw CommandFailure("\(gradients): error: no tensor \(missing.map { "grad." + $0 }.joined(separator: ", ")) (the gradient of %\(missing[0]))")
                }
                do throws(Diagnostic) {
                    report = try check.check(
                        function, inputs: values, loss: loss.tensor.floats[0], gradients: given.filter { $0.name.hasPrefix("grad.") })
                } catch {
                    throw CommandFailure("\(gradients): error: \(error.message)")
                }
            } else {
                report = try check.run(function, inputs: values)
            }
            print("loss \(formatNumber(report.loss))")
            for entry in report.entries {
                let verdict = entry.relativeError <= tolerance ? "ok" : "FAIL"
                let error = entry.isZero
                    ? "zero gradient (finite differences \(String(format: "%.1e", entry.maxAbsoluteError)))"
                    : "relative error \(String(format: "%.2e", entry.relativeError))"
                print("\(verdict) grad.\(entry.parameter): \(entry.checkedElements) elements, norm \(formatNumber(entry.gradientNorm)), \(error)")
            }
            print("worst relative error \(String(format: "%.2e", report.worstRelativeError)) (tolerance \(String(format: "%.0e", tolerance)))")
            if !(report.worstRelativeError <= tolerance) { throw ExitCode.failure }
        }
    }
}
