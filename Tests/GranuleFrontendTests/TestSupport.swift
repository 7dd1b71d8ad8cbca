import Foundation
import GranuleFrontend
import GranuleIR

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func examplePath(_ relative: String) -> String { packageRoot.appendingPathComponent(relative).path }

/// A scratch directory holding a tiny backbone config and specs written by a test.
struct SpecDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("granule-frontend-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = url.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func remove() { try? FileManager.default.removeItem(at: url) }

    static let tinyBart = """
        {"model_type": "bart", "d_model": 8, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
         "decoder_attention_heads": 2, "encoder_ffn_dim": 12, "decoder_ffn_dim": 12, "vocab_size": 20,
         "max_position_embeddings": 16, "pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2}
        """

    static let tinyT5 = """
        {"model_type": "t5", "d_model": 8, "d_kv": 4, "d_ff": 12, "num_layers": 1, "num_decoder_layers": 1,
         "num_heads": 2, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16, "vocab_size": 20}
        """

    static let tinyT5v11 = """
        {"model_type": "t5", "d_model": 8, "d_kv": 4, "d_ff": 12, "num_layers": 1, "num_decoder_layers": 1,
         "num_heads": 2, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16, "vocab_size": 20,
         "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false}
        """

    /// A spec over `config` with the given PET JSON; visual input optional.
    static func spec(pet: String, visual: Bool = true, loss: String = "sample_mean", dropout: Double = 0) -> String {
        let visualField = visual ? #""visual": {"feature_dim": 6, "grid": [3, 3], "pool_window": [2, 2], "images": 1},"# : ""
        return """
            {"backbone": "config.json", "pet": \(pet), \(visualField)
             "batch": {"size": 2, "text_length": 4, "target_length": 3}, "loss": "\(loss)", "dropout": \(dropout)}
            """
    }
}
