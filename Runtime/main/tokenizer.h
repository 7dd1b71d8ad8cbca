/*
 * tokenizer.h: token ids back to text (detokenisation) from a backbone's vocabulary files, so
 * that generated answers and captions are strings:
 *
 *  - `vocab.json` (BART / GPT-2 byte-level BPE): piece → id; pieces spell bytes in GPT-2's
 *    bytes-to-unicode alphabet ("Ġ" is a space);
 *  - `tokenizer.json` (Hugging Face tokenizers): a BPE model with a ByteLevel decoder as above, or
 *    a Unigram model (SentencePiece, T5) whose pieces use "▁" for spaces; `added_tokens` count too;
 *  - `spiece.model` (SentencePiece protobuf, T5): the pieces and their types.
 *
 * Decoding follows `tokenizer.decode(ids, skip_special_tokens=True)` of transformers 4.2.1:
 * special tokens are dropped, byte-level text is turned back into bytes (SentencePiece: "▁" into
 * spaces, the leading space removed, <0xNN> byte pieces into bytes), then
 * `clean_up_tokenization_spaces` (" ." → ".", " n't" → "n't", ...). Ids outside the vocabulary
 * decode to nothing (the resized embedding's extra rows have no text); `detokenizer_has_piece`
 * lets a caller count them and say so.
 */
#ifndef GRANULE_TOKENIZER_H
#define GRANULE_TOKENIZER_H

#include "granule_runtime.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct detokenizer detokenizer;

/** Loads vocab.json, tokenizer.json or spiece.model (told apart by content); errors name the file. */
detokenizer *detokenizer_load(const char *path, gr_error *err);
void detokenizer_free(detokenizer *d);

/** Number of ids with a piece (the largest id + 1). */
int64_t detokenizer_size(const detokenizer *d);
/** The id of `piece` exactly as the vocabulary spells it, or -1. */
int64_t detokenizer_find(const detokenizer *d, const char *piece);
/** The id whose piece decodes to `word` alone (e.g. "true": "true" or "▁true"), or -1. */
int64_t detokenizer_find_word(const detokenizer *d, const char *word);
/** Whether `id` has a piece (special or not); ids without one decode to nothing. */
bool detokenizer_has_piece(const detokenizer *d, int64_t id);
/** Marks `id` special (dropped by decoding), e.g. the model's pad / eos / decoder start ids. */
void detokenizer_mark_special(detokenizer *d, int64_t id);

/** The text of ids[0, count) as a malloc'd NUL-terminated string (NULL when out of memory). */
char *detokenizer_decode(const detokenizer *d, const int64_t *ids, int64_t count);

#ifdef __cplusplus
}
#endif

#endif
