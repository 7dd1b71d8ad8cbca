/*
 * program_test.c: manifests (good and broken) and binding, calling and writing with the
 * hand-written fake program (fake_program.c).
 */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const char granule_manifest[];
extern gr_entry_fn const granule_entries[];

/* Whether got is want up to float rounding. */
static bool close_to(float got, float want) {
    return fabsf(got - want) <= 1e-6f * (1 + fabsf(want));
}

/* Test scratch state. */
static char directory[512];

static void file_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", directory, name);
}

static const float weight[32] = {0.5f,  -1,    2,    0.25f, 1,     1,    1,     1,     -3,   0.125f, 4,
                                 -0.5f, 0,     0,    0,     0,     1.5f, 2.5f,  -2.5f, 3,    7,      -7,
                                 0.75f, 0.25f, 0.5f, 0.5f,  0.5f,  0.5f, -1,    -2,    -3,   -4};
static const float scale[4] = {1, -1, 0.5f, 2};
static const int64_t ids[6] = {1, 7, 0, 4, 4, 2};

/* The expected loss of @loss_grad in double precision. */
static double expected_loss(const int64_t *token_ids) {
    double loss = 0;
    for (int t = 0; t < 6; t++) {
        for (int j = 0; j < 4; j++) loss += (double)weight[token_ids[t] * 4 + j] * scale[j] / 6;
    }
    return loss;
}

/* Writes weights.safetensors (weight as `weight_dtype`, with shape `rows`×4) and batch.safetensors. */
static void write_inputs(gr_st_dtype weight_dtype, int64_t rows, const int64_t *token_ids) {
    char weights_path[700], batch_path[700];
    file_path(weights_path, sizeof weights_path, "weights.safetensors");
    file_path(batch_path, sizeof batch_path, "batch.safetensors");
    uint16_t half[32];
    const void *weight_data = weight;
    if (weight_dtype == GR_ST_BF16) {
        /* These values are exact in bfloat16: the upper half of their bits. */
        for (int i = 0; i < 32; i++) {
            uint32_t bits;
            memcpy(&bits, &weight[i], 4);
            half[i] = (uint16_t)(bits >> 16);
        }
        weight_data = half;
    } else if (weight_dtype == GR_ST_F16) {
        for (int i = 0; i < 32; i++) {
            /* exact small values: sign, exponent rebias, 10 mantissa bits */
            uint32_t bits;
            memcpy(&bits, &weight[i], 4);
            uint32_t sign = bits >> 31, exponent = (bits >> 23) & 0xFF, mantissa = bits & 0x7FFFFF;
            half[i] = exponent == 0 ? (uint16_t)(sign << 15) : (uint16_t)(sign << 15 | (exponent - 112) << 10 | mantissa >> 13);
        }
        weight_data = half;
    }
    int64_t weight_shape[2] = {rows, 4}, scale_shape[1] = {4}, ids_shape[2] = {2, 3};
    const gr_st_write_tensor weights[2] = {{"model.shared.weight", weight_dtype, 2, weight_shape, weight_data},
                                           {"adapter.scale", GR_ST_F32, 1, scale_shape, scale}};
    const gr_st_write_tensor batch[1] = {{"input_ids", GR_ST_I64, 2, ids_shape, token_ids}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(weights_path, weights, 2, NULL, 0, &err), 0);
    CHECK_EQ(gr_safetensors_write(batch_path, batch, 1, NULL, 0, &err), 0);
}

typedef struct opened {
    gr_safetensors *files[2];
    gr_program *program;
} opened;

static void open_inputs(opened *o) {
    char weights_path[700], batch_path[700];
    file_path(weights_path, sizeof weights_path, "weights.safetensors");
    file_path(batch_path, sizeof batch_path, "batch.safetensors");
    gr_error err;
    o->files[0] = gr_safetensors_open(weights_path, 0, &err);
    o->files[1] = gr_safetensors_open(batch_path, 0, &err);
    CHECK(o->files[0] != NULL && o->files[1] != NULL);
    o->program = gr_program_load(granule_manifest, granule_entries, &err);
    CHECK(o->program != NULL);
}

static void close_inputs(opened *o) {
    gr_safetensors_close(o->files[0]);
    gr_safetensors_close(o->files[1]);
    gr_program_free(o->program);
}

/* ---- manifests ----------------------------------------------------------------------------------- */

static void test_loads_the_fake_manifest(void) {
    gr_error err;
    gr_program *program = gr_program_load(granule_manifest, granule_entries, &err);
    CHECK(program != NULL);
    if (program == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        return;
    }
    CHECK_EQ(gr_program_function_count(program), 3);
    const gr_function *fn = gr_program_find(program, "loss_grad");
    CHECK(fn != NULL && fn == gr_program_function(program, 0) && fn == gr_program_step_function(program));
    CHECK(fn->entry == granule_entries[0] && fn->index == 0 && fn->arena_bytes == 96);
    CHECK_EQ(fn->param_count, 3);
    CHECK_EQ(fn->result_count, 2);
    CHECK_STR_EQ(fn->params[1].name, "model.shared.weight");
    CHECK(fn->params[1].dtype == GR_F32 && fn->params[1].role == GR_ROLE_FROZEN);
    CHECK(fn->params[1].rank == 2 && fn->params[1].shape[0] == 8 && fn->params[1].shape[1] == 4);
    CHECK(fn->params[1].count == 32 && fn->params[1].bytes == 128);
    CHECK(fn->results[0].rank == 0 && fn->results[0].count == 1 && fn->results[0].writes == -1);
    const gr_function *sgd = gr_program_find(program, "sgd");
    CHECK(sgd != NULL && sgd->results[0].writes == 0 && sgd->results[1].writes == 1);
    CHECK(gr_program_find(program, "nope") == NULL);
    CHECK(gr_program_function(program, 3) == NULL && gr_program_function(program, -1) == NULL);
    CHECK_EQ(gr_program_op_count(program), 2);
    CHECK_STR_EQ(gr_program_op(program, 1), "fake.tir:9:3: div");
    CHECK(gr_program_op(program, 2) == NULL && gr_program_op(program, -1) == NULL);
    char type[64];
    gr_value_spec_type(&fn->params[0], type, sizeof type);
    CHECK_STR_EQ(type, "i64[2,3]");
    gr_value_spec_type(&fn->results[0], type, sizeof type);
    CHECK_STR_EQ(type, "f32[]");
    gr_program_free(program);
}

/* Loads `manifest`, which must fail with exactly `want`. */
static void expect_manifest_error(const char *manifest, const char *want, int line) {
    gr_error err;
    gr_program *program = gr_program_load(manifest, NULL, &err);
    if (program != NULL) {
        test_check(false, "manifest loaded", __FILE__, line);
        gr_program_free(program);
        return;
    }
    test_check_str(err.message, want, "manifest error", __FILE__, line);
}

#define MANIFEST_ERROR(manifest, want) expect_manifest_error((manifest), (want), __LINE__)

#define FN(params, results) \
    "{\"version\": 1, \"ops\": [], \"functions\": [{\"name\": \"f\", \"arena_bytes\": 0, \"params\": [" params "], \"results\": [" results "]}]}"
#define P(name, dtype, shape, role) "{\"name\": \"" name "\", \"dtype\": \"" dtype "\", \"shape\": " shape ", \"role\": \"" role "\"}"
#define R(name, dtype, shape, writes) "{\"name\": \"" name "\", \"dtype\": \"" dtype "\", \"shape\": " shape ", \"writes\": " writes "}"

static void test_rejects_broken_manifests(void) {
    MANIFEST_ERROR("{\"version\": 1, \"ops\": ", "manifest: invalid JSON at byte 22: unexpected end of text");
    MANIFEST_ERROR("[]", "manifest: expected an object, got an array");
    MANIFEST_ERROR("{\"version\": 2, \"functions\": [], \"ops\": []}", "manifest: version: this runtime reads version 1, got 2");
    MANIFEST_ERROR("{\"version\": 1, \"ops\": []}", "manifest: missing field 'functions'");
    MANIFEST_ERROR("{\"version\": 1, \"functions\": [], \"ops\": [], \"extra\": 0}", "manifest: unknown field 'extra'");
    MANIFEST_ERROR("{\"version\": 1, \"version\": 1, \"functions\": [], \"ops\": []}", "manifest: field 'version' appears more than once");
    MANIFEST_ERROR("{\"version\": 1, \"functions\": [], \"ops\": [3]}", "manifest: ops[0]: expected a string, got a number");
    MANIFEST_ERROR("{\"version\": 1, \"functions\": [], \"ops\": [], \"step_function\": \"loss_grad\"}",
                   "manifest: step_function: no function is called 'loss_grad'");
    MANIFEST_ERROR("{\"version\": 1, \"functions\": [{}], \"ops\": []}", "manifest: functions[0]: missing field 'name'");
    MANIFEST_ERROR(FN(P("x", "f16", "[2]", "input"), ""),
                   "manifest: functions[0].params[0].dtype: expected one of f32, f64, i32, i64, i1, got \"f16\"");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "weight"), ""),
                   "manifest: functions[0].params[0].role: expected one of input, frozen, trainable, state, got \"weight\"");
    MANIFEST_ERROR(FN(P("x", "f32", "[2, -1]", "input"), ""), "manifest: functions[0].params[0].shape[1]: negative dimension -1");
    MANIFEST_ERROR(FN(P("x", "f32", "[2, 1.5]", "input"), ""),
                   "manifest: functions[0].params[0].shape[1]: expected an integer, got a number 1.5");
    MANIFEST_ERROR(FN(P("x", "f32", "[1048576, 1048577]", "input"), ""),
                   "manifest: functions[0].params[0].shape: more than 2^40 elements");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "input") "," P("x", "f32", "[2]", "input"), ""),
                   "manifest: functions[0].params[1].name: 'x' is also the name of params[0]");
    MANIFEST_ERROR(FN("", R("y", "f32", "[]", "-2")), "manifest: functions[0].results[0].writes: expected -1 or a parameter index, got -2");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "input"), R("y", "f32", "[2]", "1")),
                   "manifest: functions[0].results[0].writes: parameter index 1 is out of range [0, 1)");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "frozen"), R("y", "f32", "[2]", "0")),
                   "manifest: functions[0].results[0].writes: parameter 'x' is frozen; only trainable and state parameters can be written");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "state"), R("y", "f32", "[3]", "0")),
                   "manifest: functions[0].results[0].writes: result 'y' is f32[3] but parameter 'x' is f32[2]");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "state"), R("y", "f32", "[2]", "0") "," R("z", "f32", "[2]", "0")),
                   "manifest: functions[0].results[1].writes: parameter 'x' is already written by result 'y'");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "state"), "{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [2], \"writes\": 0, \"in_place\": 1}"),
                   "manifest: functions[0].results[0].in_place: expected true or false, got a number");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "state"), "{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [2], \"writes\": -1, \"in_place\": true}"),
                   "manifest: functions[0].results[0].in_place: a result that writes no parameter cannot be in place");
    MANIFEST_ERROR(FN("{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [2], \"role\": \"frozen\", \"released\": \"yes\"}", ""),
                   "manifest: functions[0].params[0].released: expected true or false, got a string");
    MANIFEST_ERROR(FN(P("x", "f32", "[2]", "input"), "{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [], \"writes\": -1, \"role\": \"input\"}"),
                   "manifest: functions[0].results[0]: unknown field 'role'");
    MANIFEST_ERROR("{\"version\": 1, \"ops\": [], \"functions\": [{\"name\": \"f\", \"arena_bytes\": -1, \"params\": [], \"results\": []}]}",
                   "manifest: functions[0].arena_bytes: negative size -1");
    MANIFEST_ERROR("{\"version\": 1, \"ops\": [], \"functions\": [{\"name\": \"f\", \"arena_bytes\": 0, \"params\": [], \"results\": []},"
                   "{\"name\": \"f\", \"arena_bytes\": 0, \"params\": [], \"results\": []}]}",
                   "manifest: functions[1].name: function 'f' is also functions[0]");
    /* Good: an empty program, step_function null. */
    gr_error err;
    gr_program *program = gr_program_load("{\"version\": 1, \"functions\": [], \"ops\": [], \"step_function\": null}", NULL, &err);
    CHECK(program != NULL && gr_program_step_function(program) == NULL);
    gr_program_free(program);
}

/* ---- binding and calling --------------------------------------------------------------------------- */

static void test_binds_calls_and_writes_results(void) {
    make_temp_dir(directory, sizeof directory);
    write_inputs(GR_ST_F32, 8, ids);
    opened o;
    open_inputs(&o);
    const gr_function *fn = gr_program_step_function(o.program);
    gr_error err;
    gr_binding *b = gr_binding_create(fn, o.files, 2, 0, &err);
    CHECK(b != NULL);
    if (b == NULL) {
        fprintf(stderr, "    %s\n", err.message);
        close_inputs(&o);
        remove_tree(directory);
        return;
    }
    /* Aligned F32 data is used in place, straight from the mapping. */
    CHECK(gr_binding_param(b, 1) == gr_safetensors_find(o.files[0], "model.shared.weight")->data);
    CHECK_EQ((uintptr_t)gr_binding_result(b, 0) % 64, 0);
    gr_runtime *rt = gr_runtime_create(2);
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    float loss = *(const float *)gr_binding_result(b, 0);
    CHECK(close_to(loss, (float)expected_loss(ids)));
    const float *grad = gr_binding_result(b, 1);
    for (int j = 0; j < 4; j++) {
        double g = 0;
        for (int t = 0; t < 6; t++) g += weight[ids[t] * 4 + j] / 6.0;
        CHECK(close_to(grad[j], (float)g));
    }
    char out[700];
    file_path(out, sizeof out, "out.safetensors");
    CHECK_EQ(gr_binding_write_results(b, out, &err), 0);
    gr_safetensors *written = gr_safetensors_open(out, 0, &err);
    CHECK(written != NULL && gr_safetensors_count(written) == 2);
    if (written != NULL) {
        const gr_st_tensor *t = gr_safetensors_find(written, "loss");
        CHECK(t != NULL && t->rank == 0 && t->dtype == GR_ST_F32 && *(const float *)t->data == loss);
        t = gr_safetensors_find(written, "grad.adapter.scale");
        CHECK(t != NULL && t->rank == 1 && memcmp(t->data, grad, 16) == 0);
    }
    gr_safetensors_close(written);
    /* Calling again gives the same bits. */
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    CHECK(*(const float *)gr_binding_result(b, 0) == loss);
    CHECK(gr_binding_result(b, 2) == NULL && gr_binding_param(b, 3) == NULL);
    gr_binding_free(b);
    gr_runtime_destroy(rt);
    close_inputs(&o);
    remove_tree(directory);
}

/* @step(x: f32[4] input, w: f32[4] trainable) -> (w: f32[4] writes %w in_place, total: f32[]):
 * w ← 2·w + x, element by element (each w_i read just before it is written), total = Σ new w. */
static int32_t double_and_add(void *const *args, void *arena, gr_runtime *rt) {
    (void)arena;
    (void)rt;
    const float *x = args[0], *w = args[1];
    float *w_new = args[2], *total = args[3];
    for (int i = 0; i < 4; i++) {
        w_new[i] = 2 * w[i] + x[i];
        *total += w_new[i]; /* relies on the zero-filled result */
    }
    return 0;
}

static void test_results_in_place_share_their_parameters_buffer(void) {
    static gr_entry_fn const entries[] = {double_and_add};
    const char *manifest = FN(P("x", "f32", "[4]", "input") "," P("w", "f32", "[4]", "trainable"),
                              "{\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [4], \"writes\": 1, \"in_place\": true},"
                              R("total", "f32", "[]", "-1"));
    gr_error err;
    gr_program *program = gr_program_load(manifest, entries, &err);
    CHECK(program != NULL);
    if (program == NULL) return;
    const gr_function *fn = gr_program_function(program, 0);
    CHECK(fn->results[0].in_place && !fn->results[1].in_place);

    make_temp_dir(directory, sizeof directory);
    char path[700];
    file_path(path, sizeof path, "params.safetensors");
    static const float x[4] = {1, 2, 3, 4}, w[4] = {0.5f, -1, 0, 8};
    int64_t shape[1] = {4};
    const gr_st_write_tensor tensors[2] = {{"x", GR_ST_F32, 1, shape, x}, {"w", GR_ST_F32, 1, shape, w}};
    CHECK_EQ(gr_safetensors_write(path, tensors, 2, NULL, 0, &err), 0);
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    CHECK(file != NULL);
    gr_runtime *rt = gr_runtime_create(1);

    /* Without the flag: a result buffer of its own; the parameter stays in the read-only mapping. */
    gr_binding *b = gr_binding_create(fn, &file, 1, 0, &err);
    CHECK(b != NULL);
    CHECK(gr_binding_param(b, 1) == gr_safetensors_find(file, "w")->data);
    CHECK(gr_binding_result(b, 0) != gr_binding_param(b, 1) && !gr_binding_result_in_place(b, 0));
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    const float *out = gr_binding_result(b, 0);
    CHECK(out[0] == 2 && out[1] == 0 && out[2] == 3 && out[3] == 20);
    CHECK(*(const float *)gr_binding_result(b, 1) == 25);
    gr_binding_free(b);

    /* With it: the parameter is an owned copy, the result is that copy, and each call updates it. */
    b = gr_binding_create(fn, &file, 1, GR_BIND_RESULTS_IN_PLACE, &err);
    CHECK(b != NULL);
    CHECK(gr_binding_param(b, 1) != gr_safetensors_find(file, "w")->data);
    CHECK(gr_binding_result(b, 0) == gr_binding_param(b, 1));
    CHECK(gr_binding_result_in_place(b, 0) && !gr_binding_result_in_place(b, 1) && !gr_binding_result_in_place(b, 2));
    for (int call = 0; call < 2; call++) {
        gr_binding_clear_results(b);
        CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    }
    const float *updated = gr_binding_param(b, 1);
    CHECK(updated[0] == 5 && updated[1] == 2 && updated[2] == 9 && updated[3] == 44); /* 2·(2w + x) + x */
    CHECK(*(const float *)gr_binding_result(b, 1) == 60);                             /* cleared between calls */
    CHECK(((const float *)gr_safetensors_find(file, "w")->data)[3] == 8);             /* the file is untouched */

    /* A parameter set by the caller carries its result along. */
    float mine[4] = {1, 1, 1, 1};
    CHECK_EQ(gr_binding_set_param(b, 1, mine, &err), 0);
    CHECK(gr_binding_result(b, 0) == mine);
    gr_binding_clear_results(b);
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    CHECK(mine[0] == 3 && mine[1] == 4 && mine[2] == 5 && mine[3] == 6);
    gr_binding_free(b);

    /* A parameter left unbound (GR_BIND_ALLOW_MISSING) gets its result with gr_binding_set_param. */
    b = gr_binding_create(fn, NULL, 0, GR_BIND_ALLOW_MISSING | GR_BIND_RESULTS_IN_PLACE, &err);
    CHECK(b != NULL && gr_binding_result(b, 0) == NULL);
    float input[4] = {0, 0, 0, 1}, state[4] = {1, 2, 3, 4};
    CHECK_EQ(gr_binding_set_param(b, 0, input, &err), 0);
    CHECK_EQ(gr_binding_set_param(b, 1, state, &err), 0);
    CHECK(gr_binding_result(b, 0) == state);
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    CHECK(state[0] == 2 && state[3] == 9);
    gr_binding_free(b);

    gr_runtime_destroy(rt);
    gr_safetensors_close(file);
    gr_program_free(program);
    remove_tree(directory);
}

/* @sum(w: f32[RELEASE_COUNT] frozen) -> (total: f32[]): reads every element of w, then releases it
 * as generated code does after a read whose next read is far away. */
#define RELEASE_COUNT (1 << 20) /* 4 MiB */
static int32_t sum_and_release(void *const *args, void *arena, gr_runtime *rt) {
    (void)arena;
    const float *w = args[0];
    double total = 0;
    for (int64_t i = 0; i < RELEASE_COUNT; i++) total += w[i];
    *(float *)args[1] = (float)total;
    gr_release_param(rt, 0);
    gr_release_param(rt, 1); /* out of range: ignored */
    gr_release_param(rt, -1);
    return 0;
}

/* The resident KiB of the mapping that holds `address` (its Rss line in /proc/self/smaps), or -1. */
static long mapping_rss_kib(const void *address) {
    FILE *smaps = fopen("/proc/self/smaps", "r");
    if (smaps == NULL) return -1;
    char line[512];
    bool inside = false;
    long rss = -1;
    while (rss < 0 && fgets(line, sizeof line, smaps) != NULL) {
        unsigned long begin, end;
        if (sscanf(line, "%lx-%lx ", &begin, &end) == 2 && strchr(line, ':') != NULL && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)address >= begin && (uintptr_t)address < end;
        } else if (inside && strncmp(line, "Rss:", 4) == 0) {
            rss = strtol(line + 4, NULL, 10);
        }
    }
    fclose(smaps);
    return rss;
}

static void test_mapped_parameters_are_released_between_reads(void) {
    static gr_entry_fn const entries[] = {sum_and_release};
    const char *manifest = FN(P("w", "f32", "[1048576]", "frozen"), R("total", "f32", "[]", "-1"));
    gr_error err;
    gr_program *program = gr_program_load(manifest, entries, &err);
    CHECK(program != NULL);
    if (program == NULL) return;
    const gr_function *fn = gr_program_function(program, 0);

    make_temp_dir(directory, sizeof directory);
    char path[700];
    file_path(path, sizeof path, "weights.safetensors");
    float *w = gr_aligned_alloc(sizeof(float) * RELEASE_COUNT);
    CHECK(w != NULL);
    if (w == NULL) return;
    double sum = 0;
    for (int64_t i = 0; i < RELEASE_COUNT; i++) sum += w[i] = (float)(i % 1000) * 0.5f;
    const float expected = (float)sum;
    int64_t shape[1] = {RELEASE_COUNT};
    const gr_st_write_tensor tensors[1] = {{"w", GR_ST_F32, 1, shape, w}};
    CHECK_EQ(gr_safetensors_write(path, tensors, 1, NULL, 0, &err), 0);
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    CHECK(file != NULL);
    if (file == NULL) return;
    const gr_st_tensor *tensor = gr_safetensors_find(file, "w");
    gr_runtime *rt = gr_runtime_create(1);
    gr_release_param(rt, 0); /* outside a call: nothing to release, no crash */

    /* Kept: after a call the whole tensor is resident. */
    gr_binding *b = gr_binding_create(fn, &file, 1, 0, &err);
    CHECK(b != NULL && gr_binding_param(b, 0) == tensor->data);
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    CHECK(*(const float *)gr_binding_result(b, 0) == expected);
    CHECK(mapping_rss_kib(tensor->data) >= 4096);

    /* Asked for: the pages go at once and after each call, and each call maps them again. */
    CHECK_EQ(gr_binding_release_between_uses(b, 0, file, tensor), 1);
    CHECK(mapping_rss_kib(tensor->data) < 64);
    for (int call = 0; call < 2; call++) {
        *(float *)gr_binding_result(b, 0) = 0;
        CHECK_EQ(gr_binding_call(rt, b, &err), 0);
        CHECK(*(const float *)gr_binding_result(b, 0) == expected);
        CHECK(mapping_rss_kib(tensor->data) < 64);
    }

    /* Memory of the caller's own is never released (MADV_DONTNEED would zero it). */
    CHECK_EQ(gr_binding_set_param(b, 0, w, &err), 0);
    CHECK_EQ(gr_binding_release_between_uses(b, 0, file, tensor), 0);
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    CHECK(*(const float *)gr_binding_result(b, 0) == expected && w[RELEASE_COUNT - 1] == 287.5f);
    CHECK_EQ(gr_binding_release_between_uses(b, 1, file, tensor), 0); /* not a parameter */
    gr_binding_free(b);

    /* GR_BIND_RELEASE_MAPPED asks for every parameter bound straight to a mapping. */
    b = gr_binding_create(fn, &file, 1, GR_BIND_RELEASE_MAPPED, &err);
    CHECK(b != NULL);
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    CHECK(*(const float *)gr_binding_result(b, 0) == expected);
    CHECK(mapping_rss_kib(tensor->data) < 64);
    gr_binding_free(b);

    gr_runtime_destroy(rt);
    gr_safetensors_close(file);
    gr_aligned_free(w);
    gr_program_free(program);
    remove_tree(directory);
}

static void test_raised_errors_reach_the_caller_with_the_op(void) {
    make_temp_dir(directory, sizeof directory);
    const int64_t bad[6] = {1, 2, 9, 0, 0, 0};
    write_inputs(GR_ST_F32, 8, bad);
    opened o;
    open_inputs(&o);
    gr_error err;
    gr_binding *b = gr_binding_create(gr_program_step_function(o.program), o.files, 2, 0, &err);
    gr_runtime *rt = gr_runtime_create(1);
    CHECK(gr_binding_call(rt, b, &err) != 0);
    CHECK_STR_EQ(err.message, "fake.tir:4:3: gather: index 9 is out of range [0, 8)");
    CHECK_STR_EQ(gr_error_message(rt), "fake.tir:4:3: gather: index 9 is out of range [0, 8)");
    gr_binding_free(b);
    gr_runtime_destroy(rt);
    close_inputs(&o);
    remove_tree(directory);
}

static void test_binding_errors_name_the_parameter_and_files(void) {
    make_temp_dir(directory, sizeof directory);
    write_inputs(GR_ST_F32, 7, ids); /* wrong shape */
    opened o;
    open_inputs(&o);
    const gr_function *fn = gr_program_step_function(o.program);
    gr_error err;
    char want[2000];
    CHECK(gr_binding_create(fn, o.files, 2, 0, &err) == NULL);
    snprintf(want, sizeof want, "%s: tensor 'model.shared.weight': parameter of function 'loss_grad' needs f32[8,4], got F32 [7, 4]",
             gr_safetensors_path(o.files[0]));
    CHECK_STR_EQ(err.message, want);
    /* Missing: only the batch file given. */
    CHECK(gr_binding_create(fn, o.files + 1, 1, 0, &err) == NULL);
    snprintf(want, sizeof want, "function 'loss_grad': parameter 'model.shared.weight' (f32[8,4], frozen) is in none of: %s",
             gr_safetensors_path(o.files[1]));
    CHECK_STR_EQ(err.message, want);
    CHECK(gr_binding_create(fn, NULL, 0, 0, &err) == NULL);
    CHECK_STR_EQ(err.message, "function 'loss_grad': parameter 'input_ids' (i64[2,3], input) is in none of: (no files given)");
    /* In two files. */
    gr_safetensors *twice[2] = {o.files[1], o.files[1]};
    CHECK(gr_binding_create(fn, twice, 2, GR_BIND_ALLOW_MISSING, &err) == NULL);
    CHECK_CONTAINS(err.message, "function 'loss_grad': parameter 'input_ids' is in both ");
    /* Allowed missing, then bound by hand; calling with one unbound fails cleanly. */
    gr_binding *b = gr_binding_create(fn, o.files + 1, 1, GR_BIND_ALLOW_MISSING, &err);
    CHECK(b != NULL);
    gr_runtime *rt = gr_runtime_create(1);
    CHECK(gr_binding_call(rt, b, &err) != 0);
    CHECK_STR_EQ(err.message, "function 'loss_grad': parameter 'model.shared.weight' is not bound");
    CHECK_EQ(gr_binding_set_param(b, 1, weight, &err), 0);
    CHECK_EQ(gr_binding_set_param(b, 2, scale, &err), 0);
    CHECK(gr_binding_set_param(b, 3, scale, &err) != 0);
    CHECK_STR_EQ(err.message, "function 'loss_grad': parameter index 3 is out of range [0, 3)");
    CHECK_EQ(gr_binding_call(rt, b, &err), 0);
    CHECK(close_to(*(const float *)gr_binding_result(b, 0), (float)expected_loss(ids)));
    gr_binding_free(b);
    gr_runtime_destroy(rt);
    close_inputs(&o);

    /* Wrong dtype: an I32 tensor for the i64 parameter. */
    char batch_path[700];
    file_path(batch_path, sizeof batch_path, "batch.safetensors");
    int32_t narrow[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    gr_st_write_tensor t = {"input_ids", GR_ST_I32, 2, shape, narrow};
    write_inputs(GR_ST_F32, 8, ids);
    CHECK_EQ(gr_safetensors_write(batch_path, &t, 1, NULL, 0, &err), 0);
    open_inputs(&o);
    CHECK(gr_binding_create(gr_program_step_function(o.program), o.files, 2, 0, &err) == NULL);
    snprintf(want, sizeof want, "%s: tensor 'input_ids': parameter of function 'loss_grad' needs i64[2,3], got I32 [2, 3]", batch_path);
    CHECK_STR_EQ(err.message, want);
    close_inputs(&o);
    remove_tree(directory);
}

static void test_half_precision_weights_are_converted(void) {
    const gr_st_dtype dtypes[2] = {GR_ST_F16, GR_ST_BF16};
    for (int d = 0; d < 2; d++) {
        make_temp_dir(directory, sizeof directory);
        write_inputs(dtypes[d], 8, ids);
        opened o;
        open_inputs(&o);
        gr_error err;
        gr_binding *b = gr_binding_create(gr_program_step_function(o.program), o.files, 2, 0, &err);
        CHECK(b != NULL);
        if (b != NULL) {
            const float *converted = gr_binding_param(b, 1);
            CHECK(converted != gr_safetensors_find(o.files[0], "model.shared.weight")->data);
            CHECK_EQ((uintptr_t)converted % 64, 0);
            CHECK(memcmp(converted, weight, sizeof weight) == 0); /* the values are exact in both formats */
            gr_runtime *rt = gr_runtime_create(2);
            CHECK_EQ(gr_binding_call(rt, b, &err), 0);
            CHECK(close_to(*(const float *)gr_binding_result(b, 0), (float)expected_loss(ids)));
            gr_runtime_destroy(rt);
        }
        gr_binding_free(b);
        close_inputs(&o);
        remove_tree(directory);
    }
}

static void test_misaligned_data_is_copied(void) {
    make_temp_dir(directory, sizeof directory);
    char weights_path[700];
    file_path(weights_path, sizeof weights_path, "weights.safetensors");
    write_inputs(GR_ST_F32, 8, ids);
    /* A BOOL [2] first puts the F32 tensors at odd offsets. */
    uint8_t pad[2] = {0, 1};
    int64_t pad_shape[1] = {2}, weight_shape[2] = {8, 4}, scale_shape[1] = {4};
    const gr_st_write_tensor tensors[3] = {{"pad", GR_ST_BOOL, 1, pad_shape, pad},
                                           {"model.shared.weight", GR_ST_F32, 2, weight_shape, weight},
                                           {"adapter.scale", GR_ST_F32, 1, scale_shape, scale}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(weights_path, tensors, 3, NULL, 0, &err), 0);
    opened o;
    open_inputs(&o);
    const gr_st_tensor *t = gr_safetensors_find(o.files[0], "model.shared.weight");
    CHECK((uintptr_t)t->data % 4 != 0);
    gr_binding *b = gr_binding_create(gr_program_step_function(o.program), o.files, 2, 0, &err);
    CHECK(b != NULL);
    if (b != NULL) {
        CHECK(gr_binding_param(b, 1) != t->data && (uintptr_t)gr_binding_param(b, 1) % 64 == 0);
        CHECK(memcmp(gr_binding_param(b, 1), weight, sizeof weight) == 0);
        gr_runtime *rt = gr_runtime_create(1);
        CHECK_EQ(gr_binding_call(rt, b, &err), 0);
        CHECK(close_to(*(const float *)gr_binding_result(b, 0), (float)expected_loss(ids)));
        gr_runtime_destroy(rt);
    }
    gr_binding_free(b);
    close_inputs(&o);
    remove_tree(directory);
}

static void test_every_dtype_binds(void) {
    make_temp_dir(directory, sizeof directory);
    char inputs_path[700];
    file_path(inputs_path, sizeof inputs_path, "inputs.safetensors");
    uint8_t mask[5] = {1, 0, 1, 1, 0};
    int32_t counts[5] = {10, -20, 30, 41, 7};
    double x[2] = {0.1, 0.2};
    int64_t seed = 77;
    int32_t divisor = 3;
    int64_t s5[1] = {5}, s2[1] = {2};
    gr_st_write_tensor tensors[5] = {{"mask", GR_ST_BOOL, 1, s5, mask}, {"counts", GR_ST_I32, 1, s5, counts}, {"x", GR_ST_F64, 1, s2, x},
                                     {"seed", GR_ST_I64, 0, NULL, &seed}, {"divisor", GR_ST_I32, 0, NULL, &divisor}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(inputs_path, tensors, 5, NULL, 0, &err), 0);
    gr_safetensors *file = gr_safetensors_open(inputs_path, 0, &err);
    gr_program *program = gr_program_load(granule_manifest, granule_entries, &err);
    gr_binding *b = gr_binding_create(gr_program_find(program, "mixed"), &file, 1, 0, &err);
    CHECK(b != NULL);
    gr_runtime *rt = gr_runtime_create(1);
    if (b != NULL) {
        CHECK_EQ(gr_binding_call(rt, b, &err), 0);
        const int32_t *masked = gr_binding_result(b, 0), *quotient = gr_binding_result(b, 3);
        const uint8_t *keep = gr_binding_result(b, 2);
        CHECK(masked[0] == 10 && masked[1] == 0 && masked[2] == 30 && masked[3] == 41 && masked[4] == 0);
        CHECK(*(const double *)gr_binding_result(b, 1) == 0.1 + 0.2);
        /* Elements 0 and 1 of seed 77, offset 7 vs. the Python/Swift reference of the rule. */
        for (int i = 0; i < 5; i++) CHECK_EQ(keep[i], gr_dropout_keep(77, 7, i, 0.5));
        CHECK(quotient[0] == 3 && quotient[1] == -6 && quotient[3] == 13);
    }
    gr_binding_free(b);
    /* Division by zero raised with its op. */
    divisor = 0;
    gr_safetensors_close(file);
    CHECK_EQ(gr_safetensors_write(inputs_path, tensors, 5, NULL, 0, &err), 0);
    file = gr_safetensors_open(inputs_path, 0, &err);
    b = gr_binding_create(gr_program_find(program, "mixed"), &file, 1, 0, &err);
    CHECK(b != NULL && gr_binding_call(rt, b, &err) != 0);
    CHECK_STR_EQ(err.message, "fake.tir:9:3: div: integer division by zero");
    gr_binding_free(b);
    gr_runtime_destroy(rt);
    gr_program_free(program);
    gr_safetensors_close(file);
    remove_tree(directory);
}

static void test_program_without_entries_cannot_call(void) {
    gr_error err;
    gr_program *program = gr_program_load(granule_manifest, NULL, &err);
    const gr_function *fn = gr_program_find(program, "sgd");
    CHECK(fn->entry == NULL);
    gr_binding *b = gr_binding_create(fn, NULL, 0, GR_BIND_ALLOW_MISSING, &err);
    gr_runtime *rt = gr_runtime_create(1);
    CHECK(gr_binding_call(rt, b, &err) != 0);
    CHECK_STR_EQ(err.message, "function 'sgd' has no entry point (the program was loaded without entries)");
    gr_binding_free(b);
    gr_runtime_destroy(rt);
    gr_program_free(program);
}

#define EMPTY_PROGRAM "\"version\": 1, \"functions\": [], \"ops\": []"
#define GENERATION(fields) "{" EMPTY_PROGRAM ", \"generation\": {" fields "}}"
#define BART_GENERATION_FIELDS                                                                                              \
    "\"family\": \"bart\", \"vocab_size\": 50, \"decoder_start_token_id\": 2, \"eos_token_id\": 2, \"pad_token_id\": 1, " \
    "\"bos_token_id\": 0, \"forced_eos_token_id\": -1, \"no_repeat_ngram_size\": 3, \"early_stopping\": true"

static void test_generation_config_and_profile_steps(void) {
    gr_error err;
    gr_program *program = gr_program_load(GENERATION(BART_GENERATION_FIELDS), NULL, &err);
    CHECK(program != NULL);
    if (program == NULL) return;
    const gr_generation_config *g = gr_program_generation(program);
    CHECK(g != NULL);
    if (g != NULL) {
        CHECK_STR_EQ(g->family, "bart");
        CHECK_EQ(g->vocab_size, 50);
        CHECK_EQ(g->decoder_start_token_id, 2);
        CHECK_EQ(g->pad_token_id, 1);
        CHECK_EQ(g->bos_token_id, 0);
        CHECK_EQ(g->forced_eos_token_id, -1);
        CHECK_EQ(g->no_repeat_ngram_size, 3);
        CHECK_EQ(g->early_stopping, 1);
    }
    CHECK_EQ(gr_program_profile_count(program), 0);
    gr_program_free(program);

    program = gr_program_load("{" EMPTY_PROGRAM ", \"profile\": [\"f: gemm %x = 1 × [2×3]·[3×4]\", \"f: kernel f0_k1\"]}", NULL, &err);
    CHECK(program != NULL);
    if (program == NULL) return;
    CHECK(gr_program_generation(program) == NULL);
    CHECK_EQ(gr_program_profile_count(program), 2);
    CHECK_STR_EQ(gr_program_profile_step(program, 1), "f: kernel f0_k1");
    CHECK(gr_program_profile_step(program, 2) == NULL && gr_program_profile_step(program, -1) == NULL);
    gr_program_free(program);

    MANIFEST_ERROR(GENERATION("\"family\": \"gpt\", \"vocab_size\": 8, \"decoder_start_token_id\": 0, \"eos_token_id\": 1, "
                              "\"pad_token_id\": 0, \"bos_token_id\": -1, \"forced_eos_token_id\": -1, \"no_repeat_ngram_size\": 0, "
                              "\"early_stopping\": false"),
                   "manifest: generation.family: expected \"bart\" or \"t5\", got \"gpt\"");
    MANIFEST_ERROR(GENERATION("\"family\": \"t5\""), "manifest: generation: missing field 'vocab_size'");
    MANIFEST_ERROR(GENERATION("\"family\": \"t5\", \"vocab_size\": 8, \"decoder_start_token_id\": 8, \"eos_token_id\": 1, "
                              "\"pad_token_id\": 0, \"bos_token_id\": -1, \"forced_eos_token_id\": -1, \"no_repeat_ngram_size\": 0, "
                              "\"early_stopping\": false"),
                   "manifest: generation.decoder_start_token_id: expected a token id in [0, 8), got 8");
    MANIFEST_ERROR(GENERATION("\"family\": \"t5\", \"vocab_size\": 8, \"decoder_start_token_id\": 0, \"eos_token_id\": -1, "
                              "\"pad_token_id\": 0, \"bos_token_id\": -1, \"forced_eos_token_id\": -1, \"no_repeat_ngram_size\": 0, "
                              "\"early_stopping\": false"),
                   "manifest: generation.eos_token_id: expected a token id in [0, 8), got -1");
    MANIFEST_ERROR(GENERATION(BART_GENERATION_FIELDS ", \"num_beams\": 4"), "manifest: generation: unknown field 'num_beams'");
    MANIFEST_ERROR("{" EMPTY_PROGRAM ", \"profile\": 3}", "manifest: profile: expected an array of strings, got a number");
    MANIFEST_ERROR("{" EMPTY_PROGRAM ", \"profile\": [1]}", "manifest: profile[0]: expected a string, got a number");
}

/* Sleeps about `ms` milliseconds. */
static void sleep_ms(long ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

static void test_profile_charges_the_time_between_steps(void) {
    gr_error err;
    gr_runtime *rt = gr_runtime_create(1);
    CHECK(rt != NULL);
    if (rt == NULL) return;
    gr_profile_step(rt, 0); /* not collecting yet: ignored */
    sleep_ms(2);
    gr_profile_step(rt, -1);
    CHECK(gr_runtime_profile_seconds(rt, 0) == 0 && gr_runtime_profile_calls(rt, 0) == 0);

    CHECK_EQ(gr_runtime_profile_enable(rt, 3, &err), 0);
    for (int call = 0; call < 2; call++) { /* two calls of a function with steps 0, 1, (5: out of range) */
        gr_profile_step(rt, 0);
        sleep_ms(4);
        gr_profile_step(rt, 1);
        sleep_ms(1);
        gr_profile_step(rt, 5);
        sleep_ms(1);
        gr_profile_step(rt, -1);
    }
    sleep_ms(3); /* between calls: charged to nothing */
    CHECK_EQ(gr_runtime_profile_calls(rt, 0), 2);
    CHECK_EQ(gr_runtime_profile_calls(rt, 1), 2);
    CHECK_EQ(gr_runtime_profile_calls(rt, 2), 0);
    CHECK_EQ(gr_runtime_profile_calls(rt, 5), 0);
    double first = gr_runtime_profile_seconds(rt, 0), second = gr_runtime_profile_seconds(rt, 1);
    CHECK(first >= 0.008 && first < 0.5);
    CHECK(second >= 0.002 && second < first);
    CHECK(gr_runtime_profile_seconds(rt, 2) == 0);

    CHECK_EQ(gr_runtime_profile_enable(rt, 3, &err), 0); /* restarting zeroes the counters */
    CHECK(gr_runtime_profile_seconds(rt, 0) == 0 && gr_runtime_profile_calls(rt, 0) == 0);
    gr_runtime_destroy(rt);
}

void suite_program(void) {
    RUN(test_loads_the_fake_manifest);
    RUN(test_rejects_broken_manifests);
    RUN(test_binds_calls_and_writes_results);
    RUN(test_results_in_place_share_their_parameters_buffer);
    RUN(test_mapped_parameters_are_released_between_reads);
    RUN(test_raised_errors_reach_the_caller_with_the_op);
    RUN(test_binding_errors_name_the_parameter_and_files);
    RUN(test_half_precision_weights_are_converted);
    RUN(test_misaligned_data_is_copied);
    RUN(test_every_dtype_binds);
    RUN(test_program_without_entries_cannot_call);
    RUN(test_generation_config_and_profile_steps);
    RUN(test_profile_charges_the_time_between_steps);
}
