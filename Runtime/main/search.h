/*
 * search.h: greedy and beam search over a decoder that runs one position for a fixed number of
 * rows ("slots") per call, with Hugging Face transformers 4.2.1 `generate` semantics (the
 * version VL-PET pins, spec 3.6):
 *
 *  - greedy: logits → no-repeat-n-gram ban (-inf) → first argmax; after EOS a sequence gets pad
 *    tokens; stops when every sequence has EOS or the length reaches max_length;
 *  - beam: forced EOS at length max_length − 1 (BART's adjust_logits_during_generation, when
 *    forced_eos_token_id >= 0) → log-softmax → n-gram ban → + beam score; top 2K of K·V per
 *    example (ties: lower index first); BeamSearchScorer.process / BeamHypotheses (score =
 *    sum of log-probs / length^length_penalty, length counting the start token, early_stopping)
 *    and finalize (best hypothesis; EOS appended when shorter than max_length).
 *
 * Sequences include the decoder start token (position 0) as Hugging Face returns them. Lengths
 * count tokens (max_length includes the start token). Example e's beams occupy slots
 * e·K ... e·K + K − 1; slots past examples·K are fed pad tokens and ignored.
 */
#ifndef GRANULE_SEARCH_H
#define GRANULE_SEARCH_H

#include "granule_runtime.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One decoder: `step` runs position `position` for every slot on tokens[slots] and returns the
 *  logits [slots][vocab] (valid until the next call); `reorder` then makes slot i's cache the
 *  cache slot source[i] had after that step (identity for greedy: called every step). */
typedef struct search_decoder {
    void *context;
    int64_t slots;
    int64_t vocab;
    const float *(*step)(void *context, const int64_t *tokens, int64_t position, gr_error *err);
    int (*reorder)(void *context, const int64_t *source, gr_error *err);
} search_decoder;

typedef struct search_options {
    int64_t num_beams;        /**< 1: greedy */
    int64_t max_length;       /**< tokens, the start token included (>= 2) */
    int64_t no_repeat_ngram;  /**< 0: off */
    int64_t decoder_start;
    int64_t eos;
    int64_t pad;
    int64_t forced_eos;       /**< -1: off; beam search only */
    bool early_stopping;
    double length_penalty;
} search_options;

/**
 * Generates for `examples` examples (examples · num_beams <= slots). `sequences` receives
 * examples × max_length tokens (pad after the end), `lengths` each sequence's length.
 * Returns 0, or -1 with err set (a decoder failure).
 */
int search_generate(const search_decoder *decoder, const search_options *options, int64_t examples, int64_t *sequences,
                    int64_t *lengths, gr_error *err);

/**
 * Classification by comparing token logits: feeds `prefix` (length prefix_length >= 1) to every
 * slot and writes, per slot, the index into `choices` (count choice_count) of the largest logit
 * at the last prefix position (ties: the first).
 */
int search_classify(const search_decoder *decoder, const int64_t *prefix, int64_t prefix_length, const int64_t *choices,
                    int64_t choice_count, int64_t *chosen, gr_error *err);

#ifdef __cplusplus
}
#endif

#endif
