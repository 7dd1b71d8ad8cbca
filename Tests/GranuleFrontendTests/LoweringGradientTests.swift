import GranuleCheck
import GranuleFrontend
import GranuleIR
import GranuleInterpreter
import GranulePasses
import Testing

struct LoweringCase: CustomTestStringConvertible, Sendable {
    var name: String
    var config: String
    var pet: String
    var visual = true
    var loss = "sample_mean"
    var testDescription: String { name }
}

let vlpetLarge = #"{"method": "vl-pet", "granularity": "large", "r": 4, "heads": 2, "gate_r": 2, "value_r": 2}"#

let loweringCases: [LoweringCase] = [
    LoweringCase(name: "bart vl-pet-large", config: SpecDirectory.tinyBart, pet: vlpetLarge),
    LoweringCase(name: "bart vl-pet-middlex", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-pet", "granularity": "middlex", "r": 4, "heads": 2, "value_r": 2}"#),
    LoweringCase(name: "bart vl-pet-middley", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-pet", "granularity": "middley", "r": 4, "value_r": 2}"#),
    LoweringCase(name: "bart vl-pet-small", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-pet", "granularity": "small", "r": 4, "heads": 2, "value_r": 2}"#, loss: "score_weighted"),
    LoweringCase(name: "bart vl-pet-large text-only", config: SpecDirectory.tinyBart, pet: vlpetLarge, visual: false),
    LoweringCase(name: "bart compacter+G", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-pet", "granularity": "large", "r": 4, "gate_r": 2, "value_r": 2, "base": "compacter", "phm_n": 2}"#),
    LoweringCase(name: "bart lora+G middlex", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-pet", "granularity": "middlex", "r": 2, "base": "lora", "alpha": 1.0}"#),
    LoweringCase(name: "t5 lora+G large", config: SpecDirectory.tinyT5, pet: #"{"method": "vl-pet", "granularity": "large", "r": 2, "gate_r": 2, "base": "lora", "alpha": 1.0}"#),
    LoweringCase(name: "bart vl-adapter", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-adapter", "r": 2}"#),
    LoweringCase(name: "bart lora", config: SpecDirectory.tinyBart, pet: #"{"method": "lora", "r": 2, "alpha": 1.0}"#),
    LoweringCase(name: "bart compacter", config: SpecDirectory.tinyBart, pet: #"{"method": "compacter", "r": 2, "phm_n": 2}"#),
    LoweringCase(name: "bart bitfit", config: SpecDirectory.tinyBart, pet: #"{"method": "bitfit"}"#),
    LoweringCase(name: "bart prompt-tuning", config: SpecDirectory.tinyBart, pet: #"{"method": "prompt-tuning", "length": 2, "mid_dim": 3}"#),
    LoweringCase(name: "bart full", config: SpecDirectory.tinyBart, pet: #"{"method": "full"}"#, loss: "token_mean"),
    LoweringCase(name: "t5 vl-pet-large", config: SpecDirectory.tinyT5, pet: vlpetLarge),
    LoweringCase(name: "t5 vl-pet-small", config: SpecDirectory.tinyT5, pet: #"{"method": "vl-pet", "granularity": "small", "r": 4, "heads": 2, "value_r": 2, "scale": 0.3}"#),
    LoweringCase(name: "t5 vl-adapter text-only", config: SpecDirectory.tinyT5, pet: #"{"method": "vl-adapter", "r": 2}"#, visual: false),
    LoweringCase(name: "t5 lora", config: SpecDirectory.tinyT5, pet: #"{"method": "lora", "r": 2, "alpha": 1.0}"#),
    LoweringCase(name: "t5 v1.1 vl-pet-middley", config: SpecDirectory.tinyT5v11, pet: #"{"method": "vl-pet", "granularity": "middley", "r": 4, "value_r": 2}"#),
]

/// Every lowering differentiates into gradients for exactly its trainable parameters, and those
/// gradients match central finite differences (float64, dropout on so its placement is covered).
@Test("lowered models differentiate correctly", arguments: loweringCases)
func loweredModelGradients(_ testCase: LoweringCase) throws {
    let directory = try SpecDirectory()
    defer { directory.remove() }
    _ = try directory.write("config.json", testCase.config)
    let path = try directory.write("spec.json", SpecDirectory.spec(pet: testCase.pet, visual: testCase.visual, loss: testCase.loss, dropout: 0.1))
    let spec = try ModelSpec.load(path: path)
    let lowered = try Lowering.lower(spec)
    try Verifier.verify(lowered.module)
    let function = lowered.module.functions[0]

    let trainable = lowered.parameters.filter(\.trainable).map(\.name)
    #expect(!trainable.isEmpty)
    let gradient = try Autodiff().differentiate(function)
    #expect(gradient.results.map(\.name) == ["loss"] + trainable.map { "grad." + $0 } + ["logits"])

    var inputs = RandomInputs.make(for: function, seed: 5, scale: 0.5)
    // Valid token ids: inputs and labels inside the vocabulary, one padded position and ignored label.
    inputs["attention_mask"] = Tensor(TensorType(.i64, [2, 4]), ints: [1, 1, 1, 1, 1, 1, 1, 0])
    inputs["labels"] = Tensor(TensorType(.i64, [2, 3]), ints: [5, 9, 2, 7, 2, -100])
    let report = try GradientCheck(maxElementsPerTensor: 3).run(function, inputs: inputs)
    #expect(report.entries.count == trainable.count)
    for entry in report.entries {
        #expect(entry.relativeError <= 1e-6, "\(testCase.name): grad.\(entry.parameter) relative error \(entry.relativeError) abs \(entry.maxAbsoluteError) norm \(entry.gradientNorm)")
    }
}
