import Foundation
import GranuleCodegen
import GranuleIR
import GranuleInterpreter
import GranulePasses
import GranuleSupport
import Testing

/// `MODEL train` end to end on a real executable: a small MLP with dropout and a cross-entropy loss,
/// differentiated and given its AdamW train step by the passes, compiled and linked with the C
/// runtime, trained on a learnable synthetic dataset.

private let mlp = """
    func @loss(%x: f32[8,4] input, %labels: i64[8] input, %dropout_seed: i64[] input, %mix: f32[4,4] frozen,
               %w1: f32[4,16] trainable, %b1.bias: f32[16] trainable, %w2: f32[16,3] trainable) -> (loss: f32[]) {
      %m = matmul %x, %mix : f32[8,4]
      %h = matmul %m, %w1 : f32[8,16]
      %hb = add %h, %b1.bias : f32[8,16]
      %a = tanh %hb : f32[8,16]
      %d = dropout %a, %dropout_seed {rate = 0.1, offset = 0} : f32[8,16]
      %logits = matmul %d, %w2 : f32[8,3]
      %loss = cross_entropy %logits, %labels {reduction = mean, ignore_index = -100} : f32[]
      return %loss
    }
    """

/// The executable and its files, in one scratch directory.
private struct Trainer {
    let executable: CompiledExecutable

    init() throws {
        let parsed = try Parser.parse(mlp, file: "mlp.tir")
        let module = try PassManager([Autodiff(), AdamW(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()])
            .run(parsed)
        executable = try CompiledExecutable(module, name: "trainer")
    }

    func file(_ name: String) -> String { executable.file(name) }

    /// Weights: a frozen identity-like mix and small random trainable layers.
    func writeWeights() throws {
        var random = SeededGenerator(seed: 1)
        func normal(_ count: Int, _ scale: Double) -> [Double] { (0..<count).map { _ in random.normal() * scale } }
        let mix = (0..<16).map { $0 % 5 == 0 ? 1.0 : 0.0 }
        try Safetensors.write(
            [
                ("mix", Tensor(TensorType(.f32, [4, 4]), floats: mix)),
                ("w1", Tensor(TensorType(.f32, [4, 16]), floats: normal(64, 0.5))),
                ("b1.bias", Tensor(TensorType(.f32, [16]), floats: Array(repeating: 0, count: 16))),
                ("w2", Tensor(TensorType(.f32, [16, 3]), floats: normal(48, 0.5))),
            ], to: file("weights.safetensors"))
    }

    /// `count` examples whose label is the argmax of x·M for a fixed M (learnable); `poison` replaces
    /// every feature (e.g. infinity).
    func writeData(_ name: String, count: Int, seed: UInt64, poison: Double? = nil) throws {
        var random = SeededGenerator(seed: seed)
        let m: [[Double]] = [[1, -1, 0.5], [-0.5, 1, 1], [1, 0.5, -1], [0, -1, 1]]
        var features: [Double] = []
        var labels: [Int64] = []
        for _ in 0..<count {
            let x = (0..<4).map { _ in Double.random(in: -1..<1, using: &random) }
            let scores = (0..<3).map { c in (0..<4).reduce(0.0) { $0 + x[$1] * m[$1][c] } }
            labels.append(Int64(scores.indices.max { scores[$0] < scores[$1] }!))
            features += x.map { poison ?? $0 }
        }
        try Safetensors.write(
            [
                ("x", Tensor(TensorType(.f32, [count, 4]), floats: features)),
                ("labels", Tensor(TensorType(.i64, [count]), ints: labels)),
            ], to: file(name))
    }

    /// `MODEL train ...` with names resolved in the scratch directory (arguments starting with "@").
    func train(_ arguments: [String]) throws -> (status: Int32, errors: String) {
        try executable.invoke(["train"] + arguments.map { $0.hasPrefix("@") ? file(String($0.dropFirst())) : $0 })
    }

    /// The "loss" fields of a JSONL log, as written (text, so equality is bit-equality).
    func losses(_ log: String) throws -> [String] {
        let text = try String(contentsOfFile: file(log), encoding: .utf8)
        return text.split(separator: "\n").map { line in
            let start = line.range(of: "\"loss\": ")!.upperBound
            return String(line[start...].prefix { $0 != "," })
        }
    }

    func bytes(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: file(name))) }
}

@Test("a compiled train step learns, resumes bit-identically, stops on NaN and checkpoints every trainable name")
func compiledTraining() throws {
    let trainer = try Trainer()
    defer { trainer.executable.remove() }
    try trainer.writeWeights()
    try trainer.writeData("train.safetensors", count: 64, seed: 2)
    let common = ["--weights", "@weights.safetensors", "--data", "@train.safetensors", "--lr", "0.03", "--seed", "9"]

    // (a) The loss falls over 30 steps.
    let learn = try trainer.train(common + ["--steps", "30", "--log", "@learn.jsonl", "--curve", "@learn.csv", "--warmup-ratio", "0.1"])
    #expect(learn.status == 0, "train: \(learn.errors)")
    let losses = try trainer.losses("learn.jsonl").map { Double($0)! }
    #expect(losses.count == 30)
    let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
    print("training: mean loss of steps 1-5 \(first), of steps 26-30 \(last)")
    #expect(last < 0.6 * first, "the loss should fall: \(losses)")
    #expect(FileManager.default.fileExists(atPath: trainer.file("learn.svg")))

    // (b) 6 steps straight = 3 steps, --resume, 3 more: the same weights, state and losses, bit for bit.
    let straight = try trainer.train(common + ["--steps", "6", "--checkpoint", "@straight.safetensors", "--log", "@straight.jsonl"])
    #expect(straight.status == 0, "straight: \(straight.errors)")
    let half = try trainer.train(
        common + ["--steps", "6", "--stop-at", "3", "--checkpoint", "@split.safetensors", "--log", "@split.jsonl"])
    #expect(half.status == 0, "first half: \(half.errors)")
    let resumed = try trainer.train(
        ["--weights", "@weights.safetensors", "--data", "@train.safetensors", "--resume", "@split.safetensors", "--checkpoint",
         "@split.safetensors", "--log", "@split.jsonl"])
    #expect(resumed.status == 0, "resumed: \(resumed.errors)")
    let straightLosses = try trainer.losses("straight.jsonl"), splitLosses = try trainer.losses("split.jsonl")
    #expect(straightLosses.count == 6 && splitLosses == straightLosses, "\(straightLosses) vs \(splitLosses)")
    #expect(try trainer.bytes("straight.safetensors") == trainer.bytes("split.safetensors"), "the checkpoints differ")

    // (d) The checkpoint: every trainable parameter under its name, the AdamW state, the position.
    let (tensors, metadata) = try Safetensors.readWithMetadata(path: trainer.file("straight.safetensors"))
    let names = Set(tensors.map(\.name))
    let expected: Set<String> = ["w1", "b1.bias", "w2", "adam.step", "adam.m.w1", "adam.m.b1.bias", "adam.m.w2", "adam.v.w1",
                                 "adam.v.b1.bias", "adam.v.w2"]
    #expect(names == expected)
    #expect(tensors.first { $0.name == "adam.step" }?.tensor.ints == [6])
    #expect(metadata["step"] == "6" && metadata["total_steps"] == "6" && metadata["function"] == "loss_train_step")
    #expect(metadata["seed"] == "9" && metadata["epoch"] == "0" && metadata["epoch_position"] == "6")
    #expect(metadata["granule_crc32"] != nil)

    // (c) An infinite feature: stop at the step, exit 1, the previous checkpoint untouched.
    // The same task name (resume checks that the tasks match), in another directory.
    try FileManager.default.createDirectory(atPath: trainer.file("poisoned"), withIntermediateDirectories: true)
    try trainer.writeData("poisoned/train.safetensors", count: 64, seed: 2, poison: .infinity)
    let good = try trainer.train(common + ["--steps", "6", "--stop-at", "2", "--checkpoint", "@good.safetensors"])
    #expect(good.status == 0, "good: \(good.errors)")
    let before = try trainer.bytes("good.safetensors")
    let poisoned = try trainer.train(
        ["--weights", "@weights.safetensors", "--data", "@poisoned/train.safetensors", "--resume", "@good.safetensors", "--checkpoint",
         "@good.safetensors", "--checkpoint-every", "1"])
    #expect(poisoned.status == 1)
    #expect(poisoned.errors.contains("error: step 3: the loss is NaN") || poisoned.errors.contains("error: step 3: the gradient norm is"),
            "\(poisoned.errors)")
    #expect(try trainer.bytes("good.safetensors") == before, "the last good checkpoint must stay as it was")
}
