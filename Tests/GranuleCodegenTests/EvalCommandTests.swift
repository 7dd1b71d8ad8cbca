import Foundation
import GranuleIR
import GranuleInterpreter
import GranuleSupport
import Testing

/// `MODEL eval` end to end on the tiny BART generation golden: predictions decoded with a
/// vocab.json, scored against references with each metric (VQA accuracy over raw answers, the
/// label score, exact match), and the errors a user meets first.
@Suite("EvalCommand")
struct EvalCommandTests {
    @Test("eval scores decoded predictions with every metric and names bad references")
    func evalMetrics() throws {
        let golden = GenerationGoldenTests.golden("generate-bart")
        let program = try GenerationGoldenTests.program(spec: golden.appendingPathComponent("spec.json").path, name: "eval-bart")
        defer { program.remove() }
        let weights = golden.appendingPathComponent("weights.safetensors").path
        let data = golden.appendingPathComponent("data.safetensors").path

        // A byte-level vocabulary whose pieces spell "w<id>"; <s>, <pad>, </s> are special.
        var vocab = [(key: "<s>", value: JSON.number("0")), ("<pad>", .number("1")), ("</s>", .number("2"))]
        for id in 3..<48 { vocab.append(("w\(id)", .number(String(id)))) }
        let vocabPath = program.file("vocab.json")
        try JSON.object(vocab).text.write(toFile: vocabPath, atomically: true, encoding: .utf8)

        let base = ["--weights", weights, "--data", data, "--vocab", vocabPath, "--no-repeat-ngram-size", "0"]
        let common = base + ["--max-length", "4"]
        let generated = try program.execute(["generate"] + common + ["--predictions", program.file("p.jsonl")])
        #expect(generated.status == 0, "\(generated.errors)")
        let lines = try String(contentsOfFile: program.file("p.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 6)
        var texts: [String] = []
        for line in lines {
            let json = try GenerationGoldenTests.parse(String(line))
            let tokens = try #require(GenerationGoldenTests.tokens(GenerationGoldenTests.member(json, "tokens")))
            guard case .string(let text)? = GenerationGoldenTests.member(json, "prediction") else { Issue.record("no prediction in \(line)"); return }
            #expect(text == tokens.filter { $0 > 2 }.map { "w\($0)" }.joined(), "\(line)")
            texts.append(text)
        }

        // Even examples right, odd ones wrong: exact and label 50%; VQA with 3 of 10 raw answers
        // matching scores (7·1 + 3·2/3) / 10 = 0.9 on the right ones.
        var references = ""
        for (index, text) in texts.enumerated() {
            let answer = index % 2 == 0 ? text : "nope"
            let raw = Array(repeating: answer, count: 3) + Array(repeating: "other", count: 7)
            references += JSON.object([
                ("id", .string("q\(index)")), ("answer", .string(answer)), ("label", .object([(answer, .number("1"))])),
                ("answers", .array(raw.map { .string($0) })),
            ]).text + "\n"
        }
        let referencesPath = program.file("refs.jsonl")
        try references.write(toFile: referencesPath, atomically: true, encoding: .utf8)
        for (metric, expected) in [("exact", "exact accuracy 50.00% over 6 examples"), ("label", "label accuracy 50.00% over 6 examples"),
                                   ("vqa", "vqa accuracy 45.00% over 6 examples"), ("auto", "vqa accuracy 45.00% over 6 examples")] {
            let result = try program.execute(["eval"] + common + ["--references", referencesPath, "--metric", metric, "--predictions", program.file("e.jsonl")])
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.output.contains(expected), "\(metric): \(result.output)")
        }
        let scored = try String(contentsOfFile: program.file("e.jsonl"), encoding: .utf8)
        #expect(scored.contains(#""id":"q0""#) && scored.contains(#""score":0.9"#) && scored.contains(#""score":0}"#), "\(scored)")

        // The errors a user meets first: one line each, exit 1, no predictions file written.
        let referenceLines = references.split(separator: "\n")
        try (referenceLines.prefix(2).joined(separator: "\n") + "\n").write(toFile: program.file("short.jsonl"), atomically: true, encoding: .utf8)
        try (references + referenceLines[0] + "\n").write(toFile: program.file("long.jsonl"), atomically: true, encoding: .utf8)
        try (referenceLines.prefix(2).joined(separator: "\n") + "\n\n" + referenceLines.dropFirst(2).joined(separator: "\n") + "\n")
            .write(toFile: program.file("blank.jsonl"), atomically: true, encoding: .utf8)
        let badScore = references.replacingOccurrences(of: #""label":{"nope":1}"#, with: #""label":{"nope":5}"#)
        #expect(badScore != references)
        try badScore.write(toFile: program.file("score.jsonl"), atomically: true, encoding: .utf8)
        let negative = references.replacingOccurrences(of: #""label":{"nope":1}"#, with: #""label":{"nope":-3}"#)
        try negative.write(toFile: program.file("negative.jsonl"), atomically: true, encoding: .utf8)
        // A train checkpoint (granule_train metadata) holds every trainable tensor of its program.
        try GranuleInterpreter.Safetensors.write([("unrelated", .scalar(1))], to: program.file("other.safetensors"), metadata: ["granule_train": "1"])
        // A token id outside the vocabulary is found when the data is opened, named by example and position.
        var badIds = try GranuleInterpreter.Safetensors.read(path: data)
        let idsIndex = try #require(badIds.firstIndex { $0.name == "input_ids" })
        var ids = badIds[idsIndex].tensor.ints
        ids[ids.count / 2 + 1] = 99_999
        badIds[idsIndex].tensor = Tensor(badIds[idsIndex].tensor.type, ints: ids)
        try GranuleInterpreter.Safetensors.write(badIds, to: program.file("bad-ids.safetensors"))
        let perExample = badIds[idsIndex].tensor.type.shape.dropFirst().reduce(1, *)
        // So is an attention mask that is neither 0 nor 1 (its additive bias would overflow to +inf).
        var badMask = try GranuleInterpreter.Safetensors.read(path: data)
        let maskIndex = try #require(badMask.firstIndex { $0.name == "attention_mask" })
        var mask = badMask[maskIndex].tensor.ints
        mask[perExample + 2] = 2
        badMask[maskIndex].tensor = Tensor(badMask[maskIndex].tensor.type, ints: mask)
        try GranuleInterpreter.Safetensors.write(badMask, to: program.file("bad-mask.safetensors"))
        let failures: [([String], String)] = [
            (["generate", "--weights", weights, "--data", program.file("bad-mask.safetensors"), "--max-length", "4"],
             "bad-mask.safetensors: attention_mask of example 1, position 2, is 2: expected 0 (padding) or 1"),
            (["generate", "--weights", weights, "--data", program.file("bad-ids.safetensors"), "--max-length", "4"],
             "bad-ids.safetensors: input_ids of example \((ids.count / 2 + 1) / perExample), position \((ids.count / 2 + 1) % perExample), is 99999: outside the vocabulary [0, "),
            (["eval"] + common + ["--references", program.file("score.jsonl"), "--metric", "label"],
             "score.jsonl: line 2: field 'label': the score of 'nope' must be a number in [0, 1]"),
            (["eval"] + common + ["--references", program.file("negative.jsonl"), "--metric", "label"],
             "negative.jsonl: line 2: field 'label': the score of 'nope' must be a number in [0, 1]"),
            (["generate"] + common + ["--checkpoint", program.file("other.safetensors")],
             "other.safetensors: no tensor 'model."),
            (["eval"] + common + ["--references", program.file("missing.jsonl")], "missing.jsonl: cannot open the references"),
            (["eval"] + common + ["--references", program.file("short.jsonl")], "short.jsonl: 2 references for 6 examples"),
            (["eval"] + common + ["--references", program.file("long.jsonl"), "--limit", "2"], "long.jsonl: 7 references for 6 examples"),
            (["eval"] + common + ["--references", program.file("blank.jsonl")], "blank.jsonl:3:1: empty line (one JSON object per example)"),
            (["eval", "--weights", weights, "--data", data, "--references", referencesPath], "error: eval needs --vocab to turn the generated tokens into text"),
            (["generate"] + common + ["--num-beams", "5"], "error: --num-beams 5 exceeds the program's batch size 4"),
            (["generate"] + base + ["--max-length", "10"], "error: --max-length 10: the program's decoder cache holds 8 positions"),
            (["generate"] + common + ["--classify", "yes,no"], "error: --classify: the vocabulary has no token for 'yes'"),
            (["generate"] + common + ["--classify", "5"], "error: --classify: '5' names one choice; it picks among two or more (A,B)"),
            (["generate"] + common + ["--classify", "5,6,5"], "are the same token (5)"),
        ]
        for (arguments, message) in failures {
            let result = try program.execute(arguments + ["--predictions", program.file("never.jsonl")])
            #expect(result.status == 1, "\(arguments): \(result.errors)")
            #expect(result.errors.contains(message), "\(arguments): \(result.errors)")
            #expect(!FileManager.default.fileExists(atPath: program.file("never.jsonl")))
        }
        // Where the predictions go is checked before generating, not after.
        let nowhere = try program.execute(["generate"] + common + ["--predictions", program.file("no/such/dir/p.jsonl")])
        #expect(nowhere.status == 1 && nowhere.errors.contains("error: --predictions \(program.file("no/such/dir/p.jsonl")): the directory"), "\(nowhere.errors)")
        #expect(!nowhere.output.contains("examples/s"), "\(nowhere.output)")
        let overData = try program.execute(["generate"] + common + ["--predictions", vocabPath])
        #expect(overData.status == 1 && overData.errors.contains("is the file given as --vocab"), "\(overData.errors)")
        // A vocabulary with more ids than the model belongs to another model; one with fewer is
        // allowed (VL models add tokens), and the tokens it cannot spell are counted in a warning.
        var wide = vocab
        wide.append(("w48", .number("48")))
        try JSON.object(wide).text.write(toFile: program.file("wide.json"), atomically: true, encoding: .utf8)
        let withoutVocab = ["--weights", weights, "--data", data, "--no-repeat-ngram-size", "0", "--max-length", "4"]
        let tooWide = try program.execute(["generate"] + withoutVocab + ["--vocab", program.file("wide.json")])
        #expect(tooWide.status == 1 && tooWide.errors.contains("wide.json: has pieces for ids up to 48, but the model's vocabulary is [0, 48)"),
                "\(tooWide.errors)")
        let generatedTokens = try lines.map { try #require(GenerationGoldenTests.tokens(GenerationGoldenTests.member(GenerationGoldenTests.parse(String($0)), "tokens"))) }
        let largest = try #require(generatedTokens.flatMap { $0 }.max()) // the narrow vocabulary ends below it
        try JSON.object(vocab.filter { Int($0.key.dropFirst()) ?? 0 < largest }).text
            .write(toFile: program.file("narrow.json"), atomically: true, encoding: .utf8)
        let unspelled = generatedTokens.flatMap { $0 }.filter { $0 >= largest }.count
        let narrow = try program.execute(["generate"] + withoutVocab + ["--vocab", program.file("narrow.json"), "--predictions", program.file("n.jsonl")])
        #expect(narrow.status == 0, "\(narrow.errors)")
        #expect(unspelled > 0 && narrow.errors.contains("warning: \(unspelled) generated token\(unspelled == 1 ? "" : "s") had no piece in"),
                "\(unspelled): \(narrow.errors)")
        let fullyCovered = try program.execute(["generate"] + common + ["--predictions", program.file("p2.jsonl")])
        #expect(!fullyCovered.errors.contains("warning"), "\(fullyCovered.errors)")
        let flagValue = try program.execute(["generate"] + common + ["--time=1"])
        #expect(flagValue.status == 2 && flagValue.errors.contains("error: option '--time' takes no value"), "\(flagValue.errors)")
    }
}
