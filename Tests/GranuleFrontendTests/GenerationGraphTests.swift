import GranuleCheck
import GranuleFrontend
import GranuleIR
import GranuleInterpreter
import Testing

let generationCases: [LoweringCase] = [
    LoweringCase(name: "bart vl-pet-large", config: SpecDirectory.tinyBart, pet: vlpetLarge),
    LoweringCase(name: "bart vl-adapter text-only", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-adapter", "r": 2}"#, visual: false),
    LoweringCase(name: "bart lora", config: SpecDirectory.tinyBart, pet: #"{"method": "lora", "r": 2, "alpha": 1.0}"#),
    LoweringCase(name: "bart prompt-tuning", config: SpecDirectory.tinyBart, pet: #"{"method": "prompt-tuning", "length": 2, "mid_dim": 3}"#),
    LoweringCase(name: "bart compacter+G", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-pet", "granularity": "large", "r": 4, "gate_r": 2, "value_r": 2, "base": "compacter", "phm_n": 2}"#),
    LoweringCase(name: "bart lora+G small", config: SpecDirectory.tinyBart, pet: #"{"method": "vl-pet", "granularity": "small", "r": 2, "base": "lora", "alpha": 1.0}"#),
    LoweringCase(name: "t5 vl-pet-large", config: SpecDirectory.tinyT5, pet: vlpetLarge),
    LoweringCase(name: "t5 v1.1 vl-adapter", config: SpecDirectory.tinyT5v11, pet: #"{"method": "vl-adapter", "r": 2}"#),
]

/// `@encode` once, then `@decode_step` fed the teacher-forced tokens with its KV caches carried
/// from step to step, reproduces every position of `@loss`'s logits.
@Test("encode + cached decode steps reproduce the teacher-forced logits", arguments: generationCases)
func cachedDecodingMatchesTeacherForcing(_ testCase: LoweringCase) throws {
    let directory = try SpecDirectory()
    defer { directory.remove() }
    _ = try directory.write("config.json", testCase.config)
    let path = try directory.write("spec.json", SpecDirectory.spec(pet: testCase.pet, visual: testCase.visual, dropout: 0.1))
    let spec = try ModelSpec.load(path: path)
    let module = try Lowering.lower(spec, dropout: 0).module
    try Verifier.verify(module)
    let loss = try #require(module.function(named: "loss"))
    let encode = try #require(module.function(named: "encode"))
    let step = try #require(module.function(named: "decode_step"))

    var inputs = RandomInputs.make(for: loss, seed: 11, scale: 0.5)
    inputs["attention_mask"] = Tensor(TensorType(.i64, [2, 4]), ints: [1, 1, 1, 1, 1, 1, 0, 0])
    let labels: [Int64] = [5, 9, 2, 7, 2, -100]
    inputs["labels"] = Tensor(TensorType(.i64, [2, 3]), ints: labels)
    let interpreter = Interpreter()
    let expected = try #require(try interpreter.run(loss, inputs: inputs).first { $0.name == "logits" }?.tensor.floats)

    var state = inputs
    for (name, tensor) in try interpreter.run(encode, inputs: inputs) { state[name] = tensor }
    for parameter in step.parameters where parameter.role == .state {
        state[step.name(of: parameter.value)] = Tensor.zeros(step.type(of: parameter.value))
    }
    let vocabulary = spec.backbone.vocabSize
    let start = Int64(spec.backbone.decoderStartTokenId)
    let pad = Int64(spec.backbone.padTokenId)
    for position in 0..<3 {
        let tokens: [Int64] = (0..<2).map { row in
            position == 0 ? start : (labels[row * 3 + position - 1] == -100 ? pad : labels[row * 3 + position - 1])
        }
        state["token"] = Tensor(TensorType(.i64, [2, 1]), ints: tokens)
        state["step"] = Tensor(.scalar(.i64), ints: [Int64(position)])
        let outputs = try interpreter.run(step, inputs: state)
        let logits = outputs[0].tensor.floats
        for row in 0..<2 {
            for v in 0..<vocabulary {
                let reference = expected[(row * 3 + position) * vocabulary + v]
                #expect(Swift.abs(logits[row * vocabulary + v] - reference) <= 1e-5, "\(testCase.name): position \(position) row \(row) token \(v)")
            }
        }
        for (name, tensor) in outputs.dropFirst() { state[name] = tensor }
    }
    // A step outside the cache is an error, not a step that writes no position.
    for outside: Int64 in [3, -1] {
        state["step"] = Tensor(.scalar(.i64), ints: [outside])
        do {
            _ = try interpreter.run(step, inputs: state)
            Issue.record("\(testCase.name): step \(outside) ran")
        } catch {
            #expect(error.message.contains("index \(outside) at indices[0] is out of range [0, 3)"), "\(testCase.name): \(error.message)")
        }
    }
}
