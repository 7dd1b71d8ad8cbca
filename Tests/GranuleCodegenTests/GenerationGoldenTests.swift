import Foundation
import GranuleCodegen
import GranuleFrontend
import GranuleIR
import GranulePasses
import GranuleSupport
import Testing

/// Generation end to end against a Hugging Face reference: a tiny random text-only BART and T5
/// (`{"method": "full"}`, batch 4, text 8, decoder cache 8) compiled like `granule compile SPEC`
/// (the manifest carries the config's generation defaults), then `MODEL generate` per configuration
/// of `expected.json` — greedy (n-gram ban 0 / 2 / the config's 3), beam search with 2 and 3 beams
/// (early stopping on and off, length penalty 1 and 0.5, BART's forced EOS on and off, max_length 5
/// and 9) and NLVR2-style `--classify` — over 6 examples (two batches, the second padded by the
/// program). Every example's tokens must equal the reference exactly.
///
/// The reference (`tools/reference/make_generation_golden.py`) is a transcription of transformers
/// 4.2.1's greedy_search / beam_search / BeamSearchScorer / NoRepeatNGramLogitsProcessor / BART
/// forced EOS driving the Hugging Face model's full forward without a KV cache, so it also checks
/// Granule's cached @decode_step path; every decision in it has a margin ≥ 1e-3 (float32 noise is ~1e-6).
@Suite("GenerationGolden")
struct GenerationGoldenTests {
    static func golden(_ name: String) -> URL { packageRoot.appendingPathComponent("Tests/GranuleCodegenTests/Goldens/\(name)") }

    static func member(_ json: JSON, _ key: String) -> JSON? {
        guard case .object(let members) = json else { return nil }
        return members.first { $0.key == key }?.value
    }

    static func array(_ json: JSON?) -> [JSON] {
        guard case .array(let items)? = json else { return [] }
        return items
    }

    static func strings(_ json: JSON?) -> [String] {
        array(json).compactMap { if case .string(let text) = $0 { text } else { nil } }
    }

    static func tokens(_ json: JSON?) -> [Int]? {
        guard case .array(let items)? = json else { return nil }
        let values = items.compactMap(\.integerValue)
        return values.count == items.count ? values : nil
    }

    static func parse(_ text: String) throws -> JSON { try JSON.parse(Array(text.utf8)[...]) }

    /// The executable `granule compile SPEC -o DIR/NAME` writes: the spec lowered with @encode and
    /// @decode_step, the default model pipeline, the manifest's generation config from config.json.
    /// With `onlyGeneration` (the default) @loss is dropped before the pipeline, so @loss_grad and
    /// @loss_train_step are never made: the passes work per function, so @encode and @decode_step
    /// are compiled exactly as `granule compile` compiles them, in a fraction of the time (the
    /// training functions of these full-fine-tuning specs take most of it).
    static func program(spec path: String, name: String, onlyGeneration: Bool = true) throws -> CompiledExecutable {
        let spec = try ModelSpec.load(path: path)
        var module = try Lowering.lower(spec).module
        if onlyGeneration { module.functions.removeAll { !["encode", "decode_step"].contains($0.name) } }
        for pass in PassRegistry.modelPipeline.split(separator: ",") {
            module = try PassManager([try #require(PassRegistry.make(String(pass)))]).run(module)
        }
        return try CompiledExecutable(module, name: name, generation: spec.generationConfig)
    }

    @Test("MODEL generate decodes what transformers 4.2.1 decodes: greedy, beam search, n-gram bans, forced EOS, classify",
          arguments: ["generate-bart", "generate-t5"])
    func generationMatchesReference(_ name: String) throws {
        let started = Date()
        let directory = Self.golden(name)
        let expected = try Self.parse(try String(contentsOf: directory.appendingPathComponent("expected.json"), encoding: .utf8))
        let examples = try #require(Self.member(expected, "examples")?.integerValue)
        let batch = try #require(Self.member(expected, "batch_size")?.integerValue)
        let configurations = Self.array(Self.member(expected, "configurations"))
        try #require(configurations.count >= 8 && examples > batch, "\(name): a malformed expected.json")

        let program = try Self.program(spec: directory.appendingPathComponent("spec.json").path, name: name)
        defer { program.remove() }
        let compiled = Date()

        var compared = 0
        for configuration in configurations {
            guard case .string(let label)? = Self.member(configuration, "name") else {
                Issue.record("\(name): a configuration without a name")
                continue
            }
            let options = Self.strings(Self.member(configuration, "options"))
            let want = Self.array(Self.member(configuration, "tokens")).map(Self.tokens)
            try #require(want.count == examples && want.allSatisfy { $0 != nil }, "\(name) \(label): expected tokens malformed")
            let predictions = program.file("\(label).jsonl")
            let run = try program.invoke(
                ["generate", "--weights", directory.appendingPathComponent("weights.safetensors").path,
                 "--data", directory.appendingPathComponent("data.safetensors").path, "--predictions", predictions] + options)
            guard run.status == 0 else {
                Issue.record("\(name) \(label): generate \(options.joined(separator: " ")) exited \(run.status): \(run.errors)")
                continue
            }
            let lines = try String(contentsOfFile: predictions, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == examples, "\(name) \(label): \(lines.count) predictions for \(examples) examples")
            for (index, line) in lines.enumerated() where index < examples {
                let row = try Self.parse(String(line))
                #expect(Self.member(row, "index")?.integerValue == index, "\(name) \(label): line \(index + 1) is not example \(index)")
                let got = Self.tokens(Self.member(row, "tokens"))
                if label == "classify" {
                    #expect(got == want[index], "\(name) classify \(options.joined(separator: " ")), example \(index): chose \(got ?? []), the reference \(want[index]!)")
                    #expect(Self.member(row, "prediction") == .string(String(want[index]![0])), "\(name) classify example \(index): prediction")
                } else {
                    #expect(got == want[index], "\(name) \(label) (\(options.joined(separator: " "))), example \(index): tokens \(got ?? []), the reference \(want[index]!)")
                }
                compared += 1
            }
        }
        #expect(compared == examples * configurations.count)
        let finished = Date()
        print("\(name): \(configurations.count) configurations × \(examples) examples compared; compile "
              + "\(String(format: "%.1f", compiled.timeIntervalSince(started))) s, generate \(String(format: "%.2f", finished.timeIntervalSince(compiled))) s")
    }
}
