import GranuleFrontend
import GranuleIR
import GranuleSupport
import Testing

/// Bad specs and configs end in one clear error naming the file and the field.
@Suite struct SpecErrorTests {
    func loadError(config: String = SpecDirectory.tinyBart, spec: String) throws -> String {
        let directory = try SpecDirectory()
        defer { directory.remove() }
        _ = try directory.write("config.json", config)
        let path = try directory.write("spec.json", spec)
        do {
            _ = try ModelSpec.load(path: path)
            return "no error"
        } catch {
            return error.description.replacingOccurrences(of: directory.url.path + "/", with: "")
        }
    }

    @Test func missingField() throws {
        let message = try loadError(spec: #"{"backbone": "config.json", "pet": {"method": "bitfit"}, "loss": "sample_mean"}"#)
        #expect(message == "spec.json: error: missing field 'batch'")
    }

    @Test func mistypedField() throws {
        let spec = SpecDirectory.spec(pet: #"{"method": "vl-pet", "granularity": "large", "r": "96", "gate_r": 4, "value_r": 4}"#)
        #expect(try loadError(spec: spec) == #"spec.json: error: field 'pet.r': expected a positive integer, got "96""#)
    }

    @Test func duplicateField() throws {
        let spec = SpecDirectory.spec(pet: #"{"method": "bitfit"}"#).replacingOccurrences(of: #""dropout": "#, with: #""dropout": 0.5, "dropout": "#)
        #expect(try loadError(spec: spec) == "spec.json: error: field 'dropout' appears more than once")
    }

    @Test func compacterFactorsAndInfiniteNumbers() throws {
        let phm = SpecDirectory.spec(pet: #"{"method": "compacter", "r": 6, "phm_n": 3}"#)
        #expect(try loadError(spec: phm) == "spec.json: error: field 'pet.phm_n': 3 does not divide d_model (8)")
        let huge = SpecDirectory.spec(pet: #"{"method": "lora", "r": 2, "alpha": 1e400}"#)
        #expect(try loadError(spec: huge) == "spec.json: error: field 'pet.alpha': expected a finite number, got 1e400")
        let heads = SpecDirectory.tinyBart.replacingOccurrences(of: #""decoder_attention_heads": 2"#, with: #""decoder_attention_heads": 4"#)
        #expect(try loadError(config: heads, spec: SpecDirectory.spec(pet: #"{"method": "bitfit"}"#))
            == "config.json: error: field 'decoder_attention_heads': 4 differs from encoder_attention_heads (2); Granule needs them equal")
    }

    @Test func unknownField() throws {
        let spec = SpecDirectory.spec(pet: #"{"method": "vl-pet", "graularity": "large", "r": 8, "gate_r": 4, "value_r": 4}"#)
        #expect(try loadError(spec: spec).hasPrefix("spec.json: error: unknown field 'pet.graularity'"))
    }

    @Test func headsMustDivideR() throws {
        let spec = SpecDirectory.spec(pet: #"{"method": "vl-pet", "granularity": "large", "r": 10, "heads": 4, "gate_r": 4, "value_r": 4}"#)
        #expect(try loadError(spec: spec) == "spec.json: error: field 'pet.r': 10 is not divisible by heads (4)")
    }

    @Test func unknownMethod() throws {
        let spec = SpecDirectory.spec(pet: #"{"method": "ia3"}"#)
        #expect(try loadError(spec: spec).hasPrefix(#"spec.json: error: field 'pet.method': expected one of "vl-pet""#))
    }

    @Test func t5RelativeBucketsNeedExactAndLogSpacedBuckets() throws {
        let spec = SpecDirectory.spec(pet: #"{"method": "bitfit"}"#)
        let fewBuckets = SpecDirectory.tinyT5.replacingOccurrences(of: #""relative_attention_num_buckets": 8"#, with: #""relative_attention_num_buckets": 2"#)
        #expect(try loadError(config: fewBuckets, spec: spec)
            == "config.json: error: field 'relative_attention_num_buckets': expected at least 4 (the encoder halves them twice), got 2")
        let shortDistance = SpecDirectory.tinyT5.replacingOccurrences(of: #""relative_attention_max_distance": 16"#, with: #""relative_attention_max_distance": 4"#)
        #expect(try loadError(config: shortDistance, spec: spec)
            == "config.json: error: field 'relative_attention_max_distance': expected more than half of relative_attention_num_buckets (8), got 4")
        let noEpsilon = SpecDirectory.tinyT5.replacingOccurrences(of: #""vocab_size": 20"#, with: #""vocab_size": 20, "layer_norm_epsilon": 0"#)
        #expect(try loadError(config: noEpsilon, spec: spec) == "config.json: error: field 'layer_norm_epsilon': expected a positive number, got 0")
    }

    @Test func unknownModelType() throws {
        let config = #"{"model_type": "gpt2", "n_embd": 8}"#
        let message = try loadError(config: config, spec: SpecDirectory.spec(pet: #"{"method": "bitfit"}"#))
        #expect(message == #"config.json: error: field 'model_type': unsupported model type "gpt2" (Granule compiles "bart" and "t5")"#)
    }

    @Test func configMissingField() throws {
        let config = #"{"model_type": "bart", "d_model": 8}"#
        let message = try loadError(config: config, spec: SpecDirectory.spec(pet: #"{"method": "bitfit"}"#))
        #expect(message == "config.json: error: missing field 'encoder_attention_heads'")
    }

    @Test func headsMustDivideModelWidth() throws {
        let config = SpecDirectory.tinyBart.replacingOccurrences(of: #""encoder_attention_heads": 2"#, with: #""encoder_attention_heads": 3"#)
            .replacingOccurrences(of: #""decoder_attention_heads": 2"#, with: #""decoder_attention_heads": 3"#)
        let message = try loadError(config: config, spec: SpecDirectory.spec(pet: #"{"method": "bitfit"}"#))
        #expect(message == "config.json: error: field 'd_model': 8 is not divisible by encoder_attention_heads 3")
    }

    @Test func generationDefaultsAreChecked() throws {
        let spec = SpecDirectory.spec(pet: #"{"method": "bitfit"}"#)
        func withField(_ field: String) -> String {
            SpecDirectory.tinyBart.replacingOccurrences(of: #""decoder_start_token_id": 2}"#, with: #""decoder_start_token_id": 2, "# + field + "}")
        }
        #expect(try loadError(config: withField(#""forced_eos_token_id": 20"#), spec: spec)
            == "config.json: error: field 'forced_eos_token_id': 20 is outside the vocabulary [0, 20)")
        #expect(try loadError(config: withField(#""no_repeat_ngram_size": -1"#), spec: spec)
            == "config.json: error: field 'no_repeat_ngram_size': expected an n-gram size >= 0, got -1")
        #expect(try loadError(config: withField(#""init_std": 0"#), spec: spec)
            == "config.json: error: field 'init_std': expected a positive number, got 0")
        let directory = try SpecDirectory()
        defer { directory.remove() }
        _ = try directory.write("config.json", withField(#""bos_token_id": 0, "forced_eos_token_id": 2, "no_repeat_ngram_size": 3, "early_stopping": true, "init_std": 0.1"#))
        let loaded = try ModelSpec.load(path: try directory.write("spec.json", spec))
        #expect(loaded.generationConfig.text
            == #"{"family":"bart","vocab_size":20,"decoder_start_token_id":2,"eos_token_id":2,"pad_token_id":1,"bos_token_id":0,"forced_eos_token_id":2,"no_repeat_ngram_size":3,"early_stopping":true}"#)
        #expect(loaded.backbone.initStd == 0.1)
    }

    @Test func syntaxErrorIsLocated() throws {
        let message = try loadError(spec: "{\n  \"backbone\": \"config.json\",\n  \"pet\": {\"method\": }\n}")
        #expect(message.hasPrefix("spec.json:3:"))
        #expect(message.contains("error:"))
    }

    @Test func missingBackboneFile() throws {
        let message = try loadError(spec: #"{"backbone": "nope.json", "pet": {"method": "bitfit"}, "batch": {"size": 1, "text_length": 2, "target_length": 2}, "loss": "sample_mean"}"#)
        #expect(message.hasPrefix("spec.json: error: field 'backbone': no config file at"))
    }

    @Test func textTooLongForPositions() throws {
        let spec = #"{"backbone": "config.json", "pet": {"method": "bitfit"}, "batch": {"size": 1, "text_length": 40, "target_length": 2}, "loss": "sample_mean"}"#
        #expect(try loadError(spec: spec).hasPrefix("spec.json: error: field 'batch.text_length': 40 tokens (+0 prompts) exceed"))
    }

    @Test func absurdBatchNamesTheFields() throws {
        let spec = #"{"backbone": "config.json", "pet": {"method": "bitfit"}, "batch": {"size": 4000000000000000000, "text_length": 4, "target_length": 2}, "loss": "sample_mean"}"#
        let message = try loadError(spec: spec)
        #expect(message.hasPrefix("spec.json: error: fields 'batch.size' and 'batch.target_length': the logits [4000000000000000000, 2, "), "\(message)")
        #expect(message.hasSuffix("would have more than 2^40 elements"), "\(message)")
        // T5's relative-position table is built when lowering: a long target is refused, not allocated.
        let long = #"{"backbone": "config.json", "pet": {"method": "bitfit"}, "batch": {"size": 1, "text_length": 4, "target_length": 400000}, "loss": "sample_mean"}"#
        let t5Message = try loadError(config: SpecDirectory.tinyT5, spec: long)
        #expect(t5Message.hasPrefix("spec.json: error: field 'batch.target_length': 400000 positions; T5's relative-position table"), "\(t5Message)")
    }
}
