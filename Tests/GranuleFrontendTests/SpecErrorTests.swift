import GranuleFrontend
import GranuleIR
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
}
