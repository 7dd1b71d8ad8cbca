import GranuleSupport

extension ModelSpec {
    /// The manifest's `generation` object (Runtime/include/granule_runtime.h, gr_generation_config):
    /// the special token ids and the `generate` defaults of the backbone's config.json, which the
    /// compiled program's `generate` and `eval` commands start from. Token ids the config lacks are -1.
    public var generationConfig: JSON {
        let config = backbone
        func number(_ value: Int) -> JSON { .number(String(value)) }
        return .object([
            ("family", .string(config.family.rawValue)),
            ("vocab_size", number(config.vocabSize)),
            ("decoder_start_token_id", number(config.decoderStartTokenId)),
            ("eos_token_id", number(config.eosTokenId)),
            ("pad_token_id", number(config.padTokenId)),
            ("bos_token_id", number(config.bosTokenId ?? -1)),
            ("forced_eos_token_id", number(config.forcedEosTokenId ?? -1)),
            ("no_repeat_ngram_size", number(config.noRepeatNgramSize)),
            ("early_stopping", .bool(config.earlyStopping)),
        ])
    }
}
