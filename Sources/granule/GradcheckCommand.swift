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

    func run() throws {
        try runReportingErrors {
            let module = try loadModule(path: file)
            let function = try selectFunction(module, named: self.function, path: file)
            let values = try inputValues(for: function, file: inputs, randomSeed: seed, scale: scale)
            let check = GradientCheck(
                maxElementsPerTensor: maxElements,
                extraGradientInputs: withRespectTo.map { $0.split(separator: ",").map(String.init) } ?? [])
            let report: GradientCheck.Report
            if let gradients {
                let given = try Safetensors.read(path: gradients)
                guard let loss = given.first(where: { $0.name == "loss" }) ?? given.first else {
                    throw CommandFailure("\(gradients): error: no tensors")
                }
                report = try check.check(
                    function, inputs: values, loss: loss.tensor.floats.first ?? .nan,
                    gradients: given.filter { $0.name.hasPrefix("grad.") })
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
            if report.worstRelativeError > tolerance { throw ExitCode.failure }
        }
    }
}
