/*
 * json.c: a small strict JSON (RFC 8259) parser for safetensors headers and program manifests,
 * the C twin of Sources/GranuleSupport/JSON.swift (same grammar, same error messages and offsets).
 *
 * Objects keep their members in text order with duplicates, so callers can report a duplicate key
 * instead of silently keeping one; numbers keep their literal text so integers stay exact.
 * Strings must be valid UTF-8 (after escapes), nesting is limited to GR_JSON_MAX_DEPTH levels.
 */
#include "internal.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *text;
    size_t length;
    size_t index;
    gr_json_error *error;
} parser;

static bool fail(parser *p, const char *message) {
    if (p->error != NULL) {
        snprintf(p->error->message, sizeof p->error->message, "%s", message);
        p->error->offset = p->index;
    }
    return false;
}

static int peek(const parser *p) {
    return p->index < p->length ? p->text[p->index] : -1;
}

static void skip_whitespace(parser *p) {
    for (int c = peek(p); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = peek(p)) p->index++;
}

static void free_contents(gr_json *value) {
    switch (value->kind) {
    case GR_JSON_STRING:
    case GR_JSON_NUMBER:
        free(value->as.string.text);
        break;
    case GR_JSON_ARRAY:
        for (size_t i = 0; i < value->as.array.count; i++) free_contents(&value->as.array.items[i]);
        free(value->as.array.items);
        break;
    case GR_JSON_OBJECT:
        for (size_t i = 0; i < value->as.object.count; i++) {
            free(value->as.object.members[i].key);
            free_contents(&value->as.object.members[i].value);
        }
        free(value->as.object.members);
        break;
    case GR_JSON_NULL:
    case GR_JSON_BOOL:
        break;
    }
    value->kind = GR_JSON_NULL;
}

void gr_json_free(gr_json *value) {
    if (value == NULL) return;
    free_contents(value);
    free(value);
}

static bool expect_literal(parser *p, const char *literal) {
    for (const char *c = literal; *c != '\0'; c++) {
        if (peek(p) != (unsigned char)*c) {
            char message[64];
            snprintf(message, sizeof message, "invalid literal, expected '%s'", literal);
            return fail(p, message);
        }
        p->index++;
    }
    return true;
}

/* ---- strings ----------------------------------------------------------------------------------- */

/* Whether bytes[0..<length) is well-formed UTF-8 (no overlongs, surrogates or values > U+10FFFF). */
bool gr_utf8_valid(const unsigned char *s, size_t length) {
    size_t i = 0;
    while (i < length) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else {
            return false;
        }
        if (length - i - 1 < need) return false;
        if (s[i + 1] < low || s[i + 1] > high) return false;
        for (size_t k = 2; k <= need; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
        }
        i += need + 1;
    }
    return true;
}

static bool hex4(parser *p, uint32_t *out) {
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        int c = peek(p);
        if (c < 0) return fail(p, "unexpected end of text in a \\u escape");
        uint32_t digit;
        if (c >= '0' && c <= '9') {
            digit = (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            digit = (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            digit = (uint32_t)(c - 'A' + 10);
        } else {
            return fail(p, "invalid hex digit in a \\u escape");
        }
        value = value << 4 | digit;
        p->index++;
    }
    *out = value;
    return true;
}

static size_t encode_utf8(uint32_t code, char *out) {
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | code >> 6);
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | code >> 12);
        out[1] = (char)(0x80 | (code >> 6 & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | code >> 18);
    out[1] = (char)(0x80 | (code >> 12 & 0x3F));
    out[2] = (char)(0x80 | (code >> 6 & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* Parses a string at the opening quote into a NUL-terminated heap copy. */
static bool parse_string(parser *p, char **text, size_t *length) {
    size_t start = p->index;
    /* The decoded string is never longer than its raw text: size the buffer by a quick scan. */
    size_t end = start + 1;
    while (end < p->length && p->text[end] != '"') end += p->text[end] == '\\' ? 2 : 1;
    size_t capacity = (end < p->length ? end : p->length) - start + 1;
    char *out = malloc(capacity);
    if (out == NULL) return fail(p, "out of memory");
    size_t n = 0;
    p->index++;
    for (;;) {
        int c = peek(p);
        if (c < 0) {
            free(out);
            return fail(p, "unterminated string");
        }
        p->index++;
        if (c == '"') {
            if (!gr_utf8_valid((const unsigned char *)out, n)) {
                free(out);
                p->index = start;
                return fail(p, "string is not valid UTF-8");
            }
            out[n] = '\0';
            *text = out;
            *length = n;
            return true;
        }
        if (c == '\\') {
            int e = peek(p);
            if (e < 0) {
                free(out);
                return fail(p, "unterminated string");
            }
            p->index++;
            switch (e) {
            case '"':
            case '\\':
            case '/': out[n++] = (char)e; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'n': out[n++] = '\n'; break;
            case 'r': out[n++] = '\r'; break;
            case 't': out[n++] = '\t'; break;
            case 'u': {
                uint32_t code;
                if (!hex4(p, &code)) {
                    free(out);
                    return false;
                }
                if (code >= 0xD800 && code < 0xDC00) {
                    uint32_t low;
                    if (peek(p) != '\\') goto unpaired;
                    p->index++;
                    if (peek(p) != 'u') goto unpaired;
                    p->index++;
                    if (!hex4(p, &low)) {
                        free(out);
                        return false;
                    }
                    if (low < 0xDC00 || low >= 0xE000) goto unpaired;
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                } else if (code >= 0xDC00 && code < 0xE000) {
                    goto unpaired;
                }
                n += encode_utf8(code, out + n);
                break;
            unpaired:
                free(out);
                return fail(p, "unpaired surrogate in a \\u escape");
            }
            default: {
                char message[48];
                if (e >= 0x20 && e < 0x7F) {
                    snprintf(message, sizeof message, "invalid escape '\\%c'", (char)e);
                } else {
                    snprintf(message, sizeof message, "invalid escape '\\' followed by byte 0x%02x", (unsigned)e);
                }
                free(out);
                return fail(p, message);
            }
            }
            continue;
        }
        if (c < 0x20) {
            free(out);
            return fail(p, "control character in a string");
        }
        out[n++] = (char)c;
    }
}

/* ---- numbers ----------------------------------------------------------------------------------- */

static size_t digits(parser *p) {
    size_t start = p->index;
    for (int c = peek(p); c >= '0' && c <= '9'; c = peek(p)) p->index++;
    return p->index - start;
}

static bool parse_number(parser *p, gr_json *out) {
    size_t start = p->index;
    if (peek(p) == '-') p->index++;
    if (peek(p) == '0') {
        p->index++;
    } else if (digits(p) == 0) {
        return fail(p, "invalid number");
    }
    if (peek(p) == '.') {
        p->index++;
        if (digits(p) == 0) return fail(p, "invalid number: no digits after '.'");
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->index++;
        if (peek(p) == '+' || peek(p) == '-') p->index++;
        if (digits(p) == 0) return fail(p, "invalid number: no digits in the exponent");
    }
    size_t length = p->index - start;
    char *text = malloc(length + 1);
    if (text == NULL) return fail(p, "out of memory");
    memcpy(text, p->text + start, length);
    text[length] = '\0';
    out->kind = GR_JSON_NUMBER;
    out->as.string.text = text;
    out->as.string.length = length;
    return true;
}

/* ---- values ------------------------------------------------------------------------------------ */

static bool parse_value(parser *p, int depth, gr_json *out);

static bool parse_array(parser *p, int depth, gr_json *out) {
    out->kind = GR_JSON_ARRAY;
    out->as.array.items = NULL;
    out->as.array.count = 0;
    size_t capacity = 0;
    p->index++;
    skip_whitespace(p);
    if (peek(p) == ']') {
        p->index++;
        return true;
    }
    for (;;) {
        skip_whitespace(p);
        if (out->as.array.count == capacity) {
            capacity = capacity == 0 ? 4 : capacity * 2;
            gr_json *grown = realloc(out->as.array.items, capacity * sizeof *grown);
            if (grown == NULL) return fail(p, "out of memory");
            out->as.array.items = grown;
        }
        gr_json *item = &out->as.array.items[out->as.array.count];
        item->kind = GR_JSON_NULL;
        out->as.array.count++; /* from here on the item is freed with the array, even half-built */
        if (!parse_value(p, depth + 1, item)) return false;
        skip_whitespace(p);
        int c = peek(p);
        if (c == ',') {
            p->index++;
        } else if (c == ']') {
            p->index++;
            return true;
        } else {
            return fail(p, "expected ',' or ']' in an array");
        }
    }
}

static bool parse_object(parser *p, int depth, gr_json *out) {
    out->kind = GR_JSON_OBJECT;
    out->as.object.members = NULL;
    out->as.object.count = 0;
    size_t capacity = 0;
    p->index++;
    skip_whitespace(p);
    if (peek(p) == '}') {
        p->index++;
        return true;
    }
    for (;;) {
        skip_whitespace(p);
        if (peek(p) != '"') return fail(p, "expected a string key");
        if (out->as.object.count == capacity) {
            capacity = capacity == 0 ? 4 : capacity * 2;
            gr_json_member *grown = realloc(out->as.object.members, capacity * sizeof *grown);
            if (grown == NULL) return fail(p, "out of memory");
            out->as.object.members = grown;
        }
        gr_json_member *member = &out->as.object.members[out->as.object.count];
        if (!parse_string(p, &member->key, &member->key_length)) return false;
        member->value.kind = GR_JSON_NULL;
        out->as.object.count++; /* from here on the member is freed with the object */
        skip_whitespace(p);
        if (peek(p) != ':') return fail(p, "expected ':' after a key");
        p->index++;
        skip_whitespace(p);
        if (!parse_value(p, depth + 1, &member->value)) return false;
        skip_whitespace(p);
        int c = peek(p);
        if (c == ',') {
            p->index++;
        } else if (c == '}') {
            p->index++;
            return true;
        } else {
            return fail(p, "expected ',' or '}' in an object");
        }
    }
}

static bool parse_value(parser *p, int depth, gr_json *out) {
    out->kind = GR_JSON_NULL;
    out->offset = p->index;
    if (depth >= GR_JSON_MAX_DEPTH) {
        char message[64];
        snprintf(message, sizeof message, "nesting deeper than %d levels", GR_JSON_MAX_DEPTH);
        return fail(p, message);
    }
    int c = peek(p);
    switch (c) {
    case -1: return fail(p, "unexpected end of text");
    case '{': return parse_object(p, depth, out);
    case '[': return parse_array(p, depth, out);
    case '"':
        if (!parse_string(p, &out->as.string.text, &out->as.string.length)) return false;
        out->kind = GR_JSON_STRING;
        return true;
    case 't':
        if (!expect_literal(p, "true")) return false;
        out->kind = GR_JSON_BOOL;
        out->as.boolean = true;
        return true;
    case 'f':
        if (!expect_literal(p, "false")) return false;
        out->kind = GR_JSON_BOOL;
        out->as.boolean = false;
        return true;
    case 'n': return expect_literal(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, out);
        return fail(p, "unexpected character");
    }
}

gr_json *gr_json_parse(const char *text, size_t length, gr_json_error *error) {
    parser p = {(const unsigned char *)text, length, 0, error};
    gr_json *value = malloc(sizeof *value);
    if (value == NULL) {
        fail(&p, "out of memory");
        return NULL;
    }
    skip_whitespace(&p);
    if (!parse_value(&p, 0, value)) {
        gr_json_free(value);
        return NULL;
    }
    skip_whitespace(&p);
    if (p.index != length) {
        fail(&p, "unexpected text after the JSON value");
        gr_json_free(value);
        return NULL;
    }
    return value;
}

/* ---- queries ----------------------------------------------------------------------------------- */

const char *gr_json_kind_name(gr_json_kind kind) {
    switch (kind) {
    case GR_JSON_OBJECT: return "an object";
    case GR_JSON_ARRAY: return "an array";
    case GR_JSON_STRING: return "a string";
    case GR_JSON_NUMBER: return "a number";
    case GR_JSON_BOOL: return "a boolean";
    case GR_JSON_NULL: return "null";
    }
    return "a value";
}

bool gr_json_double(const gr_json *value, double *out) {
    if (value->kind != GR_JSON_NUMBER) return false;
    /* strtod follows LC_NUMERIC's decimal point; JSON's is always '.'. */
    char buffer[512];
    const char *text = value->as.string.text;
    const char *point = localeconv()->decimal_point;
    if (point != NULL && strcmp(point, ".") != 0 && strlen(point) == 1 && value->as.string.length < sizeof buffer) {
        memcpy(buffer, text, value->as.string.length + 1);
        char *dot = strchr(buffer, '.');
        if (dot != NULL) *dot = point[0];
        text = buffer;
    }
    *out = strtod(text, NULL);
    return true;
}

bool gr_json_integer(const gr_json *value, int64_t *out) {
    if (value->kind != GR_JSON_NUMBER) return false;
    const char *text = value->as.string.text;
    bool negative = text[0] == '-';
    const char *digits_start = text + (negative ? 1 : 0);
    if (strpbrk(digits_start, ".eE") == NULL) {
        /* Plain integer literal: exact, with overflow detection. */
        uint64_t magnitude = 0;
        uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (const char *c = digits_start; *c != '\0'; c++) {
            uint64_t digit = (uint64_t)(*c - '0');
            if (magnitude > (limit - digit) / 10) return false;
            magnitude = magnitude * 10 + digit;
        }
        *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
        return true;
    }
    double d;
    gr_json_double(value, &d);
    if (!(d > -9.0e18 && d < 9.0e18)) return false;
    int64_t i = (int64_t)d;
    if ((double)i != d) return false;
    *out = i;
    return true;
}

const gr_json *gr_json_member_find(const gr_json *object, const char *key, int *occurrences) {
    const gr_json *first = NULL;
    int count = 0;
    if (object->kind == GR_JSON_OBJECT) {
        size_t length = strlen(key);
        for (size_t i = 0; i < object->as.object.count; i++) {
            const gr_json_member *m = &object->as.object.members[i];
            if (m->key_length == length && memcmp(m->key, key, length) == 0) {
                if (first == NULL) first = &m->value;
                count++;
            }
        }
    }
    if (occurrences != NULL) *occurrences = count;
    return first;
}

bool gr_json_string_is(const gr_json *value, const char *s) {
    return value->kind == GR_JSON_STRING && strlen(s) == value->as.string.length &&
           memcmp(value->as.string.text, s, value->as.string.length) == 0;
}

/* ---- text form (for messages) ------------------------------------------------------------------- */

void gr_json_append_string(gr_text *text, const char *s, size_t length) {
    gr_text_append(text, "\"");
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': gr_text_append(text, "\\\""); break;
        case '\\': gr_text_append(text, "\\\\"); break;
        case '\n': gr_text_append(text, "\\n"); break;
        case '\r': gr_text_append(text, "\\r"); break;
        case '\t': gr_text_append(text, "\\t"); break;
        default:
            if (c < 0x20) {
                gr_text_append(text, "\\u%04x", c);
            } else {
                gr_text_append(text, "%c", (char)c);
            }
        }
    }
    gr_text_append(text, "\"");
}

void gr_json_append_text(gr_text *text, const gr_json *value) {
    switch (value->kind) {
    case GR_JSON_NULL: gr_text_append(text, "null"); break;
    case GR_JSON_BOOL: gr_text_append(text, value->as.boolean ? "true" : "false"); break;
    case GR_JSON_NUMBER: gr_text_append(text, "%s", value->as.string.text); break;
    case GR_JSON_STRING: gr_json_append_string(text, value->as.string.text, value->as.string.length); break;
    case GR_JSON_ARRAY:
        gr_text_append(text, "[");
        for (size_t i = 0; i < value->as.array.count; i++) {
            if (i > 0) gr_text_append(text, ",");
            gr_json_append_text(text, &value->as.array.items[i]);
        }
        gr_text_append(text, "]");
        break;
    case GR_JSON_OBJECT:
        gr_text_append(text, "{");
        for (size_t i = 0; i < value->as.object.count; i++) {
            const gr_json_member *m = &value->as.object.members[i];
            if (i > 0) gr_text_append(text, ",");
            gr_json_append_string(text, m->key, m->key_length);
            gr_text_append(text, ":");
            gr_json_append_text(text, &m->value);
        }
        gr_text_append(text, "}");
        break;
    }
}
