/*
 * safetensors_test.c: round trips per dtype, every corruption class with its own message (the
 * messages of Tests/GranuleInterpreterTests/SafetensorsTests.swift), CRC checks, atomic writes.
 */
#include "test.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A scratch directory per test (test state, not runtime state). */
static char directory[512];
static char path[600];

static void setup(void) {
    make_temp_dir(directory, sizeof directory);
    snprintf(path, sizeof path, "%s/model.safetensors", directory);
}

static void teardown(void) {
    remove_tree(directory);
}

/* The message of opening a file made of `header` (verbatim) and `data`, without the "PATH: "
 * prefix, which is checked. "" when the file opened. */
static const char *open_error_of(const char *header, const void *data, size_t length, char *out, size_t size) {
    write_safetensors_raw(path, header, data, length);
    gr_error err;
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    if (file != NULL) {
        gr_safetensors_close(file);
        out[0] = '\0';
        return out;
    }
    size_t prefix = strlen(path);
    CHECK(strncmp(err.message, path, prefix) == 0 && strncmp(err.message + prefix, ": ", 2) == 0);
    snprintf(out, size, "%s", err.message + prefix + 2);
    return out;
}

#define OPEN_ERROR(header, data, length) open_error_of((header), (data), (length), message, sizeof message)

/* One header entry. */
static const char *entry(char *out, const char *name, const char *dtype, const char *shape, long long begin, long long end) {
    sprintf(out, "\"%s\": {\"dtype\": \"%s\", \"shape\": %s, \"data_offsets\": [%lld, %lld]}", name, dtype, shape, begin, end);
    return out;
}

/* ---- round trips ----------------------------------------------------------------------------- */

static void test_round_trips_every_dtype_in_the_given_order(void) {
    setup();
    float w[6] = {1.5f, -2, 0, INFINITY, -0.0f, 3.25f};
    double b[3] = {0.1, -1e300, 4.9406564584124654e-324};
    int32_t ids[4] = {1, -2, 2147483647, -2147483647 - 1};
    int64_t steps[1] = {INT64_MIN};
    uint8_t mask[4] = {1, 0, 0, 1};
    uint16_t half[2] = {0x3C00, 0xC000}, brain[2] = {0x3F80, 0x4049};
    int64_t s23[] = {2, 3}, s3[] = {3}, s22[] = {2, 2}, s4[] = {4}, s03[] = {0, 3}, s1[] = {1}, s2[] = {2};
    int64_t seven = 7;
    const gr_st_write_tensor tensors[] = {
        {"w", GR_ST_F32, 2, s23, w},         {"b", GR_ST_F64, 1, s3, b},      {"ids", GR_ST_I32, 2, s22, ids},
        {"steps", GR_ST_I64, 0, NULL, steps}, {"mask", GR_ST_BOOL, 1, s4, mask}, {"empty", GR_ST_F32, 2, s03, NULL},
        {"na\xC3\xAFve \"quoted\"\n", GR_ST_I64, 1, s1, &seven}, {"h", GR_ST_F16, 1, s2, half}, {"bf", GR_ST_BF16, 1, s2, brain},
    };
    size_t n = sizeof tensors / sizeof tensors[0];
    const gr_st_metadata metadata[] = {{"note", "h\xC3\xA9llo"}, {"format", "pt"}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(path, tensors, n, metadata, 2, &err), 0);
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    CHECK(file != NULL);
    if (file == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        teardown();
        return;
    }
    CHECK_EQ(gr_safetensors_count(file), (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        const gr_st_tensor *t = gr_safetensors_tensor(file, (int64_t)i);
        CHECK(t != NULL && strcmp(t->name, tensors[i].name) == 0);
        CHECK(gr_safetensors_find(file, tensors[i].name) == t);
        CHECK(t->dtype == tensors[i].dtype);
        CHECK_EQ(t->rank, tensors[i].rank);
        int64_t count = 1;
        for (int32_t d = 0; d < t->rank; d++) {
            CHECK_EQ(t->shape[d], tensors[i].shape[d]);
            count *= tensors[i].shape[d];
        }
        CHECK_EQ(t->count, count);
        CHECK_EQ(t->bytes, count * (int64_t)gr_st_dtype_size(t->dtype));
        CHECK(t->data != NULL);
        if (count > 0) CHECK(memcmp(t->data, tensors[i].data, (size_t)t->bytes) == 0);
    }
    CHECK(gr_safetensors_find(file, "nope") == NULL);
    CHECK_EQ(gr_safetensors_metadata_count(file), 3);
    const char *key, *value;
    /* Keys are written sorted. */
    CHECK(gr_safetensors_metadata(file, 0, &key, &value) == 0 && strcmp(key, "format") == 0 && strcmp(value, "pt") == 0);
    CHECK(gr_safetensors_metadata(file, 1, &key, &value) == 0 && strcmp(key, "granule_crc32") == 0);
    CHECK(gr_safetensors_metadata(file, 2, &key, &value) == 0 && strcmp(key, "note") == 0);
    CHECK(gr_safetensors_metadata(file, 3, &key, &value) != 0);
    CHECK_STR_EQ(gr_safetensors_metadata_find(file, "note"), "h\xC3\xA9llo");
    CHECK(gr_safetensors_metadata_find(file, "absent") == NULL);
    float widened[2];
    CHECK_EQ(gr_st_tensor_read_f32(file, gr_safetensors_find(file, "h"), widened, &err), 0);
    CHECK(widened[0] == 1.0f && widened[1] == -2.0f);
    CHECK_EQ(gr_st_tensor_read_f32(file, gr_safetensors_find(file, "bf"), widened, &err), 0);
    CHECK(widened[0] == 1.0f && widened[1] == 3.140625f);
    CHECK(gr_st_tensor_read_f32(file, gr_safetensors_find(file, "ids"), widened, &err) != 0);
    CHECK_CONTAINS(err.message, "tensor 'ids' is I32, which cannot be read as f32");
    gr_safetensors_close(file);

    /* The layout of Safetensors.swift's writer: the data buffer starts 8-byte aligned, the header
     * padded with spaces, metadata first. */
    size_t length;
    unsigned char *bytes = read_bytes(path, &length);
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--) header_length = header_length << 8 | bytes[i];
    CHECK_EQ((8 + header_length) % 8, 0);
    CHECK(bytes[8 + header_length - 1] == ' ' || bytes[8 + header_length - 1] == '}');
    CHECK(memcmp(bytes + 8, "{\"__metadata__\":{\"format\":\"pt\",\"granule_crc32\":\"", 48) == 0);
    free(bytes);
    CHECK_EQ(count_entries(directory), 1); /* no temporary file left */
    teardown();
}

static void test_bool_bytes_are_normalized_on_write(void) {
    setup();
    uint8_t mask[3] = {0, 7, 1};
    int64_t shape[] = {3};
    gr_st_write_tensor t = {"m", GR_ST_BOOL, 1, shape, mask};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(path, &t, 1, NULL, 0, &err), 0);
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    CHECK(file != NULL);
    if (file != NULL) {
        const uint8_t *data = gr_safetensors_find(file, "m")->data;
        CHECK(data[0] == 0 && data[1] == 1 && data[2] == 1);
        gr_safetensors_close(file);
    }
    teardown();
}

static void test_reads_tensors_in_offset_order(void) {
    setup();
    char header[1000], a[200], b[200], message[GR_ERROR_CAPACITY];
    sprintf(header, "{%s, %s}", entry(a, "second", "I32", "[1]", 4, 8), entry(b, "first", "I32", "[1]", 0, 4));
    const unsigned char data[] = {1, 0, 0, 0, 2, 0, 0, 0};
    CHECK_STR_EQ(OPEN_ERROR(header, data, 8), "");
    gr_error err;
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    CHECK(file != NULL);
    if (file != NULL) {
        CHECK_STR_EQ(gr_safetensors_tensor(file, 0)->name, "first");
        CHECK_STR_EQ(gr_safetensors_tensor(file, 1)->name, "second");
        int32_t second; /* the header is not padded: the data is misaligned, as files may be */
        memcpy(&second, gr_safetensors_find(file, "second")->data, sizeof second);
        CHECK_EQ(second, 2);
        CHECK_EQ(gr_safetensors_metadata_count(file), 0); /* a foreign file: no CRC, still fine */
        gr_safetensors_close(file);
    }
    teardown();
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_reads_half_precision_as_f32(void) {
    setup();
    char header[1000], a[200], b[200];
    sprintf(header, "{%s, %s}", entry(a, "h", "F16", "[7]", 0, 14), entry(b, "bf", "BF16", "[2,2]", 14, 22));
    const uint16_t values[] = {0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555, 0x8000, 0xFE01, 0x3F80, 0x4049, 0xFF80, 0x7FC1};
    unsigned char data[22];
    for (int i = 0; i < 11; i++) {
        data[2 * i] = (unsigned char)(values[i] & 0xFF);
        data[2 * i + 1] = (unsigned char)(values[i] >> 8);
    }
    write_safetensors_raw(path, header, data, sizeof data);
    gr_error err;
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    CHECK(file != NULL);
    if (file == NULL) {
        teardown();
        return;
    }
    float h[7], bf[4];
    CHECK_EQ(gr_st_tensor_read_f32(file, gr_safetensors_find(file, "h"), h, &err), 0);
    CHECK(h[0] == 1.0f && h[1] == -2.0f && h[2] == 0x1p-24f && h[3] == INFINITY && h[4] == 0.333251953125f);
    CHECK_EQ(bits_of(h[5]), 0x80000000u); /* -0 */
    CHECK_EQ(bits_of(h[6]), 0x7FC00000u); /* a NaN becomes Swift's Float.nan */
    CHECK_EQ(gr_st_tensor_read_f32(file, gr_safetensors_find(file, "bf"), bf, &err), 0);
    CHECK(bf[0] == 1.0f && bf[1] == 3.140625f && bf[2] == -INFINITY);
    CHECK_EQ(bits_of(bf[3]), 0x7FC10000u); /* bfloat16 keeps the payload */
    /* Every binary16 value widens exactly: narrowing back gives the same bits (NaNs aside). */
    int64_t wrong = 0;
    for (uint32_t bits = 0; bits < 65536; bits++) {
        float f = gr_f16_to_f32((uint16_t)bits);
        if (isnan(f)) continue;
        uint32_t u = bits_of(f), sign = u >> 31, exponent = (u >> 23) & 0xFF, mantissa = u & 0x7FFFFF;
        uint32_t back;
        if (f == 0) {
            back = sign << 15;
        } else if (exponent < 113) { /* subnormal half */
            back = sign << 15 | (uint32_t)(fabsf(f) * 0x1p24f);
        } else if (exponent == 0xFF) {
            back = sign << 15 | 0x7C00;
        } else {
            back = sign << 15 | (exponent - 112) << 10 | mantissa >> 13;
        }
        wrong += back != bits;
    }
    CHECK_EQ(wrong, 0);
    gr_safetensors_close(file);
    teardown();
}

/* ---- corruption classes ------------------------------------------------------------------------- */

static void test_rejects_bad_framing(void) {
    setup();
    char message[GR_ERROR_CAPACITY];
    gr_error err;
    write_bytes(path, "\x01\x02\x03", 3);
    CHECK(gr_safetensors_open(path, 0, &err) == NULL);
    CHECK_CONTAINS(err.message, "file is 3 bytes long, too short for the 8-byte header length");
    write_bytes(path, "", 0);
    CHECK(gr_safetensors_open(path, 0, &err) == NULL);
    CHECK_CONTAINS(err.message, "file is 0 bytes long");
    unsigned char huge[10] = {0xFF, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, huge, sizeof huge);
    CHECK(gr_safetensors_open(path, 0, &err) == NULL);
    CHECK_CONTAINS(err.message, "header length 255 is larger than the file (10 bytes)");
    memset(huge, 0xFF, 8);
    write_bytes(path, huge, sizeof huge);
    CHECK(gr_safetensors_open(path, 0, &err) == NULL);
    CHECK_CONTAINS(err.message, "header length 18446744073709551615 is larger than the file");
    CHECK_STR_EQ(OPEN_ERROR("{}", NULL, 0), "");
    teardown();
}

static void test_rejects_invalid_json(void) {
    setup();
    char message[GR_ERROR_CAPACITY];
    CHECK_STR_EQ(OPEN_ERROR("{\"a\": ", NULL, 0), "invalid JSON header at byte 14: unexpected end of text");
    CHECK_STR_EQ(OPEN_ERROR("{\"a\": 1} x", NULL, 0), "invalid JSON header at byte 17: unexpected text after the JSON value");
    CHECK_STR_EQ(OPEN_ERROR("[]", NULL, 0), "header must be a JSON object, got an array");
    char *deep = malloc(10001);
    memset(deep, '[', 10000);
    deep[10000] = '\0';
    CHECK_CONTAINS(OPEN_ERROR(deep, NULL, 0), "nesting deeper than 64 levels");
    free(deep);
    CHECK_CONTAINS(OPEN_ERROR("{\"a\": \"\x01\"}", NULL, 0), "control character");
    CHECK_CONTAINS(OPEN_ERROR("{\"\xFF\": 1}", NULL, 0), "string is not valid UTF-8");
    teardown();
}

static void test_rejects_missing_or_ill_typed_fields(void) {
    setup();
    char message[GR_ERROR_CAPACITY], header[1000], e[200];
    const unsigned char zeros[16] = {0};
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": 5}", NULL, 0), "tensor 'w' must be an object with dtype, shape and data_offsets, got a number");
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", NULL, 0), "tensor 'w': missing field 'dtype'");
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", NULL, 0), "tensor 'w': missing field 'shape'");
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", zeros, 4), "tensor 'w': missing field 'data_offsets'");
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": {\"dtype\": 1, \"shape\": [1], \"data_offsets\": [0, 4]}}", NULL, 0),
                 "tensor 'w': field 'dtype' must be a string");
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", NULL, 0),
                 "tensor 'w': field 'shape' must be an array of integers");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[1.5]", 0, 4));
    CHECK_STR_EQ(OPEN_ERROR(header, NULL, 0), "tensor 'w': field 'shape' must be an array of integers, found a number 1.5");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[\"2\"]", 0, 8));
    CHECK_STR_EQ(OPEN_ERROR(header, NULL, 0), "tensor 'w': field 'shape' must be an array of integers, found a string \"2\"");
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", NULL, 0),
                 "tensor 'w': field 'data_offsets' must be an array of two integers [begin, end]");
    CHECK_CONTAINS(OPEN_ERROR("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.5]}}", NULL, 0),
                   "field 'data_offsets' must be");
    CHECK_STR_EQ(OPEN_ERROR("{\"w\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", NULL, 0),
                 "tensor 'w': field 'dtype' appears more than once");
    CHECK_STR_EQ(OPEN_ERROR("{\"__metadata__\": {\"a\": 1}}", NULL, 0), "'__metadata__' entry 'a' must be a string, got a number");
    CHECK_STR_EQ(OPEN_ERROR("{\"__metadata__\": []}", NULL, 0), "'__metadata__' must be an object of strings, got an array");
    CHECK_STR_EQ(OPEN_ERROR("{\"__metadata__\": {\"a\": \"x\", \"a\": \"y\"}}", NULL, 0), "'__metadata__' entry 'a' appears more than once");
    /* Integral floats are integers, as in JSON.swift. */
    sprintf(header, "{%s}", entry(e, "w", "I32", "[1.0, 2e0]", 0, 8));
    CHECK_STR_EQ(OPEN_ERROR(header, zeros, 8), "");
    /* A name this C reader cannot represent. */
    CHECK_STR_EQ(OPEN_ERROR("{\"a\\u0000b\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}}", NULL, 0),
                 "tensor 'a\\x00b': the name contains a NUL character, which this reader does not support");
    teardown();
}

static void test_rejects_unknown_dtypes_and_bad_shapes(void) {
    setup();
    char message[GR_ERROR_CAPACITY], header[1000], e[200];
    const unsigned char zeros[8] = {0};
    sprintf(header, "{%s}", entry(e, "w", "Q4", "[1]", 0, 1));
    CHECK_STR_EQ(OPEN_ERROR(header, zeros, 1), "tensor 'w': unsupported dtype 'Q4' (supported: F32, F64, I32, I64, BOOL, F16, BF16)");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[2, -1]", 0, 0));
    CHECK_STR_EQ(OPEN_ERROR(header, NULL, 0), "tensor 'w': shape has a negative dimension -1");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[1099511627776, 2]", 0, 0));
    CHECK_STR_EQ(OPEN_ERROR(header, NULL, 0), "tensor 'w': shape [1099511627776, 2] has more than 2^40 elements");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[9223372036854775807, 9223372036854775807]", 0, 0));
    CHECK_CONTAINS(OPEN_ERROR(header, NULL, 0), "more than 2^40");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[0, 2199023255552]", 0, 0));
    CHECK_CONTAINS(OPEN_ERROR(header, NULL, 0), "more than 2^40"); /* as TensorType.checkedElementCount */
    sprintf(header, "{%s}", entry(e, "w", "F32", "[0, 1099511627776]", 0, 0));
    CHECK_STR_EQ(OPEN_ERROR(header, NULL, 0), "");
    teardown();
}

static void test_rejects_size_and_offset_problems(void) {
    setup();
    char message[GR_ERROR_CAPACITY], header[1000], e[200];
    const unsigned char zeros[8] = {0};
    sprintf(header, "{%s}", entry(e, "w", "F32", "[2]", 0, 4));
    CHECK_STR_EQ(OPEN_ERROR(header, zeros, 4), "tensor 'w': data_offsets [0, 4] hold 4 bytes but F32 [2] needs 8");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[2]", 0, 8));
    CHECK_STR_EQ(OPEN_ERROR(header, zeros, 4), "tensor 'w': data_offsets [0, 8] run past the end of the data buffer (4 bytes)");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[1]", 8, 4));
    CHECK_STR_EQ(OPEN_ERROR(header, zeros, 4), "tensor 'w': data_offsets [8, 4] must satisfy 0 <= begin <= end");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[1]", -4, 0));
    CHECK_CONTAINS(OPEN_ERROR(header, NULL, 0), "must satisfy 0 <= begin <= end");
    sprintf(header, "{%s}", entry(e, "w", "F32", "[1]", 9223372036854775800LL, 9223372036854775804LL));
    CHECK_CONTAINS(OPEN_ERROR(header, NULL, 0), "run past the end");
    teardown();
}

static void test_rejects_overlaps_holes_and_trailing_bytes(void) {
    setup();
    char message[GR_ERROR_CAPACITY], header[1000], a[200], b[200];
    const unsigned char eight[8] = {0};
    sprintf(header, "{%s, %s}", entry(a, "a", "F32", "[2]", 0, 8), entry(b, "b", "F32", "[1]", 4, 8));
    CHECK_STR_EQ(OPEN_ERROR(header, eight, 8), "tensor 'b': data_offsets [4, 8] overlap those of tensor 'a', which end at 8");
    sprintf(header, "{%s, %s}", entry(a, "a", "F32", "[1]", 0, 4), entry(b, "b", "I16", "[0]", 0, 0));
    CHECK_CONTAINS(OPEN_ERROR(header, eight, 8), "unsupported dtype 'I16'");
    sprintf(header, "{%s, %s}", entry(a, "a", "F32", "[1]", 0, 4), entry(b, "b", "BOOL", "[2]", 6, 8));
    CHECK_STR_EQ(OPEN_ERROR(header, eight, 8), "bytes [4, 6) of the data buffer belong to no tensor (a hole before tensor 'b')");
    sprintf(header, "{%s}", entry(a, "a", "F32", "[1]", 4, 8));
    CHECK_CONTAINS(OPEN_ERROR(header, eight, 8), "bytes [0, 4) of the data buffer belong to no tensor");
    sprintf(header, "{%s}", entry(a, "a", "F32", "[1]", 0, 4));
    CHECK_STR_EQ(OPEN_ERROR(header, eight, 8), "bytes [4, 8) at the end of the data buffer belong to no tensor");
    /* Empty tensors may sit anywhere, also at the same offset. */
    sprintf(header, "{%s, %s, \"c\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", entry(a, "a", "F32", "[0]", 4, 4),
            entry(b, "b", "I64", "[0, 5]", 4, 4));
    CHECK_STR_EQ(OPEN_ERROR(header, eight, 8), "tensor 'a': data_offsets [4, 4] overlap those of tensor 'c', which end at 8");
    sprintf(header, "{%s, %s, \"c\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", entry(a, "a", "F32", "[0]", 8, 8),
            entry(b, "b", "I64", "[0, 5]", 8, 8));
    CHECK_STR_EQ(OPEN_ERROR(header, eight, 8), "");
    teardown();
}

static void test_rejects_duplicate_names_and_bad_booleans(void) {
    setup();
    char message[GR_ERROR_CAPACITY], header[1000], a[200], b[200];
    const unsigned char eight[8] = {0};
    sprintf(header, "{%s, %s}", entry(a, "a", "F32", "[1]", 0, 4), entry(b, "a", "F32", "[1]", 4, 8));
    CHECK_STR_EQ(OPEN_ERROR(header, eight, 8), "tensor name 'a' appears more than once in the header");
    sprintf(header, "{%s}", entry(a, "m", "BOOL", "[3]", 0, 3));
    const unsigned char bools[3] = {1, 0, 2};
    CHECK_STR_EQ(OPEN_ERROR(header, bools, 3), "tensor 'm': BOOL element 2 is 2, not 0 or 1");
    CHECK_STR_EQ(OPEN_ERROR("{\"__metadata__\": {}, \"__metadata__\": {}}", NULL, 0),
                 "tensor name '__metadata__' appears more than once in the header");
    teardown();
}

static void test_reading_a_missing_file_names_it(void) {
    gr_error err;
    CHECK(gr_safetensors_open("/nonexistent/granule.safetensors", 0, &err) == NULL);
    CHECK_STR_EQ(err.message, "/nonexistent/granule.safetensors: cannot open: No such file or directory");
    CHECK(gr_safetensors_open("/tmp", 0, &err) == NULL);
    CHECK_STR_EQ(err.message, "/tmp: cannot read: Is a directory");
}

/* A good file of a few tensors, as bytes. */
static unsigned char *good_file(size_t *length) {
    float w[6] = {1.5f, -2, 0, 4, -0.5f, 3.25f};
    int64_t s23[] = {2, 3}, s4[] = {4}, s2[] = {2};
    uint8_t mask[4] = {1, 0, 0, 1};
    int32_t ids[2] = {5, -6};
    const gr_st_write_tensor tensors[] = {
        {"w", GR_ST_F32, 2, s23, w}, {"mask", GR_ST_BOOL, 1, s4, mask}, {"ids", GR_ST_I32, 1, s2, ids}};
    const gr_st_metadata metadata[] = {{"k", "v"}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(path, tensors, 3, metadata, 1, &err), 0);
    return read_bytes(path, length);
}

static void test_crc_mismatch_is_detected(void) {
    setup();
    size_t length;
    unsigned char *bytes = good_file(&length);
    gr_error err;
    /* Flip one bit of the data buffer (the last byte is data: ids[1]). */
    bytes[length - 1] ^= 0x10;
    write_bytes(path, bytes, length);
    CHECK(gr_safetensors_open(path, 0, &err) == NULL);
    CHECK_CONTAINS(err.message, ": checkpoint is corrupt: CRC mismatch (the header says ");
    /* Skipping the check opens it (the caller asked for it). */
    gr_safetensors *file = gr_safetensors_open(path, GR_ST_SKIP_CRC, &err);
    CHECK(file != NULL);
    gr_safetensors_close(file);
    /* A malformed checksum is corruption too. */
    bytes[length - 1] ^= 0x10;
    char *crc = strstr((char *)bytes + 8, "granule_crc32\":\"");
    CHECK(crc != NULL);
    if (crc != NULL) crc[16] = 'X';
    write_bytes(path, bytes, length);
    CHECK(gr_safetensors_open(path, GR_ST_SKIP_CRC, &err) == NULL);
    CHECK_CONTAINS(err.message, "checkpoint is corrupt: '__metadata__' entry 'granule_crc32' is 'X");
    CHECK_CONTAINS(err.message, "not 8 lowercase hex digits");
    free(bytes);
    teardown();
}

static void test_corrupted_files_are_errors_never_crashes(void) {
    setup();
    size_t length;
    unsigned char *good = good_file(&length);
    gr_error err;
    int opened = 0;
    for (size_t cut = 0; cut < length; cut++) {
        write_bytes(path, good, cut);
        gr_safetensors *file = gr_safetensors_open(path, 0, &err);
        opened += file != NULL;
        gr_safetensors_close(file);
    }
    CHECK_EQ(opened, 0); /* every truncation is an error */
    const unsigned char replacements[] = {0x00, 0x01, 0x22, 0x2C, 0x2D, 0x30, 0x39, 0x5B, 0x5D, 0x7B, 0x7D, 0xFF};
    unsigned char *copy = malloc(length);
    int data_accepted = 0;
    for (size_t i = 0; i < length; i++) {
        for (size_t r = 0; r < sizeof replacements; r++) {
            memcpy(copy, good, length);
            if (copy[i] == replacements[r]) continue;
            copy[i] = replacements[r];
            write_bytes(path, copy, length);
            gr_safetensors *file = gr_safetensors_open(path, 0, &err);
            if (file != NULL) data_accepted++;
            gr_safetensors_close(file);
        }
    }
    /* The CRC catches every change of the data buffer; header changes that keep the header valid
     * (e.g. a digit of "k": "v") may open. */
    printf("       %d of %zu single-byte mutations opened\n", data_accepted, length * sizeof replacements);
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--) header_length = header_length << 8 | good[i];
    for (size_t i = 8 + (size_t)header_length; i < length; i++) {
        memcpy(copy, good, length);
        copy[i] ^= 0x01;
        write_bytes(path, copy, length);
        gr_safetensors *file = gr_safetensors_open(path, 0, &err);
        CHECK(file == NULL);
        gr_safetensors_close(file);
    }
    free(copy);
    free(good);
    teardown();
}

/* ---- writing -------------------------------------------------------------------------------------- */

static void test_write_is_atomic_and_leaves_no_temporary_file(void) {
    setup();
    float one = 1, three = 3;
    gr_st_write_tensor first = {"w", GR_ST_F32, 0, NULL, &one};
    gr_st_write_tensor second = {"only", GR_ST_F32, 0, NULL, &three};
    gr_error err;
    const gr_st_metadata step = {"step", "1"};
    CHECK_EQ(gr_safetensors_write(path, &first, 1, &step, 1, &err), 0);
    CHECK_EQ(gr_safetensors_write(path, &second, 1, NULL, 0, &err), 0); /* overwriting replaces the file whole */
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    CHECK(file != NULL && gr_safetensors_count(file) == 1 && gr_safetensors_find(file, "only") != NULL);
    CHECK(file != NULL && gr_safetensors_metadata_find(file, "step") == NULL);
    gr_safetensors_close(file);
    CHECK_EQ(count_entries(directory), 1);
    /* A relative path in the current directory works too. */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_EQ(chdir(directory), 0);
    CHECK_EQ(gr_safetensors_write("relative.safetensors", &first, 1, NULL, 0, &err), 0);
    CHECK_EQ(chdir(cwd), 0);
    CHECK_EQ(count_entries(directory), 2);
    teardown();
}

/* Whether path holds exactly the scalar f32 `value` under name "w". */
static bool holds_w(float value) {
    gr_error err;
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    bool ok = file != NULL && gr_safetensors_count(file) == 1 && gr_safetensors_find(file, "w") != NULL &&
              *(const float *)gr_safetensors_find(file, "w")->data == value;
    gr_safetensors_close(file);
    return ok;
}

static void test_failed_writes_leave_the_old_file_and_no_temporary(void) {
    setup();
    float one = 1, two = 2;
    gr_st_write_tensor w = {"w", GR_ST_F32, 0, NULL, &one};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(path, &w, 1, NULL, 0, &err), 0);

    /* Refused before writing anything: duplicate names, reserved names and keys. */
    gr_st_write_tensor twice[2] = {{"w", GR_ST_F32, 0, NULL, &two}, {"w", GR_ST_F32, 0, NULL, &two}};
    CHECK(gr_safetensors_write(path, twice, 2, NULL, 0, &err) != 0);
    char want[800];
    snprintf(want, sizeof want, "%s: tensor name 'w' is given more than once", path);
    CHECK_STR_EQ(err.message, want);
    gr_st_write_tensor reserved = {"__metadata__", GR_ST_F32, 0, NULL, &two};
    CHECK(gr_safetensors_write(path, &reserved, 1, NULL, 0, &err) != 0);
    CHECK_CONTAINS(err.message, "'__metadata__' cannot be a tensor name");
    const gr_st_metadata crc = {"granule_crc32", "00000000"};
    CHECK(gr_safetensors_write(path, &w, 1, &crc, 1, &err) != 0);
    CHECK_CONTAINS(err.message, "metadata key 'granule_crc32' is reserved");
    int64_t negative[] = {-1};
    gr_st_write_tensor bad_shape = {"x", GR_ST_F32, 1, negative, &two};
    CHECK(gr_safetensors_write(path, &bad_shape, 1, NULL, 0, &err) != 0);
    CHECK_CONTAINS(err.message, "tensor 'x': shape has a negative dimension -1");
    gr_st_write_tensor bad_utf8 = {"\xFF", GR_ST_F32, 0, NULL, &two};
    CHECK(gr_safetensors_write(path, &bad_utf8, 1, NULL, 0, &err) != 0);
    CHECK_CONTAINS(err.message, "is not valid UTF-8");
    CHECK(holds_w(1));

    /* A directory that does not exist: the error names the path and nothing is created. */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no/such/dir/model.safetensors", directory);
    CHECK(gr_safetensors_write(missing, &w, 1, NULL, 0, &err) != 0);
    CHECK(strncmp(err.message, missing, strlen(missing)) == 0);
    CHECK_CONTAINS(err.message, "No such file or directory");

    /* A directory or a FIFO is refused before anything is written: a rename would replace it. */
    char occupied[700], child[800], fifo[700];
    snprintf(occupied, sizeof occupied, "%s/occupied", directory);
    snprintf(child, sizeof child, "%s/child", occupied);
    mkdir(occupied, 0755);
    mkdir(child, 0755);
    CHECK(gr_safetensors_write(occupied, &w, 1, NULL, 0, &err) != 0);
    CHECK_CONTAINS(err.message, "occupied: is a directory; give a file name");
    CHECK_EQ(count_entries(directory), 2); /* model.safetensors and occupied */
    CHECK_EQ(count_entries(occupied), 1);
    snprintf(fifo, sizeof fifo, "%s/fifo", directory);
    CHECK_EQ(mkfifo(fifo, 0644), 0);
    CHECK(gr_safetensors_write(fifo, &w, 1, NULL, 0, &err) != 0);
    CHECK_CONTAINS(err.message, "fifo: is not a regular file");
    unlink(fifo);

    /* A symbolic link is followed: the file it names is replaced, the link stays. */
    char link_path[700];
    snprintf(link_path, sizeof link_path, "%s/link.safetensors", directory);
    const char *name = strrchr(path, '/') + 1;
    CHECK_EQ(symlink(name, link_path), 0);
    gr_st_write_tensor again = {"w", GR_ST_F32, 0, NULL, &two};
    CHECK_EQ(gr_safetensors_write(link_path, &again, 1, NULL, 0, &err), 0);
    struct stat info;
    CHECK(lstat(link_path, &info) == 0 && S_ISLNK(info.st_mode));
    CHECK(holds_w(2));
    CHECK_EQ(gr_safetensors_write(path, &w, 1, NULL, 0, &err), 0); /* back to w = 1 for the checks below */
    unlink(link_path);

    /* A write that fails midway (the file size limit, as on a full disk) keeps the old file. In a
     * child process, so the limit does not outlive the test. */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {100, 100};
        setrlimit(RLIMIT_FSIZE, &limit);
        static float big[1000]; /* child only */
        int64_t shape[] = {1000};
        gr_st_write_tensor large = {"w", GR_ST_F32, 1, shape, big};
        gr_error child_err;
        int status = gr_safetensors_write(path, &large, 1, NULL, 0, &child_err);
        bool ok = status != 0 && strstr(child_err.message, "cannot write") != NULL && strstr(child_err.message, "File too large") != NULL;
        if (!ok) fprintf(stderr, "    child: %s\n", child_err.message);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(holds_w(1));
    CHECK_EQ(count_entries(directory), 2);
    teardown();
}

void suite_safetensors(void) {
    RUN(test_round_trips_every_dtype_in_the_given_order);
    RUN(test_bool_bytes_are_normalized_on_write);
    RUN(test_reads_tensors_in_offset_order);
    RUN(test_reads_half_precision_as_f32);
    RUN(test_rejects_bad_framing);
    RUN(test_rejects_invalid_json);
    RUN(test_rejects_missing_or_ill_typed_fields);
    RUN(test_rejects_unknown_dtypes_and_bad_shapes);
    RUN(test_rejects_size_and_offset_problems);
    RUN(test_rejects_overlaps_holes_and_trailing_bytes);
    RUN(test_rejects_duplicate_names_and_bad_booleans);
    RUN(test_reading_a_missing_file_names_it);
    RUN(test_crc_mismatch_is_detected);
    RUN(test_corrupted_files_are_errors_never_crashes);
    RUN(test_write_is_atomic_and_leaves_no_temporary_file);
    RUN(test_failed_writes_leave_the_old_file_and_no_temporary);
}
