import Foundation
import GranuleFrontend
import GranuleIR
import GranuleInterpreter
import GranulePasses
import GranuleSupport
import Testing

/// The golden cases made by `tools/reference/make_goldens.py` from Hugging Face transformers
/// (and PEFT for LoRA) with PET modules written from the spec, dropout off.
let goldenCases: [String] = {
    let directory = packageRoot.appendingPathComponent("Tests/GranuleFrontendTests/Goldens")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return names.filter { !$0.hasPrefix(".") }.sorted()
}()

/// A missing golden directory must fail loudly, not leave the parameterized tests with no cases.
@Test("all 21 Hugging Face goldens are present")
func goldensArePresent() {
    #expect(goldenCases.count == 21, "found \(goldenCases.count) golden cases: \(goldenCases)")
}

/// Interpreter (float32) on the frontend's IR and its autodiff, against the goldens: logits max
/// abs error ≤ 1e-4, loss relative error ≤ 1e-5, each gradient max |Δ| ≤ 1e-3·max |g| + 1e-6 (the
/// floor covers gradients that vanish mathematically, such as attention key biases, which the
/// reference stores as float32 noise).
@Test("frontend equals Hugging Face transformers", arguments: goldenCases)
func matchesHuggingFace(_ name: String) throws {
    let directory = packageRoot.appendingPathComponent("Tests/GranuleFrontendTests/Goldens/\(name)")
    let spec = try ModelSpec.load(path: directory.appendingPathComponent("spec.json").path)
    let (tensors, metadata) = try Safetensors.readWithMetadata(path: directory.appendingPathComponent("golden.safetensors").path)
    var inputs: [String: Tensor] = [:]
    var expected: [String: Tensor] = [:]
    for (key, tensor) in tensors {
        if key.hasPrefix("param:") { inputs[String(key.dropFirst(6))] = tensor }
        if key.hasPrefix("input:") { inputs[String(key.dropFirst(6))] = tensor }
        if key.hasPrefix("expect:") { expected[String(key.dropFirst(7))] = tensor }
    }

    let lowered = try Lowering.lower(spec)
    let trainable = lowered.parameters.filter(\.trainable).map(\.name)
    let goldenTrainable = try trainableNames(metadata["trainable"] ?? "[]")
    #expect(Set(trainable) == Set(goldenTrainable), "trainable sets differ: only here \(Set(trainable).subtracting(goldenTrainable).sorted()), only in golden \(Set(goldenTrainable).subtracting(trainable).sorted())")
    let parameterNames = Set(lowered.parameters.map(\.name))
    let goldenParameters = Set(tensors.map(\.name).filter { $0.hasPrefix("param:") }.map { String($0.dropFirst(6)) })
    #expect(parameterNames == goldenParameters, "parameter names differ: only here \(parameterNames.subtracting(goldenParameters).sorted()), only in golden \(goldenParameters.subtracting(parameterNames).sorted())")

    let gradient = try Autodiff().differentiate(lowered.module.functions[0])
    let outputs = try Interpreter().run(gradient, inputs: inputs)
    var byName: [String: Tensor] = [:]
    for (name, tensor) in outputs { byName[name] = tensor }

    let logits = try #require(byName["logits"]?.floats)
    let expectedLogits = try #require(expected["logits"]?.floats)
    #expect(logits.count == expectedLogits.count)
    let logitsError = zip(logits, expectedLogits).map { Swift.abs($0 - $1) }.max() ?? .infinity
    #expect(logitsError <= 1e-4, "\(name): logits max abs error \(logitsError)")

    let loss = try #require(byName["loss"]?.floats.first)
    let expectedLoss = try #require(expected["loss"]?.floats.first)
    #expect(Swift.abs(loss - expectedLoss) <= 1e-5 * Swift.abs(expectedLoss), "\(name): loss \(loss) vs \(expectedLoss)")

    for parameter in goldenTrainable {
        guard let reference = expected["grad.\(parameter)"]?.floats, let actual = byName["grad.\(parameter)"]?.floats else {
            Issue.record("\(name): missing gradient of \(parameter)")
            continue
        }
        let scale = reference.map { Swift.abs($0) }.max() ?? 0
        let error = zip(actual, reference).map { Swift.abs($0 - $1) }.max() ?? .infinity
        #expect(error <= 1e-3 * scale + 1e-6, "\(name): grad.\(parameter) max error \(error) at scale \(scale)")
    }
}

private func trainableNames(_ json: String) throws -> [String] {
    guard case .array(let items) = try JSON.parse(ArraySlice(Array(json.utf8))) else { return [] }
    return items.compactMap { if case .string(let name) = $0 { name } else { nil } }
}

/// The same goldens through the GEMM-merging pipeline (merge-matmuls before autodiff,
/// narrow-slices after): merging must not change a value or a gradient.
@Test("merged GEMMs keep the Hugging Face values", arguments: goldenCases)
func mergedMatmulsMatchHuggingFace(_ name: String) throws {
    let directory = packageRoot.appendingPathComponent("Tests/GranuleFrontendTests/Goldens/\(name)")
    let spec = try ModelSpec.load(path: directory.appendingPathComponent("spec.json").path)
    let lowered = try Lowering.lower(spec, generation: false)
    let merged = try PassManager([
        MergeSiblingMatmuls(), Autodiff(), NarrowSlicedMatmuls(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination(),
    ]).run(lowered.module)
    let plain = try PassManager([Autodiff(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]).run(lowered.module)
    var inputs: [String: Tensor] = [:]
    for (key, tensor) in try Safetensors.read(path: directory.appendingPathComponent("golden.safetensors").path)
    where key.hasPrefix("param:") || key.hasPrefix("input:") {
        inputs[String(key.dropFirst(6))] = tensor
    }
    let mergedFunction = try #require(merged.function(named: "loss_grad"))
    let plainFunction = try #require(plain.function(named: "loss_grad"))
    let mergedGEMMs = mergedFunction.operations.filter { $0.opcode == .matmul }.count
    let plainGEMMs = plainFunction.operations.filter { $0.opcode == .matmul }.count
    #expect(mergedGEMMs < plainGEMMs, "\(name): \(mergedGEMMs) GEMMs merged vs \(plainGEMMs)")
    let expected = try Interpreter().run(plainFunction, inputs: inputs)
    let actual = try Interpreter().run(mergedFunction, inputs: inputs)
    for (lhs, rhs) in zip(expected, actual) {
        let scale = max(1e-3, lhs.tensor.floats.map { Swift.abs($0) }.max() ?? 0)
        let error = zip(lhs.tensor.floats, rhs.tensor.floats).map { Swift.abs($0 - $1) }.max() ?? 0
        #expect(lhs.name == rhs.name && error <= 1e-4 * scale, "\(name): \(lhs.name) differs by \(error)")
    }
}
