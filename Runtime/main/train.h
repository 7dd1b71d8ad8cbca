/*
 * train.h: the `train` command of compiled programs (train.c), and the pieces its tests check on
 * their own: the seeded generator, the data order, the learning-rate schedule and the datasets.
 *
 * Everything here is deterministic: the data order, the learning rate and the dropout seed of a
 * step depend only on (--seed, the global step, its epoch), never on where a run started, so a
 * run resumed from a checkpoint repeats the steps of an uninterrupted run bit for bit.
 */
#ifndef GRANULE_TRAIN_H
#define GRANULE_TRAIN_H

#include "granule_runtime.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * `MODEL train ...` (argv holds the options after the word `train`): parses the options, trains
 * and returns the exit status (0 done or interrupted by SIGINT/SIGTERM, 1 error, 2 usage error).
 * Messages go to `out` (the summary) and `err` (progress lines, warnings, `error: ...`).
 */
int train_command(const gr_program *program, const char *program_name, int argc, char **argv, FILE *out, FILE *err);

/** The usage lines of `train` for the program's --help (each starts with two spaces). */
void train_print_usage(FILE *out, const char *program_name);

/* ---- the seeded generator: SplitMix64 ---------------------------------------------------------- */

/** Advances *state by 0x9E3779B97F4A7C15 and returns SplitMix64's output for it. */
uint64_t train_splitmix64(uint64_t *state);

/**
 * A 64-bit value of (seed, stream, index): SplitMix64 chained over the three,
 *   s = seed; a = splitmix64(&s); s = a ^ stream; b = splitmix64(&s); s = b ^ index; return splitmix64(&s).
 */
uint64_t train_hash(uint64_t seed, uint64_t stream, uint64_t index);

/** Streams of train_hash. */
enum {
    TRAIN_STREAM_ORDER = 1,   /**< the example order of each task in epoch e (train_order_state) */
    TRAIN_STREAM_TASKS = 2,   /**< the round-robin task list of epoch e */
    TRAIN_STREAM_DROPOUT = 3  /**< dropout_seed of global step k */
};

/** A uniform integer in [0, bound) from *state (bound >= 1), without modulo bias (rejection). */
uint64_t train_uniform(uint64_t *state, uint64_t bound);

/** Fisher–Yates: for i = n-1 down to 1, swap items[i] with items[train_uniform(&state, i + 1)]. */
void train_shuffle(int64_t *items, int64_t n, uint64_t state);

/** The generator state of task `task`'s example order in `epoch`:
 *  train_hash(train_hash(seed, TRAIN_STREAM_ORDER, epoch), 0, task). */
uint64_t train_order_state(uint64_t seed, int64_t epoch, int32_t task);

/** `dropout_seed` of the call that takes global step `step` (0-based):
 *  train_hash(seed, TRAIN_STREAM_DROPOUT, step) >> 1 (non-negative). */
int64_t train_dropout_seed(uint64_t seed, int64_t step);

/* ---- the learning-rate schedule (AdamW.swift's linearWarmupDecay) ------------------------------ */

/** W = int(ratio · total), truncated as Python's int(). */
int64_t train_warmup_steps(double ratio, int64_t total);

/** lr(k) = peak·(k / max(1, W)) if k < W, else peak·max(0, (T − k) / max(1, T − W)), in double
 *  (the caller rounds it to the parameter's dtype). */
double train_learning_rate(int64_t step, double peak, int64_t warmup, int64_t total);

/* ---- datasets ---------------------------------------------------------------------------------- */

/** The tasks (--data files) of a train step function, checked against its batch parameters. */
typedef struct train_data train_data;

/**
 * Opens `paths` (one task each) for `fn`: every `input` parameter other than `learning_rate` and
 * `dropout_seed` is a batch parameter of shape [B, ...]; each file must hold a tensor of that name,
 * dtype (F16/BF16 accepted for f32, widened in memory) and shape [N, ...] with the same N for all
 * of a task's tensors; N >= B. Other tensors in the files are ignored.
 */
train_data *train_data_open(const gr_function *fn, const char *const *paths, int32_t count, gr_error *err);
/** Like train_data_open, for evaluation: a task may have any number N >= 1 of examples (its
 *  batches are filled example by example with train_fill_examples). */
train_data *train_data_open_examples(const gr_function *fn, const char *const *paths, int32_t count, gr_error *err);
void train_data_free(train_data *data);

int32_t train_data_task_count(const train_data *data);
/** The batch size B (the first axis of the batch parameters). */
int64_t train_data_batch_size(const train_data *data);
/** Examples of task t, and its batches per epoch (floor(N / B): the last partial batch is dropped). */
int64_t train_data_examples(const train_data *data, int32_t task);
int64_t train_data_batches(const train_data *data, int32_t task);
/** Steps per epoch: the sum of every task's batches. */
int64_t train_data_steps_per_epoch(const train_data *data);
/** The task's name: its file name without directories and without ".safetensors". */
const char *train_data_task_name(const train_data *data, int32_t task);

/**
 * The order of one epoch: for each step i of the epoch (0 ≤ i < steps per epoch), the task and the
 * task's batch it takes, and for each task the order of its examples.
 *
 *  - Examples: task t's indices 0..N_t−1 shuffled by train_shuffle with train_order_state(seed,
 *    epoch, t); batch b is positions [b·B, (b+1)·B) of that order.
 *  - Tasks (spec 6.2's round robin): the list [0 × batches(0), 1 × batches(1), ...] shuffled by
 *    train_shuffle with train_hash(seed, TRAIN_STREAM_TASKS, epoch) and popped from its end: step i
 *    takes element (S − 1 − i); each task's batches are taken in order 0, 1, 2, ... With one task
 *    the list is not shuffled (it is all one task).
 */
typedef struct train_epoch {
    int64_t epoch;
    int64_t steps;
    int32_t *task;    /**< [steps] */
    int64_t *batch;   /**< [steps] */
    int64_t **order;  /**< [tasks][N_t] */
    int32_t task_count;
} train_epoch;

int train_epoch_plan(const train_data *data, uint64_t seed, int64_t epoch, train_epoch *plan, gr_error *err);
void train_epoch_free(train_epoch *plan);

/** Copies the examples of step `position` of `plan` into `buffers` (one per parameter of the
 *  function, indexed by parameter; only batch parameters are written). */
void train_fill_batch(const train_data *data, const train_epoch *plan, int64_t position, void *const *buffers);

/** Copies examples order[0], ..., order[B-1] of task `task` into `buffers` (as train_fill_batch). */
void train_fill_examples(const train_data *data, int32_t task, const int64_t *order, void *const *buffers);

#ifdef __cplusplus
}
#endif

#endif /* GRANULE_TRAIN_H */
