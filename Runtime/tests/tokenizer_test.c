/*
 * tokenizer_test.c: detokenisation (main/tokenizer.c) from small vocab.json, tokenizer.json
 * (Unigram and byte-level BPE) and hand-made spiece.model files written into a temp directory.
 * Expected strings follow transformers 4.2.1's decode(ids, skip_special_tokens=True).
 */
#include "test.h"

#include "../main/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2 bytes_to_unicode: byte 0x20 → U+0120 "Ġ", 0x0A → U+010A "Ċ", 0xC3 → U+00C3 "Ã",
 * 0xA9 → U+00A9 "©"; SentencePiece's space is U+2581 "▁". (Split literals: "\xA0" "car", since
 * a hex escape would swallow the letters a-f.) */
#define G "\xC4\xA0"
#define NEWLINE "\xC4\x8A"
#define A_TILDE "\xC3\x83"
#define COPYRIGHT "\xC2\xA9"
#define SP "\xE2\x96\x81"
#define E_ACUTE "\xC3\xA9"
#define REPLACEMENT "\xEF\xBF\xBD"
/* the last two of the 68 remapped bytes: 0xA0 → U+0142 "ł", 0xAD → U+0143 "Ń"; "Â" is 0xC2 */
#define L_STROKE "\xC5\x82"
#define N_ACUTE "\xC5\x83"
#define A_CIRCUMFLEX "\xC3\x82"

static char directory[512];

static const char *path_of(const char *name) {
    static char path[1024]; /* test helper only */
    snprintf(path, sizeof path, "%s/%s", directory, name);
    return path;
}

static detokenizer *load_text(const char *name, const char *text, gr_error *err) {
    const char *path = path_of(name);
    write_bytes(path, text, strlen(text));
    return detokenizer_load(path, err);
}

/* Checks decode(ids) == want. */
static void check_decode(const detokenizer *d, const int64_t *ids, int64_t count, const char *want, int line) {
    char *got = detokenizer_decode(d, ids, count);
    char expression[64];
    snprintf(expression, sizeof expression, "decode at line %d", line);
    test_check_str(got, want, expression, __FILE__, line);
    free(got);
}
#define CHECK_DECODE(d, want, ...)                                                               \
    do {                                                                                         \
        const int64_t ids_[] = {__VA_ARGS__};                                                    \
        check_decode(d, ids_, (int64_t)(sizeof ids_ / sizeof ids_[0]), want, __LINE__);          \
    } while (0)

/* ---- vocab.json ------------------------------------------------------------------------------------ */

static const char vocab_json[] =
    "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"red\": 4, \"" G "red\": 5, \"" G "car\": 6, \".\": 7,\n"
    " \"" G ".\": 8, \"" G "'s\": 9, \"caf\": 10, \"" A_TILDE COPYRIGHT "\": 11, \"" NEWLINE "\": 12, \"<mask>\": 13,\n"
    " \"" G "n't\": 14, \"" G "?\": 15, \"" G ",\": 16, \"" G "!\": 17, \"" G "I\": 18, \"" G "'m\": 19, \"" G "'ve\": 20,\n"
    " \"" G "'re\": 21, \"" G "'\": 22, \"" A_TILDE "\": 23, \"" G "model\": 26, \"" A_TILDE L_STROKE "\": 27,\n"
    " \"" A_CIRCUMFLEX N_ACUTE "\": 28}\n";

static void test_vocab_json(void) {
    gr_error err = {{0}};
    detokenizer *d = load_text("vocab.json", vocab_json, &err);
    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        return;
    }
    CHECK_EQ(detokenizer_size(d), 29);
    /* special tokens are skipped, "Ġ" is a space (kept at the start), " ." → "." */
    CHECK_DECODE(d, " red car.", 0, 5, 6, 8, 2);
    CHECK_DECODE(d, "red.", 4, 7);
    CHECK_DECODE(d, "red.", 4, 8);
    CHECK_DECODE(d, "red", 13, 4, 1, 3); /* <mask>, <pad>, <unk> are special too */
    /* clean_up_tokenization_spaces */
    CHECK_DECODE(d, " red's", 5, 9);
    CHECK_DECODE(d, "redn't", 4, 14);
    CHECK_DECODE(d, " I'm", 18, 19);
    CHECK_DECODE(d, "red?,!", 4, 15, 16, 17);
    CHECK_DECODE(d, "red'red", 4, 22, 5);
    CHECK_DECODE(d, "red'vered're", 4, 20, 4, 21);
    /* bytes: "Ã©" is é, "Ċ" a newline; a lone 0xC3 byte is not UTF-8 → U+FFFD */
    CHECK_DECODE(d, "caf" E_ACUTE, 10, 11);
    CHECK_DECODE(d, "red\nred", 4, 12, 4);
    CHECK_DECODE(d, REPLACEMENT, 23);
    CHECK_DECODE(d, REPLACEMENT "red", 23, 4);
    CHECK_DECODE(d, "\xC3\xA0\xC2\xAD", 27, 28); /* bytes C3 A0 (à), C2 AD (soft hyphen) */
    /* ids without a piece (a gap, past the end, negative) decode to nothing */
    CHECK_DECODE(d, "redred", 4, 24, 25, 29, 999, -1, 4);
    char *empty = detokenizer_decode(d, NULL, 0);
    CHECK_STR_EQ(empty, "");
    free(empty);

    CHECK_EQ(detokenizer_find(d, G "red"), 5);
    CHECK_EQ(detokenizer_find(d, "red"), 4);
    CHECK_EQ(detokenizer_find(d, "<s>"), 0);
    CHECK_EQ(detokenizer_find(d, "blue"), -1);
    CHECK_EQ(detokenizer_find(d, ""), -1);
    /* byte-level: the bare piece first, then the "Ġ" one */
    CHECK_EQ(detokenizer_find_word(d, "red"), 4);
    CHECK_EQ(detokenizer_find_word(d, "car"), 6);
    CHECK_EQ(detokenizer_find_word(d, "bus"), -1);

    detokenizer_mark_special(d, 4);
    detokenizer_mark_special(d, -1);   /* ignored */
    detokenizer_mark_special(d, 1000); /* ignored */
    CHECK_DECODE(d, " red", 4, 5, 4);
    detokenizer_free(d);
    detokenizer_free(NULL);
}

/* A vocab.json is an object of piece → id, so it may well hold a piece called "model" (GPT-2's
 * vocabulary has the bare word); it must not be taken for a tokenizer.json. */
static void test_vocab_json_with_a_model_piece(void) {
    gr_error err = {{0}};
    detokenizer *d = load_text("vocab-model.json", "{\"<s>\": 0, \"model\": 1, \"" G "model\": 2, \"</s>\": 3}", &err);
    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        return;
    }
    CHECK_DECODE(d, "model model", 0, 1, 2, 3);
    detokenizer_free(d);
}

/* ---- tokenizer.json ------------------------------------------------------------------------------- */

static const char unigram_json[] =
    "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,\n"
    " \"added_tokens\": [\n"
    "  {\"id\": 0, \"content\": \"<pad>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
    "\"special\": true},\n"
    "  {\"id\": 1, \"content\": \"</s>\", \"special\": true},\n"
    "  {\"id\": 2, \"content\": \"<unk>\", \"special\": true},\n"
    "  {\"id\": 9, \"content\": \"<extra_id_0>\", \"special\": true},\n"
    "  {\"id\": 10, \"content\": \"<vis>\", \"special\": false}],\n"
    " \"normalizer\": null,\n"
    " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"add_prefix_space\": true},\n"
    " \"post_processor\": null,\n"
    " \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"add_prefix_space\": true},\n"
    " \"model\": {\"type\": \"Unigram\", \"unk_id\": 2, \"vocab\": [[\"<pad>\", 0], [\"</s>\", 0], [\"<unk>\", 0], [\"" SP
    "red\", -1], [\"" SP "car\", -2], [\"s\", -3], [\"<0x41>\", -4], [\"" SP ".\", -5], [\"" SP "'s\", -6]]}}\n";

static void test_unigram_tokenizer_json(void) {
    gr_error err = {{0}};
    detokenizer *d = load_text("tokenizer.json", unigram_json, &err);
    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        return;
    }
    CHECK_EQ(detokenizer_size(d), 11);
    /* "▁" is a space, the leading one removed; specials (flagged in added_tokens) skipped */
    CHECK_DECODE(d, "red cars", 3, 4, 5, 1);
    CHECK_DECODE(d, "red car", 0, 3, 4, 1, 0, 0);
    CHECK_DECODE(d, "red", 9, 3, 2);
    CHECK_DECODE(d, "red.", 3, 7);
    CHECK_DECODE(d, "red's", 3, 8);
    CHECK_DECODE(d, "s red", 5, 3);
    /* byte pieces <0xNN> are bytes */
    CHECK_DECODE(d, "redA", 3, 6);
    CHECK_DECODE(d, "A red", 6, 3);
    /* a non-special added token is its text */
    CHECK_DECODE(d, "red<vis> car", 3, 10, 4);
    CHECK_DECODE(d, "red", 3, 11, 99, -5);
    CHECK_DECODE(d, "", 0, 1);

    CHECK_EQ(detokenizer_find(d, SP "red"), 3);
    CHECK_EQ(detokenizer_find(d, "red"), -1);
    CHECK_EQ(detokenizer_find(d, "<vis>"), 10);
    /* SentencePiece: the "▁" piece first, then the bare one */
    CHECK_EQ(detokenizer_find_word(d, "red"), 3);
    CHECK_EQ(detokenizer_find_word(d, "car"), 4);
    CHECK_EQ(detokenizer_find_word(d, "s"), 5);
    CHECK_EQ(detokenizer_find_word(d, "xyz"), -1);

    detokenizer_mark_special(d, 3);
    CHECK_DECODE(d, "car", 3, 4);
    detokenizer_free(d);
}

static const char bpe_json[] =
    "{\"version\": \"1.0\",\n"
    " \"added_tokens\": [{\"id\": 0, \"content\": \"<s>\", \"special\": true}, {\"id\": 1, \"content\": \"<pad>\", \"special\": true},\n"
    "  {\"id\": 2, \"content\": \"</s>\", \"special\": true}, {\"id\": 3, \"content\": \"<unk>\", \"special\": true},\n"
    "  {\"id\": 8, \"content\": \"<vis_0>\", \"special\": false}],\n"
    " \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true},\n"
    " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"vocab\": {\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, "
    "\"<unk>\": 3, \"" G "red\": 4, \"" G "car\": 5, \"" G ".\": 6, \"" A_TILDE COPYRIGHT "\": 7},\n"
    "  \"merges\": [\"" G " r\", \"" G "r ed\"]}}\n";

static void test_bpe_tokenizer_json(void) {
    gr_error err = {{0}};
    detokenizer *d = load_text("bpe-tokenizer.json", bpe_json, &err);
    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        return;
    }
    CHECK_EQ(detokenizer_size(d), 9);
    CHECK_DECODE(d, " red car.", 0, 4, 5, 6, 2);
    CHECK_DECODE(d, " red<vis_0> car", 4, 8, 5);
    CHECK_DECODE(d, E_ACUTE, 1, 7, 3);
    CHECK_EQ(detokenizer_find_word(d, "red"), 4);
    detokenizer_free(d);
}

/* ---- spiece.model --------------------------------------------------------------------------------- */

typedef struct bytes {
    unsigned char data[4096];
    size_t length;
} bytes;

static void put(bytes *b, const void *data, size_t length) {
    memcpy(b->data + b->length, data, length);
    b->length += length;
}

static void put_varint(bytes *b, uint64_t value) {
    do {
        unsigned char byte = (unsigned char)(value & 0x7F);
        value >>= 7;
        if (value != 0) byte |= 0x80;
        put(b, &byte, 1);
    } while (value != 0);
}

/* ModelProto field 1: SentencePiece {piece = 1 (string), score = 2 (float), type = 3 (enum)};
 * type < 0 leaves the field out (NORMAL). */
static void put_piece(bytes *b, const char *piece, int type) {
    bytes entry = {{0}, 0};
    put_varint(&entry, (1 << 3) | 2);
    put_varint(&entry, strlen(piece));
    put(&entry, piece, strlen(piece));
    put_varint(&entry, (2 << 3) | 5);
    put(&entry, "\x00\x00\x80\xBF", 4); /* -1.0f */
    if (type >= 0) {
        put_varint(&entry, (3 << 3) | 0);
        put_varint(&entry, (uint64_t)type);
    }
    put_varint(b, (1 << 3) | 2);
    put_varint(b, entry.length);
    put(b, entry.data, entry.length);
}

static void test_spiece_model(void) {
    bytes b = {{0}, 0};
    /* trainer_spec (field 2) first, and unknown varint / fixed32 / fixed64 fields, all skipped */
    put_varint(&b, (2 << 3) | 2);
    put_varint(&b, 5);
    put(&b, "\x0A\x03" "abc", 5);
    put_varint(&b, (7 << 3) | 0);
    put_varint(&b, 300);
    put_varint(&b, (8 << 3) | 5);
    put(&b, "\x01\x02\x03\x04", 4);
    put_varint(&b, (9 << 3) | 1);
    put(&b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    put_piece(&b, "<pad>", 3);    /* 0 CONTROL */
    put_piece(&b, "</s>", 3);     /* 1 CONTROL */
    put_piece(&b, "<unk>", 2);    /* 2 UNKNOWN */
    put_piece(&b, SP "red", -1);  /* 3 NORMAL (default) */
    put_piece(&b, SP "car", 1);   /* 4 */
    put_piece(&b, "s", 1);        /* 5 */
    put_piece(&b, "<0x41>", 6);   /* 6 BYTE */
    put_piece(&b, SP ".", 1);     /* 7 */
    put_piece(&b, "<0x42>", 1);   /* 8 NORMAL: its text */
    char long_piece[131];
    memset(long_piece, 'x', 130);
    long_piece[130] = '\0';
    put_piece(&b, long_piece, 1); /* 9: an entry over 127 bytes (two-byte length) */
    put_piece(&b, "<0xC3>", 6);   /* 10 */
    put_piece(&b, "<0xA9>", 6);   /* 11 */
    put_piece(&b, SP "<x>", 4);   /* 12 USER_DEFINED: decoded like a normal piece */
    /* normalizer_spec (field 3) last */
    put_varint(&b, (3 << 3) | 2);
    put_varint(&b, 2);
    put(&b, "\x18\x01", 2);
    write_bytes(path_of("spiece.model"), b.data, b.length);

    gr_error err = {{0}};
    detokenizer *d = detokenizer_load(path_of("spiece.model"), &err);
    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        return;
    }
    CHECK_EQ(detokenizer_size(d), 13);
    CHECK_DECODE(d, "red cars", 3, 4, 5, 1);
    CHECK_DECODE(d, "red", 0, 2, 3, 1);
    CHECK_DECODE(d, "A", 6);
    CHECK_DECODE(d, "redA<0x42>", 3, 6, 8);
    CHECK_DECODE(d, "red" E_ACUTE, 3, 10, 11);
    CHECK_DECODE(d, "red.", 3, 7);
    CHECK_DECODE(d, "red <x>", 3, 12);
    CHECK_DECODE(d, long_piece, 9);
    CHECK_EQ(detokenizer_find(d, long_piece), 9);
    CHECK_EQ(detokenizer_find_word(d, "car"), 4);
    detokenizer_free(d);
}

/* ---- errors ---------------------------------------------------------------------------------------- */

/* Loads `text` as `name`, which must fail; returns the message (static). */
static const char *load_error(const char *name, const void *text, size_t length) {
    static gr_error err; /* test helper only */
    const char *path = path_of(name);
    write_bytes(path, text, length);
    snprintf(err.message, sizeof err.message, "(no message)");
    detokenizer *d = detokenizer_load(path, &err);
    if (d != NULL) {
        detokenizer_free(d);
        return "(loaded)";
    }
    return err.message;
}
#define LOAD_ERROR(name, text) load_error(name, text, strlen(text))

static void test_errors(void) {
    char want[1200];
    gr_error err = {{0}};
    CHECK(detokenizer_load(path_of("missing.json"), &err) == NULL);
    snprintf(want, sizeof want, "%s/missing.json: cannot open the vocabulary file", directory);
    CHECK_STR_EQ(err.message, want);
    CHECK(detokenizer_load(path_of("missing.json"), NULL) == NULL); /* err may be NULL */

    snprintf(want, sizeof want, "%s/bad.json: invalid JSON at byte ", directory);
    CHECK_CONTAINS(LOAD_ERROR("bad.json", "{\"a\": }"), want);
    CHECK_CONTAINS(LOAD_ERROR("bad.json", "  {\"a\": 1,}"), want);

    snprintf(want, sizeof want, "%s/vocab.json: vocab: piece 'red': expected a token id (an integer >= 0)", directory);
    CHECK_STR_EQ(LOAD_ERROR("vocab.json", "{\"<s>\": 0, \"red\": 1.5}"), want);
    CHECK_STR_EQ(LOAD_ERROR("vocab.json", "{\"red\": -1}"), want);
    CHECK_STR_EQ(LOAD_ERROR("vocab.json", "{\"red\": \"4\"}"), want);
    CHECK_STR_EQ(LOAD_ERROR("vocab.json", "{\"red\": null}"), want);
    CHECK_CONTAINS(LOAD_ERROR("vocab.json", "{\"red\": 4294967296}"), "vocab.json: token id 4294967296 is implausibly large");

    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}, \"decoder\": {\"type\": \"Metaspace\"}}"),
                   "t.json: field 'decoder': a BPE model needs the ByteLevel decoder");
    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}"), "t.json: field 'decoder'");
    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}"),
                   "t.json: field 'model.type': expected \"BPE\" or \"Unigram\"");
    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"Unigram\"}}"),
                   "t.json: field 'model': expected an object with 'type' and 'vocab'");
    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0], 3]}}"),
                   "t.json: field 'model.vocab[1]': expected [piece, score]");
    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": {\"a\": 0}}}"),
                   "t.json: field 'model.vocab': expected an array of [piece, score]");
    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0.5}}, \"decoder\": {\"type\": \"ByteLevel\"}}"),
                   "t.json: model.vocab: piece 'a': expected a token id (an integer >= 0)");
    CHECK_CONTAINS(LOAD_ERROR("t.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0]]}, "
                                        "\"added_tokens\": [{\"id\": 2.5, \"content\": \"x\"}]}"),
                   "t.json: field 'added_tokens[0]': expected {\"id\": ..., \"content\": ...}");

    CHECK_CONTAINS(load_error("s.model", "", 0), "s.model: not a SentencePiece model (no pieces)");
    CHECK_CONTAINS(load_error("s.model", "\x08\x96\x01", 3), "s.model: not a SentencePiece model (no pieces)");
    CHECK_CONTAINS(load_error("s.model", "\x0F", 1), "s.model: not a SentencePiece model (malformed protobuf at byte 1)");
    CHECK_CONTAINS(load_error("s.model", "\x0A\x05" "ab", 4), "s.model: truncated SentencePiece entry 0");
    CHECK_CONTAINS(load_error("s.model", "\x0A\x02\x18\x01", 4), "s.model: SentencePiece entry 0 has no piece");
    CHECK_CONTAINS(load_error("s.model", "\x0A\x03\x0A\x01" "a\x0A\x02\x0A\x05", 9), "s.model: malformed SentencePiece entry 1");
}

static void test_in_temp_dir(void (*test)(void)) {
    make_temp_dir(directory, sizeof directory);
    test();
    remove_tree(directory);
}

static void vocab_json_suite(void) {
    test_in_temp_dir(test_vocab_json);
}
static void vocab_json_with_a_model_piece_suite(void) {
    test_in_temp_dir(test_vocab_json_with_a_model_piece);
}
static void unigram_suite(void) {
    test_in_temp_dir(test_unigram_tokenizer_json);
}
static void bpe_suite(void) {
    test_in_temp_dir(test_bpe_tokenizer_json);
}
static void spiece_suite(void) {
    test_in_temp_dir(test_spiece_model);
}
static void errors_suite(void) {
    test_in_temp_dir(test_errors);
}

void suite_tokenizer(void) {
    test_run("test_vocab_json", vocab_json_suite);
    test_run("test_vocab_json_with_a_model_piece", vocab_json_with_a_model_piece_suite);
    test_run("test_unigram_tokenizer_json", unigram_suite);
    test_run("test_bpe_tokenizer_json", bpe_suite);
    test_run("test_spiece_model", spiece_suite);
    test_run("test_errors", errors_suite);
}
