/*
 * train_fake_program.c: a hand-written "generated program" with a train step, for the tests of the
 * `train` command (train_test.c in-process, and linked with main.c into `fake_trainer`).
 *
 *   @toy_train_step(x: f32[2,3] input, y: f32[2] input, learning_rate: f32[] input,
 *                   dropout_seed: i64[] input, frozen.scale: f32[3] frozen, w: f32[3] trainable,
 *                   adam.step: i64[] state, adam.m.w: f32[3] state)
 *       -> (loss: f32[], w: f32[3] writes %w, adam.m.w: f32[3] writes %adam.m.w,
 *           adam.step: i64[] writes %adam.step, grad_norm: f32[])
 *
 *   w and adam.m.w are marked in_place (each element of w and m is read just before its new value
 *   is written, as the code generator's AdamW kernels do), adam.step is not: `train` runs the
 *   first two in their parameters' buffers and copies the third back.
 *
 *   A linear model with a quadratic loss and SGD with momentum:
 *     r_j  = Σ_i scale_i·w_i·x_ji − y_j;   loss = mean_j r_j² + 1e-6·u(dropout_seed)
 *     g_i  = (2/B) Σ_j r_j·scale_i·x_ji;   grad_norm = |g|
 *     m ← 0.9·m + g;   w ← w − learning_rate·m;   adam.step ← adam.step + 1
 *   where u(s) ∈ [0, 1) is Philox's word 0 at (seed s, offset 0, index 0) / 2^32, so the loss shows
 *   which dropout seed a step got. A batch with an example whose x_j0 = 777 raises SIGTERM (once) in the call (the
 *   tests' deterministic "interruption"); an infinite feature makes the loss non-finite.
 *
 *   @toy(x: f32[2,3] input) -> (sum: f32[]) is there so the train step is not the only function.
 */
#include "granule_runtime.h"

#include <math.h>
#include <signal.h>
#include <stdint.h>

const char granule_manifest[] =
    "{\"version\": 1,\n"
    " \"functions\": [\n"
    "  {\"name\": \"toy\", \"arena_bytes\": 0,\n"
    "   \"params\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [2, 3], \"role\": \"input\"}],\n"
    "   \"results\": [{\"name\": \"sum\", \"dtype\": \"f32\", \"shape\": [], \"writes\": -1}]},\n"
    "  {\"name\": \"toy_train_step\", \"arena_bytes\": 0,\n"
    "   \"params\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [2, 3], \"role\": \"input\"},\n"
    "              {\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [2], \"role\": \"input\"},\n"
    "              {\"name\": \"learning_rate\", \"dtype\": \"f32\", \"shape\": [], \"role\": \"input\"},\n"
    "              {\"name\": \"dropout_seed\", \"dtype\": \"i64\", \"shape\": [], \"role\": \"input\"},\n"
    "              {\"name\": \"frozen.scale\", \"dtype\": \"f32\", \"shape\": [3], \"role\": \"frozen\"},\n"
    "              {\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [3], \"role\": \"trainable\"},\n"
    "              {\"name\": \"adam.step\", \"dtype\": \"i64\", \"shape\": [], \"role\": \"state\"},\n"
    "              {\"name\": \"adam.m.w\", \"dtype\": \"f32\", \"shape\": [3], \"role\": \"state\"}],\n"
    "   \"results\": [{\"name\": \"loss\", \"dtype\": \"f32\", \"shape\": [], \"writes\": -1},\n"
    "               {\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [3], \"writes\": 5, \"in_place\": true},\n"
    "               {\"name\": \"adam.m.w\", \"dtype\": \"f32\", \"shape\": [3], \"writes\": 7, \"in_place\": true},\n"
    "               {\"name\": \"adam.step\", \"dtype\": \"i64\", \"shape\": [], \"writes\": 6},\n"
    "               {\"name\": \"grad_norm\", \"dtype\": \"f32\", \"shape\": [], \"writes\": -1}]}],\n"
    " \"ops\": [],\n"
    " \"step_function\": \"toy_train_step\"}\n";

static int32_t toy(void *const *args, void *arena, gr_runtime *rt) {
    (void)arena;
    (void)rt;
    const float *x = args[0];
    float *sum = args[1];
    *sum = 0;
    for (int i = 0; i < 6; i++) *sum += x[i];
    return 0;
}

static int32_t toy_train_step(void *const *args, void *arena, gr_runtime *rt) {
    (void)arena;
    (void)rt;
    const float *x = args[0], *y = args[1], *lr = args[2];
    const int64_t *seed = args[3];
    const float *scale = args[4], *w = args[5];
    const int64_t *step = args[6];
    const float *m = args[7];
    float *loss = args[8], *w_new = args[9], *m_new = args[10];
    int64_t *step_new = args[11];
    float *norm = args[12];
    float g[3] = {0, 0, 0};
    float total = 0;
    if (x[0] == 777.0f || x[3] == 777.0f) raise(SIGTERM); /* once: a second signal would kill */
    for (int j = 0; j < 2; j++) {
        float r = -y[j];
        for (int i = 0; i < 3; i++) r += scale[i] * w[i] * x[j * 3 + i];
        total += r * r;
        for (int i = 0; i < 3; i++) g[i] += 2.0f / 2.0f * r * scale[i] * x[j * 3 + i];
    }
    *loss = total / 2.0f + 1e-6f * (float)((double)gr_philox_word(*seed, 0, 0) / 4294967296.0);
    float squares = 0;
    for (int i = 0; i < 3; i++) {
        squares += g[i] * g[i];
        m_new[i] = 0.9f * m[i] + g[i];
        w_new[i] = w[i] - *lr * m_new[i];
    }
    *norm = sqrtf(squares);
    *step_new = *step + 1;
    return 0;
}

int32_t (*const granule_entries[])(void *const *args, void *arena, struct gr_runtime *rt) = {toy, toy_train_step};
