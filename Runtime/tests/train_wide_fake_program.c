/*
 * train_wide_fake_program.c: the train step of train_fake_program.c with a wide extra parameter, so
 * that a checkpoint is a few megabytes and writing it takes measurable time. Linked with main.c into
 * `fake_trainer_wide`, which train_test.c SIGKILLs at many moments (atomic checkpoints, resume).
 *
 *   @wide_train_step(x: f32[2,3] input, y: f32[2] input, learning_rate: f32[] input,
 *                    frozen.scale: f32[3] frozen, w: f32[3] trainable, wide: f32[WIDTH] trainable,
 *                    adam.step: i64[] state, adam.m.w: f32[3] state, adam.m.wide: f32[WIDTH] state)
 *       -> (loss: f32[], w writes, wide writes, adam.m.w writes, adam.m.wide writes,
 *           adam.step writes, grad_norm: f32[])
 *
 *   w, adam.m.w, the loss and grad_norm as in train_fake_program.c (without the dropout term); the
 *   wide parameter follows the gradient of w, spread out: with c_i = (1 + i mod 7) / 8,
 *     adam.m.wide_i ← 0.9·adam.m.wide_i + c_i·g_(i mod 3);   wide_i ← wide_i − learning_rate·adam.m.wide_i
 *   so every element changes at every step and depends on the whole history of the run.
 */
#include "granule_runtime.h"

#include <math.h>
#include <stdint.h>

#define WIDTH 262144 /* 1 MiB per wide tensor, a checkpoint of 2 MiB */
#define STRING(x) #x
#define TEXT(x) STRING(x)

const char granule_manifest[] =
    "{\"version\": 1,\n"
    " \"functions\": [\n"
    "  {\"name\": \"wide_train_step\", \"arena_bytes\": 0,\n"
    "   \"params\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [2, 3], \"role\": \"input\"},\n"
    "              {\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [2], \"role\": \"input\"},\n"
    "              {\"name\": \"learning_rate\", \"dtype\": \"f32\", \"shape\": [], \"role\": \"input\"},\n"
    "              {\"name\": \"frozen.scale\", \"dtype\": \"f32\", \"shape\": [3], \"role\": \"frozen\"},\n"
    "              {\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [3], \"role\": \"trainable\"},\n"
    "              {\"name\": \"wide\", \"dtype\": \"f32\", \"shape\": [" TEXT(WIDTH) "], \"role\": \"trainable\"},\n"
    "              {\"name\": \"adam.step\", \"dtype\": \"i64\", \"shape\": [], \"role\": \"state\"},\n"
    "              {\"name\": \"adam.m.w\", \"dtype\": \"f32\", \"shape\": [3], \"role\": \"state\"},\n"
    "              {\"name\": \"adam.m.wide\", \"dtype\": \"f32\", \"shape\": [" TEXT(WIDTH) "], \"role\": \"state\"}],\n"
    "   \"results\": [{\"name\": \"loss\", \"dtype\": \"f32\", \"shape\": [], \"writes\": -1},\n"
    "               {\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [3], \"writes\": 4},\n"
    "               {\"name\": \"wide\", \"dtype\": \"f32\", \"shape\": [" TEXT(WIDTH) "], \"writes\": 5},\n"
    "               {\"name\": \"adam.m.w\", \"dtype\": \"f32\", \"shape\": [3], \"writes\": 7},\n"
    "               {\"name\": \"adam.m.wide\", \"dtype\": \"f32\", \"shape\": [" TEXT(WIDTH) "], \"writes\": 8},\n"
    "               {\"name\": \"adam.step\", \"dtype\": \"i64\", \"shape\": [], \"writes\": 6},\n"
    "               {\"name\": \"grad_norm\", \"dtype\": \"f32\", \"shape\": [], \"writes\": -1}]}],\n"
    " \"ops\": [],\n"
    " \"step_function\": \"wide_train_step\"}\n";

static int32_t wide_train_step(void *const *args, void *arena, gr_runtime *rt) {
    (void)arena;
    (void)rt;
    const float *x = args[0], *y = args[1], *lr = args[2], *scale = args[3], *w = args[4], *wide = args[5];
    const int64_t *step = args[6];
    const float *m = args[7], *m_wide = args[8];
    float *loss = args[9], *w_new = args[10], *wide_new = args[11], *m_new = args[12], *m_wide_new = args[13];
    int64_t *step_new = args[14];
    float *norm = args[15];
    float g[3] = {0, 0, 0};
    float total = 0;
    for (int j = 0; j < 2; j++) {
        float r = -y[j];
        for (int i = 0; i < 3; i++) r += scale[i] * w[i] * x[j * 3 + i];
        total += r * r;
        for (int i = 0; i < 3; i++) g[i] += r * scale[i] * x[j * 3 + i];
    }
    *loss = total / 2.0f;
    float squares = 0;
    for (int i = 0; i < 3; i++) {
        squares += g[i] * g[i];
        m_new[i] = 0.9f * m[i] + g[i];
        w_new[i] = w[i] - *lr * m_new[i];
    }
    for (int32_t i = 0; i < WIDTH; i++) {
        m_wide_new[i] = 0.9f * m_wide[i] + (float)(1 + i % 7) / 8.0f * g[i % 3];
        wide_new[i] = wide[i] - *lr * m_wide_new[i];
    }
    *norm = sqrtf(squares);
    *step_new = *step + 1;
    return 0;
}

int32_t (*const granule_entries[])(void *const *args, void *arena, struct gr_runtime *rt) = {wide_train_step};
