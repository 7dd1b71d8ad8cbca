/*
 * tokenizer.c: detokenisation from vocab.json, tokenizer.json or spiece.model (tokenizer.h).
 *
 * Only decoding: Granule's datasets arrive tokenised (tools/convert_vl_adapter_dataset.py uses
 * the Hugging Face tokenizer), so the programs never need to encode text.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "tokenizer.h"

#include "../src/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum decoding { BYTE_LEVEL, METASPACE };

/* GPT-2's bytes_to_unicode maps every byte to a code point below this. */
#define BYTE_CODE_POINTS 324

struct detokenizer {
    enum decoding decoding;
    int64_t size;
    char **pieces;   /* [size]: NULL where no piece has that id */
    bool *special;   /* [size] */
    bool *literal;   /* [size]: added tokens, decoded as their text */
    bool *byte;      /* [size]: SentencePiece byte pieces <0xNN> */
    int byte_of_code[BYTE_CODE_POINTS]; /* byte-level: code point → byte, or -1 */
};


void detokenizer_free(detokenizer *d) {
    if (d == NULL) return;
    for (int64_t i = 0; i < d->size; i++) free(d->pieces[i]);
    free(d->pieces);
    free(d->special);
    free(d->literal);
    free(d->byte);
    free(d);
}

/* GPT-2's bytes_to_unicode, inverted: printable Latin-1 bytes map to themselves, the other 68
 * bytes to 256, 257, ... in byte order. */
static void init_byte_level(detokenizer *d) {
    for (int c = 0; c < BYTE_CODE_POINTS; c++) d->byte_of_code[c] = -1;
    int next = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        d->byte_of_code[printable ? b : next++] = b;
    }
}

/* Makes room for ids [0, size). */
static int reserve(detokenizer *d, int64_t size, const char *path, gr_error *err) {
    if (size <= d->size) return 0;
    if (size > ((int64_t)1 << 31)) return gr_fail(err, "%s: token id %lld is implausibly large", path, (long long)(size - 1));
    char **pieces = realloc(d->pieces, (size_t)size * sizeof *pieces);
    if (pieces != NULL) d->pieces = pieces;
    bool *special = realloc(d->special, (size_t)size);
    if (special != NULL) d->special = special;
    bool *literal = realloc(d->literal, (size_t)size);
    if (literal != NULL) d->literal = literal;
    bool *byte = realloc(d->byte, (size_t)size);
    if (byte != NULL) d->byte = byte;
    if (pieces == NULL || special == NULL || literal == NULL || byte == NULL) return gr_fail(err, "%s: out of memory", path);
    for (int64_t i = d->size; i < size; i++) {
        d->pieces[i] = NULL;
        d->special[i] = d->literal[i] = d->byte[i] = false;
    }
    d->size = size;
    return 0;
}

static int set_piece(detokenizer *d, int64_t id, const char *text, size_t length, const char *path, gr_error *err) {
    if (id < 0) return gr_fail(err, "%s: negative token id %lld", path, (long long)id);
    if (reserve(d, id + 1, path, err) != 0) return -1;
    char *copy = malloc(length + 1);
    if (copy == NULL) return gr_fail(err, "%s: out of memory", path);
    memcpy(copy, text, length);
    copy[length] = '\0';
    free(d->pieces[id]);
    d->pieces[id] = copy;
    return 0;
}

static bool is_default_special(const char *piece) {
    static const char *const names[] = {"<s>", "</s>", "<pad>", "<unk>", "<mask>", NULL};
    for (const char *const *n = names; *n != NULL; n++) {
        if (strcmp(piece, *n) == 0) return true;
    }
    return false;
}

/* vocab.json or a BPE model's "vocab": {piece: id}. */
static int load_vocab_object(detokenizer *d, const gr_json *vocab, const char *path, const char *field, gr_error *err) {
    if (vocab->kind != GR_JSON_OBJECT) return gr_fail(err, "%s: %s: expected an object of piece → id", path, field);
    for (size_t i = 0; i < vocab->as.object.count; i++) {
        const gr_json_member *m = &vocab->as.object.members[i];
        int64_t id;
        if (!gr_json_integer(&m->value, &id) || id < 0) {
            return gr_fail(err, "%s: %s: piece '%.64s': expected a token id (an integer >= 0)", path, field, m->key);
        }
        if (set_piece(d, id, m->key, m->key_length, path, err) != 0) return -1;
        d->special[id] = is_default_special(d->pieces[id]);
    }
    return 0;
}

/* tokenizer.json: model {type BPE, vocab {...}} | {type Unigram, vocab [[piece, score], ...]}, added_tokens. */
static int load_tokenizer_json(detokenizer *d, const gr_json *root, const char *path, gr_error *err) {
    const gr_json *model = gr_json_member_find(root, "model", NULL);
    const gr_json *type = model->kind == GR_JSON_OBJECT ? gr_json_member_find(model, "type", NULL) : NULL;
    const gr_json *vocab = model->kind == GR_JSON_OBJECT ? gr_json_member_find(model, "vocab", NULL) : NULL;
    if (type == NULL || vocab == NULL) return gr_fail(err, "%s: field 'model': expected an object with 'type' and 'vocab'", path);
    if (gr_json_string_is(type, "BPE")) {
        const gr_json *decoder = gr_json_member_find(root, "decoder", NULL);
        const gr_json *decoder_type = decoder != NULL && decoder->kind == GR_JSON_OBJECT ? gr_json_member_find(decoder, "type", NULL) : NULL;
        if (decoder_type == NULL || !gr_json_string_is(decoder_type, "ByteLevel")) {
            return gr_fail(err, "%s: field 'decoder': a BPE model needs the ByteLevel decoder (GPT-2 / BART); other BPE decoders are not supported",
                        path);
        }
        d->decoding = BYTE_LEVEL;
        init_byte_level(d);
        if (load_vocab_object(d, vocab, path, "model.vocab", err) != 0) return -1;
    } else if (gr_json_string_is(type, "Unigram")) {
        d->decoding = METASPACE;
        if (vocab->kind != GR_JSON_ARRAY) return gr_fail(err, "%s: field 'model.vocab': expected an array of [piece, score]", path);
        for (size_t i = 0; i < vocab->as.array.count; i++) {
            const gr_json *entry = &vocab->as.array.items[i];
            if (entry->kind != GR_JSON_ARRAY || entry->as.array.count < 1 || entry->as.array.items[0].kind != GR_JSON_STRING) {
                return gr_fail(err, "%s: field 'model.vocab[%zu]': expected [piece, score]", path, i);
            }
            const gr_json *piece = &entry->as.array.items[0];
            if (set_piece(d, (int64_t)i, piece->as.string.text, piece->as.string.length, path, err) != 0) return -1;
            const char *text = d->pieces[i];
            d->byte[i] = strlen(text) == 6 && strncmp(text, "<0x", 3) == 0 && text[5] == '>';
        }
    } else {
        return gr_fail(err, "%s: field 'model.type': expected \"BPE\" or \"Unigram\"", path);
    }
    const gr_json *added = gr_json_member_find(root, "added_tokens", NULL);
    if (added != NULL && added->kind == GR_JSON_ARRAY) {
        for (size_t i = 0; i < added->as.array.count; i++) {
            const gr_json *token = &added->as.array.items[i];
            const gr_json *id = token->kind == GR_JSON_OBJECT ? gr_json_member_find(token, "id", NULL) : NULL;
            const gr_json *content = token->kind == GR_JSON_OBJECT ? gr_json_member_find(token, "content", NULL) : NULL;
            const gr_json *special = token->kind == GR_JSON_OBJECT ? gr_json_member_find(token, "special", NULL) : NULL;
            int64_t value;
            if (id == NULL || content == NULL || content->kind != GR_JSON_STRING || !gr_json_integer(id, &value) || value < 0) {
                return gr_fail(err, "%s: field 'added_tokens[%zu]': expected {\"id\": ..., \"content\": ...}", path, i);
            }
            if (set_piece(d, value, content->as.string.text, content->as.string.length, path, err) != 0) return -1;
            d->literal[value] = true;
            d->special[value] = special != NULL && special->kind == GR_JSON_BOOL && special->as.boolean;
        }
    }
    return 0;
}

/* ---- spiece.model: protobuf ModelProto { repeated SentencePiece pieces = 1; } -------------------- */

static bool read_varint(const unsigned char **at, const unsigned char *end, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64 && *at < end; shift += 7) {
        unsigned char byte = *(*at)++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if ((byte & 0x80) == 0) {
            *out = value;
            return true;
        }
    }
    return false;
}

/* Skips a field of wire type `wire`; false when malformed. */
static bool skip_field(const unsigned char **at, const unsigned char *end, uint64_t wire) {
    uint64_t length;
    switch (wire) {
    case 0: return read_varint(at, end, &length);
    case 1: if (end - *at < 8) return false; *at += 8; return true;
    case 2:
        if (!read_varint(at, end, &length) || length > (uint64_t)(end - *at)) return false;
        *at += length;
        return true;
    case 5: if (end - *at < 4) return false; *at += 4; return true;
    default: return false;
    }
}

static int load_spiece(detokenizer *d, const unsigned char *bytes, size_t size, const char *path, gr_error *err) {
    d->decoding = METASPACE;
    const unsigned char *at = bytes, *end = bytes + size;
    int64_t id = 0;
    while (at < end) {
        uint64_t key;
        if (!read_varint(&at, end, &key)) return gr_fail(err, "%s: not a SentencePiece model (malformed protobuf at byte %zu)", path, (size_t)(at - bytes));
        if (key != ((1 << 3) | 2)) {
            if (!skip_field(&at, end, key & 7)) return gr_fail(err, "%s: not a SentencePiece model (malformed protobuf at byte %zu)", path, (size_t)(at - bytes));
            continue;
        }
        uint64_t length;
        if (!read_varint(&at, end, &length) || length > (uint64_t)(end - at)) return gr_fail(err, "%s: truncated SentencePiece entry %lld", path, (long long)id);
        const unsigned char *piece_at = at, *piece_end = at + length;
        at = piece_end;
        const unsigned char *text = NULL;
        uint64_t text_length = 0, type = 1;
        while (piece_at < piece_end) {
            uint64_t field;
            if (!read_varint(&piece_at, piece_end, &field)) return gr_fail(err, "%s: malformed SentencePiece entry %lld", path, (long long)id);
            if (field == ((1 << 3) | 2)) {
                if (!read_varint(&piece_at, piece_end, &text_length) || text_length > (uint64_t)(piece_end - piece_at)) {
                    return gr_fail(err, "%s: malformed SentencePiece entry %lld", path, (long long)id);
                }
                text = piece_at;
                piece_at += text_length;
            } else if (field == ((3 << 3) | 0)) {
                if (!read_varint(&piece_at, piece_end, &type)) return gr_fail(err, "%s: malformed SentencePiece entry %lld", path, (long long)id);
            } else if (!skip_field(&piece_at, piece_end, field & 7)) {
                return gr_fail(err, "%s: malformed SentencePiece entry %lld", path, (long long)id);
            }
        }
        if (text == NULL) return gr_fail(err, "%s: SentencePiece entry %lld has no piece", path, (long long)id);
        if (set_piece(d, id, (const char *)text, (size_t)text_length, path, err) != 0) return -1;
        d->special[id] = type == 2 || type == 3; /* UNKNOWN, CONTROL */
        d->byte[id] = type == 6;                 /* BYTE: <0xNN> */
        id++;
    }
    if (id == 0) return gr_fail(err, "%s: not a SentencePiece model (no pieces)", path);
    return 0;
}

detokenizer *detokenizer_load(const char *path, gr_error *err) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        gr_fail(err, "%s: cannot open the vocabulary file", path);
        return NULL;
    }
    char *bytes = NULL;
    size_t size = 0, capacity = 0;
    for (;;) {
        if (size == capacity) {
            capacity = capacity == 0 ? 1 << 16 : capacity * 2;
            char *grown = realloc(bytes, capacity);
            if (grown == NULL) {
                free(bytes);
                fclose(file);
                gr_fail(err, "%s: out of memory", path);
                return NULL;
            }
            bytes = grown;
        }
        size_t got = fread(bytes + size, 1, capacity - size, file);
        size += got;
        if (got == 0) break;
    }
    bool read_error = ferror(file) != 0;
    fclose(file);
    detokenizer *d = calloc(1, sizeof *d);
    int status = 0;
    if (read_error || d == NULL) {
        status = gr_fail(err, read_error ? "%s: read error" : "%s: out of memory", path);
    } else {
        size_t first = 0;
        while (first < size && (bytes[first] == ' ' || bytes[first] == '\n' || bytes[first] == '\r' || bytes[first] == '\t')) first++;
        if (first < size && bytes[first] == '{') {
            gr_json_error json_error;
            gr_json *root = gr_json_parse(bytes, size, &json_error);
            /* tokenizer.json has a "model" object; a vocab.json may have a piece "model" (an id) */
            const gr_json *model = root != NULL ? gr_json_member_find(root, "model", NULL) : NULL;
            if (root == NULL) {
                status = gr_fail(err, "%s: invalid JSON at byte %zu: %s", path, json_error.offset, json_error.message);
            } else if (model != NULL && model->kind == GR_JSON_OBJECT) {
                status = load_tokenizer_json(d, root, path, err);
            } else {
                d->decoding = BYTE_LEVEL;
                init_byte_level(d);
                status = load_vocab_object(d, root, path, "vocab", err);
            }
            gr_json_free(root);
        } else {
            status = load_spiece(d, (const unsigned char *)bytes, size, path, err);
        }
    }
    free(bytes);
    if (status != 0) {
        detokenizer_free(d);
        return NULL;
    }
    return d;
}

int64_t detokenizer_size(const detokenizer *d) {
    return d->size;
}

int64_t detokenizer_find(const detokenizer *d, const char *piece) {
    for (int64_t i = 0; i < d->size; i++) {
        if (d->pieces[i] != NULL && strcmp(d->pieces[i], piece) == 0) return i;
    }
    return -1;
}

int64_t detokenizer_find_word(const detokenizer *d, const char *word) {
    char spaced[256];
    snprintf(spaced, sizeof spaced, "%s%s", d->decoding == METASPACE ? "\xE2\x96\x81" : "\xC4\xA0", word);
    int64_t first = detokenizer_find(d, d->decoding == METASPACE ? spaced : word);
    return first >= 0 ? first : detokenizer_find(d, d->decoding == METASPACE ? word : spaced);
}

bool detokenizer_has_piece(const detokenizer *d, int64_t id) {
    return id >= 0 && id < d->size && d->pieces[id] != NULL;
}

void detokenizer_mark_special(detokenizer *d, int64_t id) {
    if (id >= 0 && id < d->size) d->special[id] = true;
}

/* Closes an open_memstream stream writing into *text: the text, or NULL (and freed) when writing failed. */
static char *closed_text(FILE *stream, char **text) {
    if (fclose(stream) != 0) {
        free(*text);
        return NULL;
    }
    return *text;
}

/* Decodes one UTF-8 code point at s (length >= 1); returns its byte count, or 0 if malformed. */
static size_t utf8_next(const unsigned char *s, size_t length, uint32_t *code) {
    unsigned char lead = s[0];
    size_t count = lead < 0x80 ? 1 : (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 0;
    if (count == 0 || count > length) return 0;
    uint32_t value = count == 1 ? lead : count == 2 ? lead & 0x1F : count == 3 ? lead & 0x0F : lead & 0x07;
    for (size_t i = 1; i < count; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        value = (value << 6) | (s[i] & 0x3F);
    }
    *code = value;
    return count;
}

/* Python's str.replace(from, to) in place, for `to` no longer than `from`. */
static void replace_all(char *text, const char *from, const char *to) {
    size_t from_length = strlen(from), to_length = strlen(to);
    char *read = text, *write = text;
    while (*read != '\0') {
        if (strncmp(read, from, from_length) == 0) {
            memmove(write, to, to_length);
            write += to_length;
            read += from_length;
        } else {
            *write++ = *read++;
        }
    }
    *write = '\0';
}

/* Bytes that are not UTF-8 become U+FFFD (bytes.decode("utf-8", errors="replace")). */
static char *valid_utf8(char *text, size_t length) {
    if (gr_utf8_valid((const unsigned char *)text, length)) return text;
    char *fixed = NULL;
    size_t fixed_length = 0;
    FILE *out = open_memstream(&fixed, &fixed_length);
    if (out != NULL) {
        for (size_t i = 0; i < length;) {
            uint32_t code;
            size_t n = utf8_next((const unsigned char *)text + i, length - i, &code);
            if (n == 0 || !gr_utf8_valid((const unsigned char *)text + i, n)) {
                fputs("\xEF\xBF\xBD", out);
                i++;
            } else {
                fwrite(text + i, 1, n, out);
                i += n;
            }
        }
    }
    free(text);
    return out != NULL ? closed_text(out, &fixed) : NULL;
}

char *detokenizer_decode(const detokenizer *d, const int64_t *ids, int64_t count) {
    char *text = NULL;
    size_t text_length = 0;
    FILE *out = open_memstream(&text, &text_length);
    if (out == NULL) return NULL;
    for (int64_t i = 0; i < count; i++) {
        int64_t id = ids[i];
        if (id < 0 || id >= d->size || d->pieces[id] == NULL || d->special[id]) continue;
        const char *piece = d->pieces[id];
        size_t length = strlen(piece);
        if (d->literal[id]) {
            fwrite(piece, 1, length, out);
        } else if (d->decoding == BYTE_LEVEL) {
            for (size_t at = 0; at < length;) {
                uint32_t code;
                size_t n = utf8_next((const unsigned char *)piece + at, length - at, &code);
                if (n == 0) n = 1, code = BYTE_CODE_POINTS;
                if (code < BYTE_CODE_POINTS && d->byte_of_code[code] >= 0) {
                    fputc(d->byte_of_code[code], out);
                } else {
                    fwrite(piece + at, 1, n, out);
                }
                at += n;
            }
        } else if (d->byte[id]) {
            fputc((int)strtol(piece + 3, NULL, 16), out);
        } else {
            for (size_t at = 0; at < length;) {
                bool space = strncmp(piece + at, "\xE2\x96\x81", 3) == 0;
                fputc(space ? ' ' : piece[at], out);
                at += space ? 3 : 1;
            }
        }
    }
    text = closed_text(out, &text);
    if (text == NULL) return NULL;
    if (d->decoding == METASPACE && text[0] == ' ') memmove(text, text + 1, strlen(text));
    static const char *const cleanups[][2] = {{" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
                                              {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t c = 0; c < sizeof cleanups / sizeof cleanups[0]; c++) replace_all(text, cleanups[c][0], cleanups[c][1]);
    return valid_utf8(text, strlen(text));
}
