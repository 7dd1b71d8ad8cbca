import Foundation
import GranuleFrontend
import GranuleIR
import GranuleInterpreter
import GranulePasses
import GranuleSupport
import Testing

func goldenNames() -> [String] {
    let directory = packageRoot.appendingPathComponent("Tests/GranuleFrontendTests/Goldens")
    return ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
}

/// One golden case: the spec lowered and differentiated, the golden weights and batch as
/// inputs, and the expected logits, loss and gradients.
struct Golden {
    let module: Module
    let inputs: [String: Tensor]
    let expected: [String: Tensor]
    let trainable: [String]

    init(_ name: String) throws {
        let directory = packageRoot.appendingPathComponent("Tests/GranuleFrontendTests/Goldens/\(name)")
        let spec = try ModelSpec.load(path: directory.appendingPathComponent("spec.json").path)
        let lowered = try Lowering.lower(spec, generation: false)
        module = try PassManager([Autodiff(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]).run(lowered.module)
        trainable = lowered.parameters.filter(\.trainable).map(\.name)
        var inputs: [String: Tensor] = [:]
        var expected: [String: Tensor] = [:]
        for (key, tensor) in try Safetensors.read(path: directory.appendingPathComponent("golden.safetensors").path) {
            if key.hasPrefix("param:") || key.hasPrefix("input:") { inputs[String(key.dropFirst(6))] = tensor }
            if key.hasPrefix("expect:") { expected[String(key.dropFirst(7))] = tensor }
        }
        self.inputs = inputs
        self.expected = expected
    }

    /// Logits max abs error ≤ 1e-4, loss relative error ≤ 1e-5, gradients within
    /// 1e-3·max|g| + 1e-6 (the frontend issue's tolerances).
    func check(_ outputs: [(name: String, tensor: Tensor)], context: String) {
        var byName: [String: Tensor] = [:]
        for (name, tensor) in outputs { byName[name] = tensor }
        if let logits = byName["logits"]?.floats, let reference = expected["logits"]?.floats {
            let error = zip(logits, reference).map { Swift.abs($0 - $1) }.max() ?? .infinity
            #expect(error <= 1e-4, "\(context): logits max abs error \(error)")
        } else {
            Issue.record("\(context): no logits")
        }
        if let loss = byName["loss"]?.floats.first, let reference = expected["loss"]?.floats.first {
            #expect(Swift.abs(loss - reference) <= 1e-5 * Swift.abs(reference), "\(context): loss \(loss) vs \(reference)")
        }
        for parameter in trainable {
            guard let actual = byName["grad.\(parameter)"]?.floats, let reference = expected["grad.\(parameter)"]?.floats else {
                Issue.record("\(context): missing gradient of \(parameter)")
                continue
            }
            let scale = reference.map { Swift.abs($0) }.max() ?? 0
            let error = zip(actual, reference).map { Swift.abs($0 - $1) }.max() ?? .infinity
            #expect(error <= 1e-3 * scale + 1e-6, "\(context): grad.\(parameter) max error \(error) at scale \(scale)")
        }
    }
}
