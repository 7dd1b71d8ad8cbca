/*
 * fake_program.c: a "generated program" written by hand, exporting exactly what the code
 * generator's object exports (granule_manifest, granule_entries) and calling the runtime the way
 * generated code does (gr_parallel_for kernels, gr_raise, gr_failed, gr_philox_word, OpenBLAS).
 *
 *   @loss_grad(input_ids: i64[2,3] input, model.shared.weight: f32[8,4] frozen,
 *              adapter.scale: f32[4] trainable) -> (loss: f32[], grad.adapter.scale: f32[4])
 *       rows = gather(weight, input_ids)          (arena: 6×4 floats; raises on a bad id, op 0)
 *       loss = mean over tokens of Σ_j rows[t][j]·scale[j];  grad[j] = mean over tokens of rows[t][j]
 *   @mixed(mask: i1[5], counts: i32[5], x: f64[2], seed: i64[], divisor: i32[]) ->
 *         (masked: i32[5], total: f64[], keep: i1[5], quotient: i32[5])
 *       masked = select(mask, counts, 0); total = Σx; keep = dropout mask (rate 0.5, offset 7);
 *       quotient = counts / divisor (raises on 0, op 1)
 *   @sgd(w: f32[4] trainable, m: f32[4] state, g: f32[4] input) ->
 *       (w.new: f32[4] writes w, m.new: f32[4] writes m)        m' = 0.9·m + g; w' = w − 0.1·m'
 */
#include "granule_runtime.h"

#include <cblas.h>
#include <stdint.h>

const char granule_manifest[] =
    "{\"version\": 1,\n"
    " \"functions\": [\n"
    "  {\"name\": \"loss_grad\", \"arena_bytes\": 96,\n"
    "   \"params\": [{\"name\": \"input_ids\", \"dtype\": \"i64\", \"shape\": [2, 3], \"role\": \"input\"},\n"
    "              {\"name\": \"model.shared.weight\", \"dtype\": \"f32\", \"shape\": [8, 4], \"role\": \"frozen\"},\n"
    "              {\"name\": \"adapter.scale\", \"dtype\": \"f32\", \"shape\": [4], \"role\": \"trainable\"}],\n"
    "   \"results\": [{\"name\": \"loss\", \"dtype\": \"f32\", \"shape\": [], \"writes\": -1},\n"
    "               {\"name\": \"grad.adapter.scale\", \"dtype\": \"f32\", \"shape\": [4], \"writes\": -1}]},\n"
    "  {\"name\": \"mixed\", \"arena_bytes\": 0,\n"
    "   \"params\": [{\"name\": \"mask\", \"dtype\": \"i1\", \"shape\": [5], \"role\": \"input\"},\n"
    "              {\"name\": \"counts\", \"dtype\": \"i32\", \"shape\": [5], \"role\": \"input\"},\n"
    "              {\"name\": \"x\", \"dtype\": \"f64\", \"shape\": [2], \"role\": \"input\"},\n"
    "              {\"name\": \"seed\", \"dtype\": \"i64\", \"shape\": [], \"role\": \"input\"},\n"
    "              {\"name\": \"divisor\", \"dtype\": \"i32\", \"shape\": [], \"role\": \"input\"}],\n"
    "   \"results\": [{\"name\": \"masked\", \"dtype\": \"i32\", \"shape\": [5], \"writes\": -1},\n"
    "               {\"name\": \"total\", \"dtype\": \"f64\", \"shape\": [], \"writes\": -1},\n"
    "               {\"name\": \"keep\", \"dtype\": \"i1\", \"shape\": [5], \"writes\": -1},\n"
    "               {\"name\": \"quotient\", \"dtype\": \"i32\", \"shape\": [5], \"writes\": -1}]},\n"
    "  {\"name\": \"sgd\", \"arena_bytes\": 0,\n"
    "   \"params\": [{\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [4], \"role\": \"trainable\"},\n"
    "              {\"name\": \"m\", \"dtype\": \"f32\", \"shape\": [4], \"role\": \"state\"},\n"
    "              {\"name\": \"g\", \"dtype\": \"f32\", \"shape\": [4], \"role\": \"input\"}],\n"
    "   \"results\": [{\"name\": \"w.new\", \"dtype\": \"f32\", \"shape\": [4], \"writes\": 0},\n"
    "               {\"name\": \"m.new\", \"dtype\": \"f32\", \"shape\": [4], \"writes\": 1}]}],\n"
    " \"ops\": [\"fake.tir:4:3: gather\", \"fake.tir:9:3: div\"],\n"
    " \"step_function\": \"loss_grad\"}\n";

/* ---- @loss_grad ---- */

/* ctx: ids, weight, rows (arena), rt */
static void gather_kernel(int64_t begin, int64_t end, void *const *ctx) {
    const int64_t *ids = ctx[0];
    const float *weight = ctx[1];
    float *rows = ctx[2];
    gr_runtime *rt = ctx[3];
    for (int64_t t = begin; t < end; t++) {
        int64_t id = ids[t];
        if (id < 0 || id >= 8) {
            gr_raise(rt, 0, GR_RAISE_INDEX, id, 8);
            return;
        }
        for (int j = 0; j < 4; j++) rows[t * 4 + j] = weight[id * 4 + j];
    }
}

static int32_t loss_grad(void *const *args, void *arena, gr_runtime *rt) {
    const int64_t *ids = args[0];
    const float *weight = args[1];
    const float *scale = args[2];
    float *loss = args[3];
    float *grad = args[4];
    float *rows = arena; /* [6, 4] */
    void *const ctx[4] = {(void *)ids, (void *)weight, rows, rt};
    gr_parallel_for(rt, gather_kernel, 6, ctx);
    if (gr_failed(rt)) return 1;
    /* grad = rowsᵀ · (1/6, ..., 1/6); loss = grad · scale */
    float mean[6] = {1.0f / 6, 1.0f / 6, 1.0f / 6, 1.0f / 6, 1.0f / 6, 1.0f / 6};
    cblas_sgemv(CblasRowMajor, CblasTrans, 6, 4, 1.0f, rows, 4, mean, 1, 0.0f, grad, 1);
    *loss = cblas_sdot(4, grad, 1, scale, 1);
    return 0;
}

/* ---- @mixed ---- */

static int32_t mixed(void *const *args, void *arena, gr_runtime *rt) {
    (void)arena;
    const uint8_t *mask = args[0];
    const int32_t *counts = args[1];
    const double *x = args[2];
    const int64_t *seed = args[3];
    const int32_t *divisor = args[4];
    int32_t *masked = args[5];
    double *total = args[6];
    uint8_t *keep = args[7];
    int32_t *quotient = args[8];
    for (int i = 0; i < 5; i++) {
        masked[i] = mask[i] ? counts[i] : 0;
        keep[i] = (double)(gr_philox_word(*seed, 7, i) >> 8) >= 0.5 * 16777216.0;
    }
    *total = x[0] + x[1];
    for (int i = 0; i < 5; i++) {
        if (*divisor == 0) {
            gr_raise(rt, 1, GR_RAISE_DIV_ZERO, counts[i], 0);
            return 1;
        }
        quotient[i] = counts[i] / *divisor;
    }
    return 0;
}

/* ---- @sgd ---- */

static int32_t sgd(void *const *args, void *arena, gr_runtime *rt) {
    (void)arena;
    (void)rt;
    const float *w = args[0], *m = args[1], *g = args[2];
    float *w_new = args[3], *m_new = args[4];
    for (int i = 0; i < 4; i++) {
        m_new[i] = 0.9f * m[i] + g[i];
        w_new[i] = w[i] - 0.1f * m_new[i];
    }
    return 0;
}

int32_t (*const granule_entries[])(void *const *args, void *arena, struct gr_runtime *rt) = {loss_grad, mixed, sgd};
