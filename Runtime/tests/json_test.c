/* json_test.c: the strict JSON parser (the cases of Tests/GranuleInterpreterTests/JSONTests.swift and more). */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gr_json *parse(const char *text, gr_json_error *error) {
    return gr_json_parse(text, strlen(text), error);
}

/* The error message of parsing `text`, which must fail ("" if it parsed). */
static const char *parse_error(const char *text, size_t *offset) {
    static char message[200]; /* test helper only */
    gr_json_error error = {{0}, 0};
    gr_json *value = parse(text, &error);
    if (value != NULL) {
        gr_json_free(value);
        return "";
    }
    snprintf(message, sizeof message, "%s", error.message);
    if (offset != NULL) *offset = error.offset;
    return message;
}

static void test_keeps_member_order_and_duplicates(void) {
    gr_json_error error;
    gr_json *value = parse(" { \"b\" : 1 , \"a\" : [true, false, null], \"b\": \"x\" } ", &error);
    CHECK(value != NULL);
    if (value == NULL) return;
    CHECK(value->kind == GR_JSON_OBJECT);
    CHECK_EQ(value->as.object.count, 3);
    CHECK_STR_EQ(value->as.object.members[0].key, "b");
    CHECK_STR_EQ(value->as.object.members[1].key, "a");
    CHECK_STR_EQ(value->as.object.members[2].key, "b");
    const gr_json *a = &value->as.object.members[1].value;
    CHECK(a->kind == GR_JSON_ARRAY && a->as.array.count == 3);
    CHECK(a->as.array.items[0].kind == GR_JSON_BOOL && a->as.array.items[0].as.boolean);
    CHECK(a->as.array.items[1].kind == GR_JSON_BOOL && !a->as.array.items[1].as.boolean);
    CHECK(a->as.array.items[2].kind == GR_JSON_NULL);
    int occurrences = 0;
    const gr_json *b = gr_json_member_find(value, "b", &occurrences);
    CHECK_EQ(occurrences, 2);
    CHECK(b != NULL && b->kind == GR_JSON_NUMBER);
    CHECK(gr_json_member_find(value, "zzz", &occurrences) == NULL && occurrences == 0);
    gr_json_free(value);
}

static void test_decodes_escapes(void) {
    gr_json_error error;
    gr_json *value = parse("\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\\u0000z\"", &error);
    CHECK(value != NULL && value->kind == GR_JSON_STRING);
    if (value == NULL) return;
    const char want[] = "a\"b\\c/d\n\t\xC3\xA9\xF0\x9F\x98\x80\0z";
    CHECK_EQ(value->as.string.length, sizeof want - 1);
    CHECK(memcmp(value->as.string.text, want, sizeof want - 1) == 0);
    gr_json_free(value);
    CHECK_STR_EQ(parse_error("\"\\ud83d\"", NULL), "unpaired surrogate in a \\u escape");
    CHECK_STR_EQ(parse_error("\"\\ude00\"", NULL), "unpaired surrogate in a \\u escape");
    CHECK_STR_EQ(parse_error("\"\\ud83d\\u0041\"", NULL), "unpaired surrogate in a \\u escape");
    CHECK_STR_EQ(parse_error("\"\\x\"", NULL), "invalid escape '\\x'");
    CHECK_STR_EQ(parse_error("\"\\u12g4\"", NULL), "invalid hex digit in a \\u escape");
    CHECK_STR_EQ(parse_error("\"\\u12", NULL), "unexpected end of text in a \\u escape");
    CHECK_STR_EQ(parse_error("\"abc", NULL), "unterminated string");
    CHECK_STR_EQ(parse_error("\"abc\\", NULL), "unterminated string");
    CHECK_STR_EQ(parse_error("\"a\x01\"", NULL), "control character in a string");
}

static void test_numbers_follow_the_grammar(void) {
    struct {
        const char *text;
        bool integral;
        int64_t value;
    } cases[] = {
        {"-0", true, 0},
        {"300", true, 300},
        {"3e2", true, 300},
        {"3.0", true, 3},
        {"2E+1", true, 20},
        {"12.5e-3", false, 0},
        {"1.5", false, 0},
        {"99999999999999999999", false, 0},
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0},
        {"9e18", false, 0},   /* JSON.swift: non-literal integers need |x| < 9e18 */
        {"8.5e18", true, 8500000000000000000},
        {"1e400", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gr_json_error error;
        gr_json *value = parse(cases[i].text, &error);
        CHECK(value != NULL && value->kind == GR_JSON_NUMBER);
        if (value == NULL) continue;
        CHECK_STR_EQ(value->as.string.text, cases[i].text);
        int64_t got = -1;
        bool integral = gr_json_integer(value, &got);
        if (integral != cases[i].integral) fprintf(stderr, "  number %s\n", cases[i].text);
        CHECK(integral == cases[i].integral);
        if (cases[i].integral) CHECK_EQ(got, cases[i].value);
        gr_json_free(value);
    }
    const char *bad[] = {"01", "1.", ".5", "-", "1e", "+1", "NaN", "-a", "1e+", "0x10", "Infinity"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *message = parse_error(bad[i], NULL);
        if (message[0] == '\0') fprintf(stderr, "  '%s' parsed\n", bad[i]);
        CHECK(message[0] != '\0');
    }
    CHECK_STR_EQ(parse_error("1.", NULL), "invalid number: no digits after '.'");
    CHECK_STR_EQ(parse_error("1e", NULL), "invalid number: no digits in the exponent");
    CHECK_STR_EQ(parse_error("-", NULL), "invalid number");
    CHECK_STR_EQ(parse_error("01", NULL), "unexpected text after the JSON value");
    gr_json_error error;
    gr_json *value = parse("-2.5e1", &error);
    double d = 0;
    CHECK(value != NULL && gr_json_double(value, &d) && d == -25.0);
    gr_json_free(value);
}

static void test_rejects_malformed_text_with_offsets(void) {
    size_t offset = 0;
    CHECK_STR_EQ(parse_error("", &offset), "unexpected end of text");
    CHECK_EQ(offset, 0);
    CHECK_STR_EQ(parse_error("  ", NULL), "unexpected end of text");
    CHECK_STR_EQ(parse_error("{\"a\": ", &offset), "unexpected end of text");
    CHECK_EQ(offset, 6);
    CHECK_STR_EQ(parse_error("{\"a\": 1} x", &offset), "unexpected text after the JSON value");
    CHECK_EQ(offset, 9);
    CHECK_STR_EQ(parse_error("{\"a\" 1}", &offset), "expected ':' after a key");
    CHECK_EQ(offset, 5);
    CHECK_STR_EQ(parse_error("{a: 1}", NULL), "expected a string key");
    CHECK_STR_EQ(parse_error("{\"a\": 1,}", NULL), "expected a string key");
    CHECK_STR_EQ(parse_error("[1,]", NULL), "unexpected character");
    CHECK_STR_EQ(parse_error("[1 2]", NULL), "expected ',' or ']' in an array");
    CHECK_STR_EQ(parse_error("{\"a\": 1 \"b\": 2}", NULL), "expected ',' or '}' in an object");
    CHECK_STR_EQ(parse_error("tru", NULL), "invalid literal, expected 'true'");
    CHECK_STR_EQ(parse_error("nul", NULL), "invalid literal, expected 'null'");
    CHECK_STR_EQ(parse_error("fals", NULL), "invalid literal, expected 'false'");
    CHECK_STR_EQ(parse_error("/* c */ 1", NULL), "unexpected character");
    CHECK_STR_EQ(parse_error("'a'", NULL), "unexpected character");
}

static void test_rejects_invalid_utf8(void) {
    size_t offset = 99;
    CHECK_STR_EQ(parse_error("\"\xFF\"", &offset), "string is not valid UTF-8");
    CHECK_EQ(offset, 0);
    CHECK_STR_EQ(parse_error("[\"ok\", \"\xC0\xAF\"]", &offset), "string is not valid UTF-8"); /* overlong '/' */
    CHECK_EQ(offset, 7);
    CHECK_STR_EQ(parse_error("\"\xED\xA0\x80\"", NULL), "string is not valid UTF-8");   /* a surrogate */
    CHECK_STR_EQ(parse_error("\"\xF4\x90\x80\x80\"", NULL), "string is not valid UTF-8"); /* > U+10FFFF */
    CHECK_STR_EQ(parse_error("\"\xE2\x82\"", NULL), "string is not valid UTF-8");         /* truncated */
    CHECK_STR_EQ(parse_error("\"na\xC3\xAFve \xE2\x82\xAC \xF0\x9F\x98\x80\"", NULL), "");
}

static void test_limits_nesting_depth(void) {
    char text[300];
    /* 64 nested arrays parse (depths 0..63); 65 do not. */
    for (int levels = 63; levels <= 65; levels++) {
        size_t n = 0;
        for (int i = 0; i < levels; i++) text[n++] = '[';
        for (int i = 0; i < levels; i++) text[n++] = ']';
        text[n] = '\0';
        size_t offset = 0;
        const char *message = parse_error(text, &offset);
        if (levels <= 64) {
            CHECK_STR_EQ(message, "");
        } else {
            CHECK_STR_EQ(message, "nesting deeper than 64 levels");
            CHECK_EQ(offset, 64);
        }
    }
    char *deep = malloc(100001);
    memset(deep, '[', 100000);
    deep[100000] = '\0';
    CHECK_STR_EQ(parse_error(deep, NULL), "nesting deeper than 64 levels");
    memset(deep, '{', 100000);
    for (size_t i = 0; i + 5 <= 100000; i += 5) memcpy(deep + i, "{\"a\":", 5);
    CHECK_STR_EQ(parse_error(deep, NULL), "nesting deeper than 64 levels");
    free(deep);
}

static void test_writes_compact_text(void) {
    gr_json_error error;
    gr_json *value = parse("{\"k\\\"\\n\\u0001\": [1, \"\xC3\xA9\", true, null, {}], \"x\": -1.5e3}", &error);
    CHECK(value != NULL);
    if (value == NULL) return;
    char out[200];
    gr_text text;
    gr_text_init(&text, out, sizeof out);
    gr_json_append_text(&text, value);
    CHECK_STR_EQ(out, "{\"k\\\"\\n\\u0001\":[1,\"\xC3\xA9\",true,null,{}],\"x\":-1.5e3}");
    gr_json_free(value);
}

static void test_survives_every_truncation_and_mutation(void) {
    const char *good = "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"s\":\"\\u00e9\\ud83d\\ude00\",\"n\":[-1.5e3,0,true,false,null]}";
    size_t length = strlen(good);
    int parsed = 0;
    for (size_t cut = 0; cut <= length; cut++) {
        gr_json_error error;
        gr_json *value = gr_json_parse(good, cut, &error);
        parsed += value != NULL;
        gr_json_free(value);
    }
    CHECK_EQ(parsed, 1); /* only the whole text */
    const unsigned char replacements[] = {0x00, 0x01, 0x22, 0x2C, 0x2D, 0x30, 0x39, 0x5B, 0x5C, 0x5D, 0x7B, 0x7D, 0x80, 0xFF};
    char *copy = malloc(length);
    for (size_t i = 0; i < length; i++) {
        for (size_t r = 0; r < sizeof replacements; r++) {
            memcpy(copy, good, length);
            copy[i] = (char)replacements[r];
            gr_json_error error;
            gr_json_free(gr_json_parse(copy, length, &error));
        }
    }
    free(copy);
    CHECK(true);
}

void suite_json(void) {
    RUN(test_keeps_member_order_and_duplicates);
    RUN(test_decodes_escapes);
    RUN(test_numbers_follow_the_grammar);
    RUN(test_rejects_malformed_text_with_offsets);
    RUN(test_rejects_invalid_utf8);
    RUN(test_limits_nesting_depth);
    RUN(test_writes_compact_text);
    RUN(test_survives_every_truncation_and_mutation);
}
