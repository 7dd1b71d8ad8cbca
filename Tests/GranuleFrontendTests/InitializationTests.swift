import Foundation
import GranuleFrontend
import GranuleIR
import GranuleInterpreter
import Testing

/// `Initialization.weights` and the `granule init` path (spec → parameters → base checkpoint →
/// weights → file), on tiny specs written to a temporary directory.
@Suite struct InitializationTests {
    // MARK: helpers

    /// A spec over `config` in `directory`, optionally with `resize_vocab`.
    static func spec(_ directory: SpecDirectory, config: String = SpecDirectory.tinyBart, pet: String, resizeVocab: Int? = nil, name: String = "spec.json") throws -> (spec: ModelSpec, path: String) {
        _ = try directory.write("config.json", config)
        var text = SpecDirectory.spec(pet: pet)
        if let rows = resizeVocab {
            text = text.replacingOccurrences(of: #"{"backbone": "config.json","#, with: #"{"backbone": "config.json", "resize_vocab": \#(rows),"#)
        }
        let path = try directory.write(name, text)
        return (try ModelSpec.load(path: path), path)
    }

    static func byName(_ tensors: [(name: String, tensor: Tensor)]) -> [String: Tensor] {
        Dictionary(tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { first, _ in first })
    }

    /// What `granule init SPEC [--from BASE] -o OUT` does, step by step, reading the result back.
    static func initThroughFiles(spec path: String, seed: UInt64, from base: String?, output: String) throws -> (tensors: [String: Tensor], report: Initialization.Report) {
        let model = try ModelSpec.load(path: path)
        let parameters = try Lowering.parameters(model)
        let baseTensors = try base.map { path throws(Diagnostic) in try Safetensors.read(path: path) }
        let (tensors, report) = try Initialization.weights(for: parameters, seed: seed, base: baseTensors, basePath: base ?? "")
        try Safetensors.write(tensors, to: output, metadata: ["format": "pt", "granule_spec": path])
        return (byName(try Safetensors.read(path: output)), report)
    }

    /// A backbone-only checkpoint made from a random init of `parameters` (origin == .backbone,
    /// including the `final_logits_bias` buffer), names optionally rewritten.
    static func backboneCheckpoint(_ parameters: [ModelParameter], seed: UInt64, rename: (String) -> String = { $0 }) throws -> [(name: String, tensor: Tensor)] {
        let backbone = Set(parameters.filter { $0.origin == .backbone }.map(\.name))
        let (tensors, _) = try Initialization.weights(for: parameters, seed: seed)
        return tensors.filter { backbone.contains($0.name) }.map { (rename($0.name), $0.tensor) }
    }

    static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
    static func std(_ values: [Double]) -> Double {
        let m = mean(values)
        return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)).squareRoot()
    }

    static let t5Large = #"{"method": "vl-pet", "granularity": "large", "r": 4, "heads": 2, "gate_r": 2, "value_r": 2, "scale": 0.3}"#

    // MARK: (a) fresh random initialisation

    @Test("a fresh init has every parameter, with its shape, drawn from its initializer", arguments: loweringCases)
    func freshInitCoversEveryParameter(_ testCase: LoweringCase) throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let (spec, _) = try Self.spec(directory, config: testCase.config, pet: testCase.pet)
        let parameters = try Lowering.parameters(spec)
        let (tensors, report) = try Initialization.weights(for: parameters, seed: 11)
        #expect(tensors.map(\.name) == parameters.map(\.name))
        #expect(report.initialized == parameters.count && report.loaded == 0 && report.resized.isEmpty && report.unused.isEmpty)
        for (parameter, (_, tensor)) in zip(parameters, tensors) {
            #expect(tensor.type == TensorType(.f32, parameter.shape), "\(parameter.name): \(tensor.type)")
            #expect(tensor.inconsistency == nil)
            let values = tensor.floats
            let distinct = Set(values).count
            switch parameter.initializer {
            case .zeros: #expect(values.allSatisfy { $0 == 0 }, "\(parameter.name) not zero")
            case .ones: #expect(values.allSatisfy { $0 == 1 }, "\(parameter.name) not one")
            case .uniform(let bound):
                #expect(values.allSatisfy { Swift.abs($0) <= bound }, "\(parameter.name) outside ±\(bound)")
                #expect(values.count < 2 || distinct > 1, "\(parameter.name) constant")
            case .normal:
                #expect(values.allSatisfy { $0.isFinite })
                #expect(values.count < 2 || distinct > 1, "\(parameter.name) constant")
            }
        }
    }

    @Test("the same seed gives the same weights, another seed other random weights")
    func deterministicPerSeed() throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        for config in [SpecDirectory.tinyBart, SpecDirectory.tinyT5] {
            let (spec, _) = try Self.spec(directory, config: config, pet: Self.t5Large)
            let parameters = try Lowering.parameters(spec)
            let first = try Initialization.weights(for: parameters, seed: 3).tensors
            let again = try Initialization.weights(for: parameters, seed: 3).tensors
            let other = try Initialization.weights(for: parameters, seed: 4).tensors
            #expect(first.map(\.tensor) == again.map(\.tensor))
            for (index, parameter) in parameters.enumerated() {
                switch parameter.initializer {
                case .normal, .uniform: #expect(first[index].tensor != other[index].tensor, "\(parameter.name) equal across seeds")
                case .zeros, .ones: #expect(first[index].tensor == other[index].tensor)
                }
            }
        }
    }

    @Test("T5 zero-init: up-projections, gate up-projections, z and value-adapter up-samplers start at 0")
    func t5ZeroInit() throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let granularities = [
            ("large", #""gate_r": 2,"#, "gating_large_x_up"), ("middlex", "", "gating_middle_xy_add"),
            ("middley", "", "gating_middle_ia3_add"), ("small", "", "gating_small_xy_cat"),
        ]
        for (granularity, extra, gate) in granularities {
            for zeroInit in [true, false] {
                let pet = #"{"method": "vl-pet", "granularity": "\#(granularity)", "r": 4, "heads": 2, \#(extra) "value_r": 2, "scale": 0.3, "zero_init": \#(zeroInit)}"#
                let (spec, _) = try Self.spec(directory, config: SpecDirectory.tinyT5, pet: pet)
                let weights = Self.byName(try Initialization.weights(for: try Lowering.parameters(spec), seed: 5).tensors)
                let zeroed = weights.filter { name, _ in
                    name.contains("adapter_multihead_up") || name.contains(gate) || (name.contains("attn_value_parallel_adapter") && name.contains("up_sampler"))
                }
                // ΔH up (w, b) ×2 sub-layers ×1 block, the gate (1 or 2 tensors) ×2, the value adapter's up (w, b).
                #expect(zeroed.count == 4 + 2 * (granularity == "middley" ? 1 : 2) + 2, "\(granularity): \(zeroed.keys.sorted())")
                for (name, tensor) in zeroed {
                    #expect(tensor.floats.allSatisfy { $0 == 0 } == zeroInit, "\(granularity) zero_init \(zeroInit): \(name)")
                }
                // Down projections are PyTorch's default U(±1/√fan_in) either way.
                let down = try #require(weights["encoder.block.0.layer.0.attn_adapter_multihead_down.weight"]).floats
                #expect(down.allSatisfy { Swift.abs($0) <= 1 / 8.0.squareRoot() } && Set(down).count > 1)
            }
        }
    }

    @Test("norm weights start at 1; BART biases at 0; T5 linears are U(±1/√fan_in)")
    func normsAndBiases() throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        for config in [SpecDirectory.tinyBart, SpecDirectory.tinyT5] {
            let (spec, _) = try Self.spec(directory, config: config, pet: Self.t5Large)
            let weights = Self.byName(try Initialization.weights(for: try Lowering.parameters(spec), seed: 6).tensors)
            let norms = weights.filter { name, _ in
                (name.contains("layer_norm") || name.contains("layernorm") || name.hasSuffix("embedding.1.weight")) && name.hasSuffix(".weight")
            }
            #expect(norms.count == 9)
            for (name, tensor) in norms { #expect(tensor.floats.allSatisfy { $0 == 1 }, "\(name)") }
            if config == SpecDirectory.tinyBart {
                let biases = weights.filter { $0.key.hasSuffix("bias") }
                #expect(biases.count > 20)
                for (name, tensor) in biases { #expect(tensor.floats.allSatisfy { $0 == 0 }, "\(name)") }
            } else {
                // The visual projection Linear(6 → 8): weight and bias U(±1/√6), not zero.
                for name in ["encoder.visual_embedding.feat_embedding.0.weight", "encoder.visual_embedding.feat_embedding.0.bias"] {
                    let values = try #require(weights[name]).floats
                    #expect(values.allSatisfy { Swift.abs($0) <= 1 / 6.0.squareRoot() } && Set(values).count > 1, "\(name)")
                }
            }
        }
    }

    /// Statistics on a medium BART (~0.3 M values): the pooled N(0, 0.02) weights and the
    /// embedding alone have mean ≈ 0 and standard deviation within 2 % of 0.02.
    @Test("BART linears and embeddings are N(0, 0.02)")
    func bartNormalStatistics() throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let config = """
            {"model_type": "bart", "d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
             "encoder_ffn_dim": 256, "vocab_size": 512, "max_position_embeddings": 64}
            """
        let (spec, _) = try Self.spec(directory, config: config, pet: #"{"method": "vl-pet", "granularity": "large", "r": 16, "heads": 4, "gate_r": 16, "value_r": 16}"#)
        let parameters = try Lowering.parameters(spec)
        let weights = try Initialization.weights(for: parameters, seed: 9).tensors
        var pooled: [Double] = []
        for (parameter, (name, tensor)) in zip(parameters, weights) {
            let isNorm = name.contains("layer_norm") || name.contains("layernorm") || name.hasSuffix("embedding.1.weight")
            guard name.hasSuffix("weight"), !isNorm else { continue }
            #expect(parameter.initializer == .normal(std: 0.02), "\(name): \(parameter.initializer)")
            pooled += tensor.floats
        }
        #expect(pooled.count > 250_000)
        #expect(Swift.abs(Self.mean(pooled)) < 2e-4)
        #expect(Swift.abs(Self.std(pooled) / 0.02 - 1) < 0.02)
        let embedding = try #require(Self.byName(weights)["model.shared.weight"]).floats
        #expect(Swift.abs(Self.mean(embedding)) < 1e-3)
        #expect(Swift.abs(Self.std(embedding) / 0.02 - 1) < 0.02)
        // Roughly Gaussian: ~68.3 % within one standard deviation.
        let inside = Double(pooled.filter { Swift.abs($0) < 0.02 }.count) / Double(pooled.count)
        #expect(Swift.abs(inside - 0.6827) < 0.01)
    }

    /// The bundled real-size specs declare the spec's initialisers (no values are sampled).
    @Test("bart-base and t5-base VL-PET-large declare the initialisers of spec 1.6")
    func realSizeSpecsDeclareSpecInitializers() throws {
        let bart = try Lowering.parameters(try ModelSpec.load(path: examplePath("examples/specs/bart-base-vlpet-large.json")))
        for parameter in bart {
            let name = parameter.name
            let isNorm = name.contains("layer_norm") || name.contains("layernorm") || name.hasSuffix("embedding.1.weight")
            let expected: ModelParameter.Initializer = isNorm && name.hasSuffix("weight") ? .ones : name.hasSuffix("bias") ? .zeros : .normal(std: 0.02)
            #expect(parameter.initializer == expected, "\(name): \(parameter.initializer)")
        }
        let t5 = try Lowering.parameters(try ModelSpec.load(path: examplePath("examples/specs/t5-base-vlpet-large.json")))
        let byName = Dictionary(t5.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let prefix = "encoder.block.3.layer.1."
        #expect(byName[prefix + "ff_adapter_multihead_down.weight"]?.initializer == .uniform(bound: 1 / 768.0.squareRoot()))
        #expect(byName[prefix + "ff_adapter_multihead_down.bias"]?.initializer == .uniform(bound: 1 / 768.0.squareRoot()))
        for suffix in ["ff_adapter_multihead_up.weight", "ff_adapter_multihead_up.bias", "encoder_ff_adapter_gating_large_x_up.weight", "encoder_ff_adapter_gating_large_x_up.bias"] {
            #expect(byName[prefix + suffix]?.initializer == .zeros, "\(suffix)")
        }
        #expect(byName[prefix + "encoder_ff_adapter_gating_large_x_down.weight"]?.initializer == .uniform(bound: 1 / 768.0.squareRoot()))
        #expect(byName["decoder.block.5.layer.1.EncDecAttention.attn_value_parallel_adapter.adapters.shared.up_sampler.weight"]?.initializer == .zeros)
        #expect(byName["shared.weight"]?.initializer == .normal(std: 1))
        #expect(byName["encoder.visual_embedding.img_order_embedding.weight"]?.initializer == .normal(std: 1))
        #expect(byName["encoder.visual_embedding.feat_embedding.0.weight"]?.initializer == .uniform(bound: 1 / 2048.0.squareRoot()))
        #expect(byName["encoder.visual_embedding.feat_embedding.1.weight"]?.initializer == .ones)
        #expect(byName["encoder.block.0.layer.1.layer_norm.weight"]?.initializer == .ones)
    }

    // MARK: (b) --from a base checkpoint

    @Test("--from: backbone values kept exactly, PET and visual tensors initialised as without a base", arguments: ["bart", "t5"])
    func baseBackboneIsKept(_ family: String) throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let (spec, specPath) = try Self.spec(directory, config: family == "bart" ? SpecDirectory.tinyBart : SpecDirectory.tinyT5, pet: Self.t5Large)
        let parameters = try Lowering.parameters(spec)
        let base = try Self.backboneCheckpoint(parameters, seed: 1)
        let basePath = directory.url.appendingPathComponent("base.safetensors").path
        try Safetensors.write(base, to: basePath)

        let (result, report) = try Self.initThroughFiles(spec: specPath, seed: 2, from: basePath, output: directory.url.appendingPathComponent("full.safetensors").path)
        let fresh = Self.byName(try Initialization.weights(for: parameters, seed: 2).tensors)
        let baseByName = Self.byName(base)
        #expect(Set(result.keys) == Set(parameters.map(\.name)))
        for parameter in parameters {
            let expected = parameter.origin == .backbone ? baseByName[parameter.name] : fresh[parameter.name]
            #expect(result[parameter.name] == expected, "\(parameter.name) (\(parameter.origin))")
        }
        let backboneCount = parameters.filter { $0.origin == .backbone }.count
        #expect(report.loaded == backboneCount && report.initialized == parameters.count - backboneCount)
        #expect(report.resized.isEmpty && report.unused.isEmpty)
        // Sanity: the base really differs from a seed-2 init, so "kept" is not an accident.
        #expect(baseByName.contains { name, tensor in fresh[name] != tensor })
    }

    @Test("--from: BART base names without the 'model.' prefix load too (Hugging Face bart-base)")
    func baseWithoutModelPrefix() throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let (spec, specPath) = try Self.spec(directory, pet: Self.t5Large)
        let parameters = try Lowering.parameters(spec)
        let base = try Self.backboneCheckpoint(parameters, seed: 1) { $0.hasPrefix("model.") ? String($0.dropFirst(6)) : $0 }
        #expect(base.contains { $0.name == "shared.weight" } && !base.contains { $0.name.hasPrefix("model.") })
        let basePath = directory.url.appendingPathComponent("bare.safetensors").path
        try Safetensors.write(base, to: basePath)
        let (result, report) = try Self.initThroughFiles(spec: specPath, seed: 2, from: basePath, output: directory.url.appendingPathComponent("full.safetensors").path)
        let expected = Self.byName(try Self.backboneCheckpoint(parameters, seed: 1))
        for (name, tensor) in expected { #expect(result[name] == tensor, "\(name)") }
        #expect(report.loaded == expected.count && report.unused.isEmpty)
    }

    /// Hugging Face's safetensors files store tied tensors once, sometimes under an embed_tokens
    /// name only (facebook/bart-large-cnn keeps just `model.decoder.embed_tokens.weight`).
    @Test("--from: the token embedding loads from a tied embed_tokens copy", arguments: [
        ("bart", "model.decoder.embed_tokens.weight"), ("bart", "encoder.embed_tokens.weight"), ("t5", "encoder.embed_tokens.weight"),
    ])
    func sharedEmbeddingFromTiedCopy(_ family: String, _ alias: String) throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let (spec, specPath) = try Self.spec(directory, config: family == "bart" ? SpecDirectory.tinyBart : SpecDirectory.tinyT5, pet: Self.t5Large)
        let parameters = try Lowering.parameters(spec)
        let shared = family == "bart" ? "model.shared.weight" : "shared.weight"
        let base = try Self.backboneCheckpoint(parameters, seed: 1) { $0 == shared ? alias : $0 }
        let basePath = directory.url.appendingPathComponent("base.safetensors").path
        try Safetensors.write(base, to: basePath)
        let (result, report) = try Self.initThroughFiles(spec: specPath, seed: 2, from: basePath, output: directory.url.appendingPathComponent("full.safetensors").path)
        #expect(result[shared] == Self.byName(base)[alias])
        #expect(report.unused.isEmpty && report.loaded == base.count)
    }

    @Test("--from: a base vocabulary smaller than resize_vocab keeps its rows and initialises the new ones")
    func resizedVocabulary() throws {
        for config in [SpecDirectory.tinyBart, SpecDirectory.tinyT5v11] {
            let directory = try SpecDirectory()
            defer { directory.remove() }
            let pet = #"{"method": "vl-pet", "granularity": "middley", "r": 4, "value_r": 2}"#
            let (small, _) = try Self.spec(directory, config: config, pet: pet, name: "small.json")
            let (large, largePath) = try Self.spec(directory, config: config, pet: pet, resizeVocab: 24)
            #expect(small.backbone.vocabSize == 20 && large.backbone.vocabSize == 24 && large.checkpointVocabSize == 20)
            let base = try Self.backboneCheckpoint(try Lowering.parameters(small), seed: 1)
            let basePath = directory.url.appendingPathComponent("base.safetensors").path
            try Safetensors.write(base, to: basePath)

            let (result, report) = try Self.initThroughFiles(spec: largePath, seed: 2, from: basePath, output: directory.url.appendingPathComponent("full.safetensors").path)
            let fresh = Self.byName(try Initialization.weights(for: try Lowering.parameters(large), seed: 2).tensors)
            let baseByName = Self.byName(base)
            let isBart = config == SpecDirectory.tinyBart
            let resizedNames = isBart ? ["model.shared.weight", "final_logits_bias"] : ["shared.weight", "lm_head.weight"]
            #expect(report.resized.count == 2)
            for name in resizedNames {
                #expect(report.resized.contains { $0.hasPrefix(name + " ") }, "\(report.resized)")
                let old = try #require(baseByName[name]).floats
                let new = try #require(result[name]).floats
                let initial = try #require(fresh[name]).floats
                #expect(new.count == old.count / 20 * 24)
                // Embeddings [V, 8] keep rows 0..<20; final_logits_bias [1, V] its first 20 entries.
                #expect(Array(new[..<old.count]) == old, "\(name): base rows changed")
                #expect(Array(new[old.count...]) == Array(initial[old.count...]), "\(name): new rows not initialised")
            }
            if isBart {
                #expect(try #require(result["final_logits_bias"]).floats[20...].allSatisfy { $0 == 0 })
                let newRows = try #require(result["model.shared.weight"]).floats[(20 * 8)...]
                #expect(Set(newRows).count > 1 && newRows.allSatisfy { Swift.abs($0) < 0.2 })
            }
            // Everything else of the backbone is loaded as is.
            for (name, tensor) in baseByName where !resizedNames.contains(name) { #expect(result[name] == tensor, "\(name)") }
        }
    }

    // MARK: (c) errors name the file and the tensor

    func loadError(_ edit: (inout [(name: String, tensor: Tensor)]) -> Void) throws -> String {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let (spec, _) = try Self.spec(directory, pet: Self.t5Large)
        let parameters = try Lowering.parameters(spec)
        var base = try Self.backboneCheckpoint(parameters, seed: 1)
        edit(&base)
        let path = directory.url.appendingPathComponent("base.safetensors").path
        try Safetensors.write(base, to: path)
        do {
            _ = try Initialization.weights(for: parameters, seed: 2, base: try Safetensors.read(path: path), basePath: path)
            return "no error"
        } catch {
            return error.description.replacingOccurrences(of: directory.url.path + "/", with: "")
        }
    }

    static func replace(_ name: String, with tensor: Tensor) -> (inout [(name: String, tensor: Tensor)]) -> Void {
        { base in
            let index = base.firstIndex { $0.name == name }!
            base[index].tensor = tensor
        }
    }

    static let fc1 = "model.encoder.layers.0.fc1.weight"

    @Test func missingBackboneTensor() throws {
        let message = try loadError { $0.removeAll { $0.name == Self.fc1 } }
        #expect(message == "base.safetensors: error: missing backbone tensor '\(Self.fc1)' (expected f32[12, 8]); is this checkpoint for the spec's backbone?")
    }

    @Test func wrongShape() throws {
        let message = try loadError(Self.replace(Self.fc1, with: .zeros(TensorType(.f32, [12, 9]))))
        #expect(message == "base.safetensors: error: tensor '\(Self.fc1)' has shape [12, 9] but the spec's model needs [12, 8]")
    }

    @Test func nonFiniteBaseValue() throws {
        var values = [Double](repeating: 0.5, count: 96)
        values[7] = .nan
        let message = try loadError(Self.replace(Self.fc1, with: Tensor(TensorType(.f32, [12, 8]), floats: values)))
        #expect(message == "base.safetensors: error: tensor '\(Self.fc1)' holds NaN at element 7")
    }

    /// Only the vocabulary axis may be shorter in the base (a checkpoint before `resize_vocab`):
    /// an FFN with fewer rows, an embedding with fewer columns or more rows is a different backbone.
    @Test func shorterAxisOutsideTheVocabularyIsAnError() throws {
        let cases: [(String, [Int], [Int])] = [
            (Self.fc1, [10, 8], [12, 8]), ("model.encoder.layers.0.fc1.bias", [10], [12]),
            ("model.shared.weight", [20, 6], [20, 8]), ("model.shared.weight", [22, 8], [20, 8]),
            ("final_logits_bias", [1, 22], [1, 20]),
        ]
        for (name, stored, needed) in cases {
            let message = try loadError(Self.replace(name, with: .zeros(TensorType(.f32, stored))))
            #expect(message == "base.safetensors: error: tensor '\(name)' has shape \(stored) but the spec's model needs \(needed)")
        }
    }

    @Test func nonFloatTensor() throws {
        let message = try loadError(Self.replace(Self.fc1, with: .zeros(TensorType(.i64, [12, 8]))))
        #expect(message == "base.safetensors: error: tensor '\(Self.fc1)' is i64[12,8], expected float f32[12,8]")
    }

    @Test func doubleBaseTensorsLoad() throws {
        // f64 tensors are floats too (rounded to f32); F16/BF16 files widen to f32 when read.
        let message = try loadError(Self.replace(Self.fc1, with: Tensor(TensorType(.f64, [12, 8]), floats: (0..<96).map { Double($0) / 3 })))
        #expect(message == "no error")
    }

    @Test func truncatedOrCorruptFile() throws {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        let (spec, _) = try Self.spec(directory, pet: Self.t5Large)
        let base = try Self.backboneCheckpoint(try Lowering.parameters(spec), seed: 1)
        let bytes = try Safetensors.encode(base)
        let path = directory.url.appendingPathComponent("base.safetensors").path
        func readError(_ data: [UInt8]) throws -> String {
            try Data(data).write(to: URL(fileURLWithPath: path))
            do {
                _ = try Safetensors.read(path: path)
                return "no error"
            } catch {
                return error.description.replacingOccurrences(of: directory.url.path + "/", with: "")
            }
        }
        #expect(try readError(bytes) == "no error")

        // Cut inside the last tensor's data: that tensor's offsets run past the end.
        let last = try #require(base.last)
        let truncated = try readError(Array(bytes.dropLast(10)))
        #expect(truncated.hasPrefix("base.safetensors: error: tensor '\(last.name)': data_offsets ["), "\(truncated)")
        #expect(truncated.contains("run past the end of the data buffer"))

        // A corrupt dtype in the header names its tensor.
        let header = String(decoding: bytes[8..<min(bytes.count, 400)], as: UTF8.self)
        let firstName = try #require(header.split(separator: "\"").dropFirst().first.map(String.init))
        let dtype = try #require(bytes.firstRange(of: Array(#""F32""#.utf8)))
        var corrupt = bytes
        corrupt.replaceSubrange(dtype, with: Array(#""F99""#.utf8))
        #expect(try readError(corrupt) == "base.safetensors: error: tensor '\(firstName)': unsupported dtype 'F99' (supported: F32, F64, I32, I64, BOOL, F16, BF16)")

        // Garbage in the header and a file cut inside its header name the file.
        var garbage = bytes
        garbage[9] = UInt8(ascii: "}")
        #expect(try readError(garbage).hasPrefix("base.safetensors: error: invalid JSON header at byte"))
        #expect(try readError(Array(bytes.prefix(20))).hasPrefix("base.safetensors: error: header length"))
    }
}
