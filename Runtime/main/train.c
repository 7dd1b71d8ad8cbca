/*
 * train.c: the `train` command of every compiled program.
 *
 *   MODEL train --weights W.safetensors --data D.safetensors [--data D2.safetensors ...]
 *               (--steps N | --epochs E) --lr LR [--warmup-ratio 0.1] [--seed S]
 *               [--checkpoint C.safetensors] [--checkpoint-every K] [--resume C.safetensors]
 *               [--stop-at STEP] [--log LOG.jsonl] [--curve CURVE.csv] [--function NAME] [--threads N]
 *               [--resident-weights]
 *
 * It runs the program's `@<f>_train_step` (AdamW.swift: the loss, the gradients, clipping and one
 * AdamW update in one call, the optimizer state as `state` parameters written back by results):
 *
 *  1. Bind every parameter by name: `frozen` ones from --weights (mapped, not copied, and unless
 *     --resident-weights released between distant reads: gr_binding_release_between_uses), `trainable`
 *     ones from --weights (or --resume) into owned buffers, `state` ones (adam.step, adam.m.*,
 *     adam.v.*) zero (or from --resume), `learning_rate` and `dropout_seed` computed per step, and
 *     every other `input` (the batch parameters) filled from the datasets (train_data_open).
 *  2. Step k (0-based, global) of an epoch of S steps takes position k mod S of epoch k div S
 *     (train_epoch_plan), the learning rate lr(k) (train_learning_rate, AdamW.swift's formula with
 *     W = int(ratio · T)) and dropout_seed = train_dropout_seed(seed, k). Nothing else feeds a
 *     step, so a resumed run repeats an uninterrupted one bit for bit.
 *  3. After the call: the loss and `grad_norm` must be finite, else the run stops with
 *     "step K: the loss is NaN" and exit 1, writing no checkpoint (the last good one stays). The
 *     results the manifest marks in_place (AdamW's updates) were computed in their parameters'
 *     buffers (GR_BIND_RESULTS_IN_PLACE); any other result that `writes` a parameter is copied
 *     into that parameter's buffer.
 *  4. Log the step (JSONL), print progress (stderr, at most once a second), keep the curve; every
 *     --checkpoint-every steps, at the end, at --stop-at and after SIGINT/SIGTERM write the
 *     checkpoint (safetensors, atomically, CRC-32 included) and the curve (CSV + SVG, atomically).
 *     Before the first step, the temporary files that killed runs left next to the checkpoint are
 *     removed (remove_stale_temporaries).
 *
 * Checkpoint: every trainable parameter and every state parameter under its own name (so PyTorch
 * code can load the tuned modules with the PET names), and "__metadata__" strings: granule_train
 * ("1", the format), function, step (global steps done), epoch and epoch_position (where the next
 * step is: k div S, k mod S), steps_per_epoch, tasks (the task names), examples (per task),
 * batch_size, seed, total_steps, epochs (epochs mode only), lr, warmup_ratio, warmup_steps. The
 * data order is recomputed from (seed, epoch), so (epoch, epoch_position) pins the position in the
 * epoch's example orders and task list.
 *
 * Signals: the one piece of global mutable state is `stop_signal` below, a volatile sig_atomic_t
 * set by the SIGINT/SIGTERM handler (a handler can reach nothing else). The loop reads it between
 * steps: the current step finishes, the checkpoint and curve are written and the command returns 0.
 * A second signal kills the process at once (the default action). The handlers are installed for
 * the training loop only and restored afterwards.
 *
 * What it does not do: gradient accumulation, evaluation during training, several step functions
 * at once; it trusts the step function's `writes` (a trainable parameter that no result writes
 * stays as loaded).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* sigaction, open_memstream, clock_gettime, fsync */
#endif

#include "options.h"
#include "params.h"
#include "train.h"

#include "../src/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

#define MAX_DATA 64
#define MAX_COUNT ((int64_t)1000000000) /* steps, epochs, --checkpoint-every, --stop-at */
#define LEARNING_RATE "learning_rate"
#define DROPOUT_SEED "dropout_seed"
#define GRAD_NORM "grad_norm"
#define ADAM_STEP "adam.step"
#define CHECKPOINT_FORMAT "1"
#define PLOT_POINTS 2000 /* the SVG plot keeps at most this many points per line */

/* The signal that asked the training loop to stop (0: none). The only global mutable state of the
 * runtime: a signal handler can communicate through nothing else. */
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int signal_number) {
    if (stop_signal != 0) { /* a second signal: stop now, with the default action */
        signal(signal_number, SIG_DFL);
        raise(signal_number);
        return;
    }
    stop_signal = signal_number;
}


/* ============================================================================================ */
/* SplitMix64, shuffles, schedule                                                               */
/* ============================================================================================ */

uint64_t train_splitmix64(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t train_hash(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t state = seed;
    state = train_splitmix64(&state) ^ stream;
    state = train_splitmix64(&state) ^ index;
    return train_splitmix64(&state);
}

uint64_t train_uniform(uint64_t *state, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound: values below it are rejected */
    for (;;) {
        uint64_t r = train_splitmix64(state);
        if (r >= threshold) return r % bound;
    }
}

void train_shuffle(int64_t *items, int64_t n, uint64_t state) {
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = (int64_t)train_uniform(&state, (uint64_t)i + 1);
        int64_t swap = items[i];
        items[i] = items[j];
        items[j] = swap;
    }
}

uint64_t train_order_state(uint64_t seed, int64_t epoch, int32_t task) {
    return train_hash(train_hash(seed, TRAIN_STREAM_ORDER, (uint64_t)epoch), 0, (uint64_t)task);
}

int64_t train_dropout_seed(uint64_t seed, int64_t step) {
    return (int64_t)(train_hash(seed, TRAIN_STREAM_DROPOUT, (uint64_t)step) >> 1);
}

int64_t train_warmup_steps(double ratio, int64_t total) {
    return (int64_t)(ratio * (double)total);
}

double train_learning_rate(int64_t step, double peak, int64_t warmup, int64_t total) {
    if (step < warmup) return peak * ((double)step / (double)(warmup > 1 ? warmup : 1));
    double fraction = (double)(total - step) / (double)(total - warmup > 1 ? total - warmup : 1);
    return peak * (fraction > 0 ? fraction : 0);
}

/* ============================================================================================ */
/* Datasets                                                                                     */
/* ============================================================================================ */

/* A batch parameter of the step function. */
typedef struct batch_input {
    int32_t param;
    int64_t example_bytes; /* one example: the parameter's bytes / B */
} batch_input;

typedef struct task {
    char *name;
    gr_safetensors *file;
    int64_t examples;
    const unsigned char **sources; /* [input_count]: example 0 of each batch input */
    float **widened;               /* [input_count]: f32 copies of F16/BF16 tensors (else NULL) */
} task;

struct train_data {
    const gr_function *fn;
    int64_t batch;
    bool any_size; /* train_data_open_examples: N >= 1 suffices */
    int32_t input_count;
    batch_input *inputs;
    int32_t task_count;
    task *tasks;
};

static bool is_batch_parameter(const gr_value_spec *spec) {
    return spec->role == GR_ROLE_INPUT && strcmp(spec->name, LEARNING_RATE) != 0 && strcmp(spec->name, DROPOUT_SEED) != 0;
}

/* The file name without directories and without ".safetensors" (a malloc'd string). */
static char *task_name_of(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    size_t length = strlen(base);
    const char *suffix = ".safetensors";
    if (length > strlen(suffix) && strcmp(base + length - strlen(suffix), suffix) == 0) length -= strlen(suffix);
    char *name = malloc(length + 1);
    if (name != NULL) {
        memcpy(name, base, length);
        name[length] = '\0';
    }
    return name;
}

void train_data_free(train_data *data) {
    if (data == NULL) return;
    for (int32_t t = 0; t < data->task_count; t++) {
        task *k = &data->tasks[t];
        if (k->widened != NULL) {
            for (int32_t i = 0; i < data->input_count; i++) gr_aligned_free(k->widened[i]);
        }
        free(k->widened);
        free(k->sources);
        free(k->name);
        gr_safetensors_close(k->file);
    }
    free(data->tasks);
    free(data->inputs);
    free(data);
}

static train_data *data_failed(train_data *data) {
    train_data_free(data);
    return NULL;
}

/* Token ids outside the vocabulary would stop training at the first batch that holds one, hours
 * in and naming only an IR gather: for a model program (it has a generation config, so the
 * vocabulary size), `input_ids` must lie in [0, V) and `labels` in [0, V) or be -100 (ignored).
 * An `attention_mask` value other than 0 or 1 makes the additive mask (1 - m) · lowest overflow
 * to +inf and every score NaN, as in Hugging Face's models: it must be 0 or 1. */
static int check_batch_values(const gr_function *fn, const gr_value_spec *spec, const gr_st_tensor *tensor, const char *path,
                           gr_error *err) {
    const gr_generation_config *config = gr_program_generation(fn->program);
    bool labels = strcmp(spec->name, "labels") == 0;
    bool mask = strcmp(spec->name, "attention_mask") == 0;
    if (config == NULL || (!labels && !mask && strcmp(spec->name, "input_ids") != 0)) return 0;
    if (tensor->dtype != GR_ST_I64 && tensor->dtype != GR_ST_I32) return 0;
    int64_t per_example = tensor->shape[0] > 0 ? tensor->count / tensor->shape[0] : 1;
    for (int64_t e = 0; e < tensor->count; e++) {
        int64_t id;
        if (tensor->dtype == GR_ST_I64) {
            memcpy(&id, (const unsigned char *)tensor->data + e * 8, 8); /* the file need not align it */
        } else {
            int32_t narrow;
            memcpy(&narrow, (const unsigned char *)tensor->data + e * 4, 4);
            id = narrow;
        }
        if (mask) {
            if (id == 0 || id == 1) continue;
            return gr_fail(err, "%s: attention_mask of example %" PRId64 ", position %" PRId64 ", is %" PRId64 ": expected 0 (padding) or 1",
                           path, e / per_example, e % per_example, id);
        }
        if ((id >= 0 && id < config->vocab_size) || (labels && id == -100)) continue;
        return gr_fail(err, "%s: %s of example %" PRId64 ", position %" PRId64 ", is %" PRId64 ": outside the vocabulary [0, %" PRId64 ")%s",
                       path, spec->name, e / per_example, e % per_example, id, config->vocab_size, labels ? " and not -100 (ignored)" : "");
    }
    return 0;
}

/* Opens task t's file and checks its tensors against the batch parameters. */
static int open_task(train_data *data, int32_t t, const char *path, gr_error *err) {
    const gr_function *fn = data->fn;
    task *k = &data->tasks[t];
    k->name = task_name_of(path);
    k->sources = calloc((size_t)data->input_count, sizeof *k->sources);
    k->widened = calloc((size_t)data->input_count, sizeof *k->widened);
    if (k->name == NULL || k->sources == NULL || k->widened == NULL) return gr_fail(err, "%s: out of memory", path);
    k->file = gr_safetensors_open(path, 0, err);
    if (k->file == NULL) return -1;
    const char *first = NULL;
    for (int32_t i = 0; i < data->input_count; i++) {
        const gr_value_spec *spec = &fn->params[data->inputs[i].param];
        char type[256], example[256];
        gr_value_spec_type(spec, type, sizeof type);
        gr_text text;
        gr_text_init(&text, example, sizeof example);
        gr_text_append_shape(&text, spec->shape + 1, spec->rank - 1);
        const gr_st_tensor *tensor = gr_safetensors_find(k->file, spec->name);
        if (tensor == NULL) {
            return gr_fail(err, "%s: no tensor '%s' (the train step's batch parameter %s: a dataset holds it as [N] + %s)", path,
                        spec->name, type, example);
        }
        bool shape_ok = tensor->rank == spec->rank;
        for (int32_t d = 1; shape_ok && d < spec->rank; d++) shape_ok = tensor->shape[d] == spec->shape[d];
        if (!gr_st_dtype_feeds(spec->dtype, tensor->dtype) || !shape_ok) {
            char got[256];
            gr_text_init(&text, got, sizeof got);
            gr_text_append_shape(&text, tensor->shape, tensor->rank);
            return gr_fail(err,
                        "%s: tensor '%s' is %s %s; the train step's batch parameter is %s, so the dataset needs %s [N] + %s "
                        "(N examples)",
                        path, spec->name, gr_st_dtype_name(tensor->dtype), got, type, gr_st_dtype_name(gr_st_dtype_of(spec->dtype)),
                        example);
        }
        if (check_batch_values(fn, spec, tensor, path, err) != 0) return -1;
        int64_t examples = tensor->shape[0];
        if (first == NULL) {
            first = spec->name;
            k->examples = examples;
        } else if (examples != k->examples) {
            return gr_fail(err, "%s: tensor '%s' has %" PRId64 " examples but '%s' has %" PRId64, path, spec->name, examples, first,
                        k->examples);
        }
        if (spec->dtype == GR_F32 && tensor->dtype != GR_ST_F32) {
            float *copy = gr_aligned_alloc((size_t)tensor->count * sizeof(float));
            if (copy == NULL) {
                return gr_fail(err, "%s: tensor '%s': out of memory widening %" PRId64 " values", path, spec->name, tensor->count);
            }
            k->widened[i] = copy;
            if (gr_st_tensor_read_f32(k->file, tensor, copy, err) != 0) return -1;
            k->sources[i] = (const unsigned char *)copy;
        } else {
            k->sources[i] = tensor->data;
        }
    }
    if (k->examples == 0 || (!data->any_size && k->examples < data->batch)) {
        return gr_fail(err, "%s: %" PRId64 " example%s, fewer than the batch size %" PRId64, path, k->examples,
                    k->examples == 1 ? "" : "s", data->batch);
    }
    return 0;
}

static train_data *open_data(const gr_function *fn, const char *const *paths, int32_t count, bool any_size, gr_error *err) {
    train_data *data = calloc(1, sizeof *data);
    if (data == NULL) {
        gr_fail(err, "out of memory");
        return NULL;
    }
    data->fn = fn;
    data->any_size = any_size;
    data->inputs = calloc((size_t)fn->param_count + 1, sizeof *data->inputs);
    data->tasks = calloc((size_t)count + 1, sizeof *data->tasks);
    if (data->inputs == NULL || data->tasks == NULL) {
        gr_fail(err, "out of memory");
        return data_failed(data);
    }
    data->batch = -1;
    for (int32_t i = 0; i < fn->param_count; i++) {
        const gr_value_spec *spec = &fn->params[i];
        if (!is_batch_parameter(spec)) continue;
        char type[256];
        gr_value_spec_type(spec, type, sizeof type);
        if (spec->rank == 0 || spec->shape[0] == 0) {
            gr_fail(err, "function '%s': input parameter '%s' is %s; train feeds only '%s' and '%s' itself, and batch parameters need a "
                      "non-empty first (batch) axis",
                 fn->name, spec->name, type, LEARNING_RATE, DROPOUT_SEED);
            return data_failed(data);
        }
        if (data->batch < 0) {
            data->batch = spec->shape[0];
        } else if (spec->shape[0] != data->batch) {
            gr_fail(err, "function '%s': batch parameter '%s' is %s but '%s' has batch size %" PRId64, fn->name, spec->name, type,
                 fn->params[data->inputs[0].param].name, data->batch);
            return data_failed(data);
        }
        data->inputs[data->input_count++] = (batch_input){i, spec->bytes / spec->shape[0]};
    }
    if (data->input_count == 0) {
        gr_fail(err, "function '%s' has no batch parameters (input parameters other than '%s' and '%s')", fn->name, LEARNING_RATE,
             DROPOUT_SEED);
        return data_failed(data);
    }
    for (int32_t t = 0; t < count; t++) {
        data->task_count = t + 1;
        if (open_task(data, t, paths[t], err) != 0) return data_failed(data);
    }
    return data;
}

train_data *train_data_open(const gr_function *fn, const char *const *paths, int32_t count, gr_error *err) {
    return open_data(fn, paths, count, false, err);
}

train_data *train_data_open_examples(const gr_function *fn, const char *const *paths, int32_t count, gr_error *err) {
    return open_data(fn, paths, count, true, err);
}

int32_t train_data_task_count(const train_data *data) {
    return data->task_count;
}

int64_t train_data_batch_size(const train_data *data) {
    return data->batch;
}

int64_t train_data_examples(const train_data *data, int32_t task) {
    return data->tasks[task].examples;
}

int64_t train_data_batches(const train_data *data, int32_t task) {
    return data->tasks[task].examples / data->batch;
}

int64_t train_data_steps_per_epoch(const train_data *data) {
    int64_t steps = 0;
    for (int32_t t = 0; t < data->task_count; t++) steps += train_data_batches(data, t);
    return steps;
}

const char *train_data_task_name(const train_data *data, int32_t task) {
    return data->tasks[task].name;
}

void train_epoch_free(train_epoch *plan) {
    if (plan->order != NULL) {
        for (int32_t t = 0; t < plan->task_count; t++) free(plan->order[t]);
    }
    free(plan->order);
    free(plan->task);
    free(plan->batch);
    memset(plan, 0, sizeof *plan);
}

int train_epoch_plan(const train_data *data, uint64_t seed, int64_t epoch, train_epoch *plan, gr_error *err) {
    memset(plan, 0, sizeof *plan);
    int64_t steps = train_data_steps_per_epoch(data);
    plan->epoch = epoch;
    plan->steps = steps;
    plan->task_count = data->task_count;
    plan->task = malloc(sizeof *plan->task * (size_t)(steps + 1));
    plan->batch = malloc(sizeof *plan->batch * (size_t)(steps + 1));
    plan->order = calloc((size_t)data->task_count + 1, sizeof *plan->order);
    int64_t *list = malloc(sizeof *list * (size_t)(steps + 1));
    int64_t *taken = calloc((size_t)data->task_count + 1, sizeof *taken);
    bool ok = plan->task != NULL && plan->batch != NULL && plan->order != NULL && list != NULL && taken != NULL;
    for (int32_t t = 0; ok && t < data->task_count; t++) {
        int64_t n = data->tasks[t].examples;
        plan->order[t] = malloc(sizeof **plan->order * (size_t)(n + 1));
        if (plan->order[t] == NULL) {
            ok = false;
            break;
        }
        for (int64_t i = 0; i < n; i++) plan->order[t][i] = i;
        train_shuffle(plan->order[t], n, train_order_state(seed, epoch, t));
    }
    if (ok) {
        int64_t used = 0;
        for (int32_t t = 0; t < data->task_count; t++) {
            for (int64_t b = 0; b < train_data_batches(data, t); b++) list[used++] = t;
        }
        train_shuffle(list, steps, train_hash(seed, TRAIN_STREAM_TASKS, (uint64_t)epoch));
        for (int64_t i = 0; i < steps; i++) {
            int32_t t = (int32_t)list[steps - 1 - i]; /* popped from the end */
            plan->task[i] = t;
            plan->batch[i] = taken[t]++;
        }
    }
    free(list);
    free(taken);
    if (!ok) {
        train_epoch_free(plan);
        return gr_fail(err, "out of memory planning epoch %" PRId64, epoch);
    }
    return 0;
}

void train_fill_batch(const train_data *data, const train_epoch *plan, int64_t position, void *const *buffers) {
    int32_t t = plan->task[position];
    train_fill_examples(data, t, plan->order[t] + plan->batch[position] * data->batch, buffers);
}

void train_fill_examples(const train_data *data, int32_t t, const int64_t *order, void *const *buffers) {
    const task *k = &data->tasks[t];
    for (int32_t i = 0; i < data->input_count; i++) {
        int64_t bytes = data->inputs[i].example_bytes;
        unsigned char *destination = buffers[data->inputs[i].param];
        for (int64_t j = 0; j < data->batch; j++) {
            if (bytes > 0) memcpy(destination + j * bytes, k->sources[i] + order[j] * bytes, (size_t)bytes);
        }
    }
}

/* ============================================================================================ */
/* Text files: atomic writes, the curve (CSV + SVG), the log                                    */
/* ============================================================================================ */


/* A text being built in memory (open_memstream). */
typedef struct text_file {
    FILE *stream;
    char *bytes;
    size_t length;
} text_file;

static int text_open(text_file *t, const char *path, gr_error *err) {
    memset(t, 0, sizeof *t);
    t->stream = open_memstream(&t->bytes, &t->length);
    return t->stream == NULL ? gr_fail(err, "%s: out of memory", path) : 0;
}

/* Closes the stream and writes the text to `path` atomically. */
static int text_commit(text_file *t, const char *path, gr_error *err) {
    bool ok = !ferror(t->stream);
    if (fclose(t->stream) != 0) ok = false;
    int status = ok ? write_file_atomically(path, t->bytes, t->length, err) : gr_fail(err, "%s: out of memory", path);
    free(t->bytes);
    return status;
}

/* The losses and learning rates of the steps so far (for the curve). */
typedef struct history {
    int64_t *step;
    double *loss;
    double *lr;
    int64_t count;
    int64_t capacity;
} history;

static int history_add(history *h, int64_t step, double loss, double lr) {
    if (h->count == h->capacity) {
        int64_t capacity = h->capacity > 0 ? h->capacity * 2 : 256;
        int64_t *steps = realloc(h->step, sizeof *steps * (size_t)capacity);
        if (steps == NULL) return -1;
        h->step = steps;
        double *losses = realloc(h->loss, sizeof *losses * (size_t)capacity);
        if (losses == NULL) return -1;
        h->loss = losses;
        double *rates = realloc(h->lr, sizeof *rates * (size_t)capacity);
        if (rates == NULL) return -1;
        h->lr = rates;
        h->capacity = capacity;
    }
    h->step[h->count] = step;
    h->loss[h->count] = loss;
    h->lr[h->count] = lr;
    h->count++;
    return 0;
}

static void history_free(history *h) {
    free(h->step);
    free(h->loss);
    free(h->lr);
    memset(h, 0, sizeof *h);
}

/* A tick spacing of 1, 2 or 5 × 10^k giving about `target` intervals over `range` (> 0). */
static double nice_spacing(double range, int target) {
    double raw = range / target;
    double magnitude = pow(10, floor(log10(raw)));
    double fraction = raw / magnitude;
    double nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
    return nice * magnitude;
}

/* An axis [low, high] widened to multiples of its tick spacing. */
typedef struct axis {
    double low, high, spacing;
} axis;

static axis nice_axis(double low, double high) {
    if (!(high > low)) {
        double pad = low != 0 ? fabs(low) * 0.1 : 1;
        low -= pad;
        high += pad;
    }
    axis a;
    a.spacing = nice_spacing(high - low, 5);
    a.low = floor(low / a.spacing) * a.spacing;
    a.high = ceil(high / a.spacing) * a.spacing;
    return a;
}

/* A tick label without noise like 0.30000000000000004. */
static void tick_label(char *out, size_t size, double value, double spacing) {
    if (fabs(value) < spacing * 1e-9) value = 0;
    snprintf(out, size, "%.4g", value);
}

/* The SVG plot: the loss (left axis, blue) and the learning rate (right axis, orange, dashed)
 * against the step; a frame, grid lines, ticks with labels, a legend. */
static void write_svg(FILE *f, const history *h) {
    const double width = 800, height = 450, left = 80, right = 80, top = 40, bottom = 56;
    const double plot_w = width - left - right, plot_h = height - top - bottom;
    int64_t last = h->count > 0 ? h->step[h->count - 1] : 1;
    double loss_min = INFINITY, loss_max = -INFINITY, lr_max = 0;
    for (int64_t i = 0; i < h->count; i++) {
        if (h->loss[i] < loss_min) loss_min = h->loss[i];
        if (h->loss[i] > loss_max) loss_max = h->loss[i];
        if (h->lr[i] > lr_max) lr_max = h->lr[i];
    }
    if (h->count == 0) {
        loss_min = 0;
        loss_max = 1;
    }
    axis xs = nice_axis(0, (double)(last > 1 ? last : 1));
    axis ys = nice_axis(loss_min, loss_max);
    axis rs = nice_axis(0, lr_max > 0 ? lr_max : 1);
    rs.low = 0;
#define X(v) (left + ((v) - xs.low) / (xs.high - xs.low) * plot_w)
#define Y(v) (top + plot_h - ((v) - ys.low) / (ys.high - ys.low) * plot_h)
#define R(v) (top + plot_h - ((v) - rs.low) / (rs.high - rs.low) * plot_h)
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">training loss and learning rate</text>\n",
            width, height, width, height, width / 2);
    char label[64];
    /* grid and ticks */
    for (double v = xs.low; v <= xs.high + xs.spacing * 1e-6; v += xs.spacing) {
        tick_label(label, sizeof label, v, xs.spacing);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                X(v), top, X(v), top + plot_h, X(v), top + plot_h, X(v), top + plot_h + 5, X(v), top + plot_h + 19, label);
    }
    for (double v = ys.low; v <= ys.high + ys.spacing * 1e-6; v += ys.spacing) {
        tick_label(label, sizeof label, v, ys.spacing);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#1f77b4\">%s</text>\n",
                left, Y(v), left + plot_w, Y(v), left - 5, Y(v), left, Y(v), left - 8, Y(v) + 4, label);
    }
    for (double v = rs.low; v <= rs.high + rs.spacing * 1e-6; v += rs.spacing) {
        tick_label(label, sizeof label, v, rs.spacing);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\" fill=\"#ff7f0e\">%s</text>\n",
                left + plot_w, R(v), left + plot_w + 5, R(v), left + plot_w + 8, R(v) + 4, label);
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n"
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n"
            "<text transform=\"translate(20 %.1f) rotate(-90)\" text-anchor=\"middle\" fill=\"#1f77b4\">loss</text>\n"
            "<text transform=\"translate(%.1f %.1f) rotate(90)\" text-anchor=\"middle\" fill=\"#ff7f0e\">learning rate</text>\n",
            left, top, plot_w, plot_h, left + plot_w / 2, height - 12, top + plot_h / 2, width - 14, top + plot_h / 2);
    /* the lines, thinned to at most PLOT_POINTS points (the last point always kept) */
    int64_t stride = h->count > PLOT_POINTS ? (h->count + PLOT_POINTS - 1) / PLOT_POINTS : 1;
    const char *colors[2] = {"#1f77b4", "#ff7f0e"};
    for (int line = 0; line < 2; line++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"", colors[line],
                line == 1 ? " stroke-dasharray=\"6 3\"" : "");
        for (int64_t i = 0; i < h->count; i++) {
            if (i % stride != 0 && i != h->count - 1) continue;
            double y = line == 0 ? Y(h->loss[i]) : R(h->lr[i]);
            fprintf(f, "%s%.2f,%.2f", i > 0 ? " " : "", X((double)h->step[i]), y);
        }
        fprintf(f, "\"/>\n");
    }
    if (h->count == 0) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no steps yet</text>\n", left + plot_w / 2, top + plot_h / 2);
    }
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>"
            "<text x=\"%.1f\" y=\"%.1f\">loss</text>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ff7f0e\" stroke-width=\"1.5\" stroke-dasharray=\"6 3\"/>"
            "<text x=\"%.1f\" y=\"%.1f\">learning rate</text>\n"
            "</svg>\n",
            left + plot_w - 150, top + 14, left + plot_w - 125, top + 14, left + plot_w - 120, top + 18, left + plot_w - 150,
            top + 32, left + plot_w - 125, top + 32, left + plot_w - 120, top + 36);
#undef X
#undef Y
#undef R
}

/* The SVG file next to the CSV one: CURVE.csv → CURVE.svg, anything else → anything.svg. */
static char *svg_path_of(const char *csv) {
    size_t length = strlen(csv);
    bool replace = length > 4 && strcmp(csv + length - 4, ".csv") == 0;
    size_t stem = replace ? length - 4 : length;
    char *path = malloc(stem + 5);
    if (path != NULL) {
        memcpy(path, csv, stem);
        memcpy(path + stem, ".svg", 5);
    }
    return path;
}

static const char *number_format(gr_dtype dtype) {
    return dtype == GR_F64 ? "%.17g" : "%.9g";
}

/* CURVE.csv (step,loss,lr) and CURVE.svg, each atomically. */
static int write_curve(const char *csv_path, const history *h, gr_dtype loss_dtype, gr_dtype lr_dtype, gr_error *err) {
    char *svg_path = svg_path_of(csv_path);
    if (svg_path == NULL) return gr_fail(err, "%s: out of memory", csv_path);
    text_file t;
    int status = text_open(&t, csv_path, err);
    if (status == 0) {
        fprintf(t.stream, "step,loss,lr\n");
        for (int64_t i = 0; i < h->count; i++) {
            fprintf(t.stream, "%" PRId64 ",", h->step[i]);
            fprintf(t.stream, number_format(loss_dtype), h->loss[i]);
            fprintf(t.stream, ",");
            fprintf(t.stream, number_format(lr_dtype), h->lr[i]);
            fprintf(t.stream, "\n");
        }
        status = text_commit(&t, csv_path, err);
    }
    if (status == 0) status = text_open(&t, svg_path, err);
    if (status == 0) {
        write_svg(t.stream, h);
        status = text_commit(&t, svg_path, err);
    }
    free(svg_path);
    return status;
}

/* Reads a whole text file (NULL with *missing set when it does not exist). */
static char *read_text(const char *path, size_t *length, bool *missing) {
    *missing = false;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *missing = errno == ENOENT;
        return NULL;
    }
    size_t capacity = 4096, n = 0;
    char *bytes = malloc(capacity + 1);
    while (bytes != NULL) {
        if (n == capacity) {
            char *grown = realloc(bytes, capacity * 2 + 1);
            if (grown == NULL) {
                free(bytes);
                bytes = NULL;
                break;
            }
            bytes = grown;
            capacity *= 2;
        }
        size_t got = fread(bytes + n, 1, capacity - n, f);
        if (got == 0) break;
        n += got;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(bytes);
        return NULL;
    }
    if (bytes != NULL) bytes[n] = '\0';
    *length = n;
    return bytes;
}

/* The next line of a NUL-terminated text (its newline replaced by NUL), or NULL at the end. */
static char *next_line(char **cursor) {
    char *line = *cursor;
    if (line == NULL || *line == '\0') return NULL;
    char *newline = strchr(line, '\n');
    if (newline != NULL) {
        *newline = '\0';
        *cursor = newline + 1;
    } else {
        *cursor = line + strlen(line);
    }
    return line;
}

/* The step of a log line `{"step": K, ...` or of a curve row `K,...` (-1 if it is neither). */
static int64_t leading_step(const char *line, bool json) {
    const char *prefix = "{\"step\": ";
    if (json) {
        if (strncmp(line, prefix, strlen(prefix)) != 0) return -1;
        line += strlen(prefix);
    }
    if (*line < '0' || *line > '9') return -1;
    char *end;
    errno = 0;
    long long step = strtoll(line, &end, 10);
    if (errno != 0 || (*end != ',' && !(json && *end == '}'))) return -1;
    return (int64_t)step;
}

/* ============================================================================================ */
/* Options                                                                                      */
/* ============================================================================================ */

typedef struct train_options {
    const char *weights;
    const char *data[MAX_DATA];
    int32_t data_count;
    int64_t steps;  /* -1 unless given */
    int64_t epochs; /* -1 unless given */
    double lr;
    bool lr_given;
    double warmup_ratio;
    bool warmup_given;
    uint64_t seed;
    bool seed_given;
    const char *checkpoint;
    int64_t checkpoint_every; /* 0: only at the end */
    const char *resume;
    int64_t stop_at; /* -1 unless given */
    const char *log;
    const char *curve;
    const char *function;
    int threads;
    bool resident_weights;
} train_options;

void train_print_usage(FILE *out, const char *program) {
    fprintf(out,
            "  %s train --weights W.safetensors --data D.safetensors [--data D2.safetensors ...]\n"
            "        (--steps N | --epochs E) --lr LR [--warmup-ratio R] [--seed S] [--checkpoint C.safetensors]\n"
            "        [--checkpoint-every K] [--resume C.safetensors] [--stop-at STEP] [--log LOG.jsonl]\n"
            "        [--curve CURVE.csv] [--function NAME] [--threads N] [--resident-weights]\n",
            program);
}

static void print_train_help(FILE *out, const char *program) {
    fprintf(out, "usage:\n");
    train_print_usage(out, program);
    fprintf(out,
            "\n"
            "Trains with the program's @<f>_train_step function (loss, gradients, clipping and one AdamW\n"
            "update per call). Frozen and trainable weights come from --weights, the optimizer state\n"
            "starts at zero (or comes from --resume), each step takes one batch of one task (--data file).\n"
            "\n"
            "options:\n"
            "  --weights W         frozen and trainable parameters, by name\n"
            "  --data D            a dataset (one task): each batch parameter of the train step as a tensor\n"
            "                      with a leading axis of N examples; several --data files are sampled\n"
            "                      round robin, one single-task batch per step\n"
            "  --steps N           train N steps in all (epochs as needed), or\n"
            "  --epochs E          E epochs (every full batch of every task once per epoch)\n"
            "  --lr LR             peak learning rate: linear warm-up over int(R * total steps) steps, then\n"
            "                      linear decay to 0\n"
            "  --warmup-ratio R    in [0, 1] (default 0.1)\n"
            "  --seed S            seeds the data order and the dropout seeds (default 0)\n"
            "  --checkpoint C      write the trainable parameters, the optimizer state and the position\n"
            "                      here (safetensors, atomically) at the end and after an interruption\n"
            "  --checkpoint-every K  also every K steps\n"
            "  --resume C          continue from checkpoint C: the same steps follow as without the\n"
            "                      interruption (omitted --steps/--epochs/--lr/--warmup-ratio/--seed are\n"
            "                      taken from C; given ones must match)\n"
            "  --stop-at STEP      stop after global step STEP, as if interrupted (to split a run)\n"
            "  --log LOG           one JSON line per step: step, epoch, task, loss, grad_norm, lr, seconds\n"
            "  --curve CURVE.csv   step,loss,lr rows and a plot CURVE.svg, at checkpoints and at the end\n"
            "  --function NAME     the train step function (default: the one whose name ends in _train_step)\n"
            "  --threads N         threads for the kernels (default: $GRANULE_THREADS, else every CPU)\n"
            "  --resident-weights  keep the frozen weights mapped in the process between reads; by default a\n"
            "                      large frozen weight is dropped after its forward read and mapped again\n"
            "                      from the page cache for its backward read, so a step's peak memory holds\n"
            "                      only the layers in use (for 2-7%% of a BART-base batch-4 step in faults)\n"
            "  Options take their value as `--name VALUE` or `--name=VALUE`.\n"
            "\n"
            "SIGINT/SIGTERM finish the current step, write the checkpoint and exit 0; a second one kills.\n"
            "A NaN or infinite loss or gradient norm stops the run (exit 1) without writing a checkpoint.\n");
}


/* A decimal integer in [low, high], digits only. */
static bool parse_integer(const char *text, int64_t low, int64_t high, int64_t *out) {
    if (text[0] == '\0' || strlen(text) > 19) return false;
    uint64_t value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') return false;
        value = value * 10 + (uint64_t)(*c - '0');
    }
    if (value > (uint64_t)INT64_MAX || (int64_t)value < low || (int64_t)value > high) return false;
    *out = (int64_t)value;
    return true;
}

/* A finite decimal number (strtod syntax, nothing after it). */
static bool parse_real(const char *text, double *out) {
    if (text[0] == '\0') return false;
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (*end != '\0' || errno != 0 || !isfinite(value)) return false;
    *out = value;
    return true;
}

/* Returns EXIT_OK, EXIT_USAGE, or -1 for --help. */
static int parse_options(const char *program, int argc, char **argv, train_options *o, FILE *err) {
    static const char *const known[] = {"--weights", "--data", "--steps", "--epochs", "--lr", "--warmup-ratio", "--seed",
                                        "--checkpoint", "--checkpoint-every", "--resume", "--stop-at", "--log", "--curve",
                                        "--function", "--threads", NULL};
    bool given[16] = {false};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
        if (strncmp(arg, "--", 2) != 0) return command_usage_error(err, program, "train", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--resident-weights") == 0) {
            o->resident_weights = true;
            continue;
        }
        char name[64];
        const char *value = gr_split_option(arg, name, sizeof name);
        int which = -1;
        for (int k = 0; known[k] != NULL; k++) {
            if (strcmp(name, known[k]) == 0) which = k;
        }
        if (strcmp(name, "--resident-weights") == 0) return command_usage_error(err, program, "train", "option '%s' takes no value", name);
        if (which < 0) return command_usage_error(err, program, "train", "train: unknown option '%s'", name);
        if (value == NULL) {
            if (i + 1 >= argc) return command_usage_error(err, program, "train", "option '%s' needs a value", name);
            value = argv[++i];
        }
        if (strcmp(name, "--data") == 0) {
            if (o->data_count == MAX_DATA) return command_usage_error(err, program, "train", "too many --data (at most %d)", MAX_DATA);
            o->data[o->data_count++] = value;
            continue;
        }
        if (given[which]) return command_usage_error(err, program, "train", "option '%s' is given more than once", name);
        given[which] = true;
        int64_t integer = 0;
        if (strcmp(name, "--weights") == 0) {
            o->weights = value;
        } else if (strcmp(name, "--checkpoint") == 0) {
            o->checkpoint = value;
        } else if (strcmp(name, "--resume") == 0) {
            o->resume = value;
        } else if (strcmp(name, "--log") == 0) {
            o->log = value;
        } else if (strcmp(name, "--curve") == 0) {
            o->curve = value;
        } else if (strcmp(name, "--function") == 0) {
            o->function = value;
        } else if (strcmp(name, "--lr") == 0) {
            if (!parse_real(value, &o->lr) || o->lr < 0) {
                return command_usage_error(err, program, "train", "--lr must be a finite number >= 0, got '%s'", value);
            }
            o->lr_given = true;
        } else if (strcmp(name, "--warmup-ratio") == 0) {
            if (!parse_real(value, &o->warmup_ratio) || o->warmup_ratio < 0 || o->warmup_ratio > 1) {
                return command_usage_error(err, program, "train", "--warmup-ratio must be a number in [0, 1], got '%s'", value);
            }
            o->warmup_given = true;
        } else if (strcmp(name, "--seed") == 0) {
            if (!parse_integer(value, 0, INT64_MAX, &integer)) {
                return command_usage_error(err, program, "train", "--seed must be an integer in [0, %" PRId64 "], got '%s'", INT64_MAX, value);
            }
            o->seed = (uint64_t)integer;
            o->seed_given = true;
        } else if (strcmp(name, "--threads") == 0) {
            if (!parse_integer(value, 1, GR_MAX_THREADS, &integer)) {
                return command_usage_error(err, program, "train", "--threads must be an integer in [1, %d], got '%s'", GR_MAX_THREADS, value);
            }
            o->threads = (int)integer;
        } else {
            int64_t *slot = strcmp(name, "--steps") == 0              ? &o->steps
                            : strcmp(name, "--epochs") == 0           ? &o->epochs
                            : strcmp(name, "--checkpoint-every") == 0 ? &o->checkpoint_every
                                                                       : &o->stop_at;
            if (!parse_integer(value, 1, MAX_COUNT, slot)) {
                return command_usage_error(err, program, "train", "%s must be an integer in [1, %" PRId64 "], got '%s'", name, MAX_COUNT, value);
            }
        }
    }
    if (o->weights == NULL) return command_usage_error(err, program, "train", "train needs --weights FILE");
    if (o->data_count == 0) return command_usage_error(err, program, "train", "train needs --data FILE");
    if (o->steps > 0 && o->epochs > 0) return command_usage_error(err, program, "train", "give --steps or --epochs, not both");
    if (o->resume == NULL) {
        if (o->steps < 0 && o->epochs < 0) return command_usage_error(err, program, "train", "train needs --steps N or --epochs E");
        if (!o->lr_given) return command_usage_error(err, program, "train", "train needs --lr LR");
    }
    if (o->checkpoint_every > 0 && o->checkpoint == NULL) {
        return command_usage_error(err, program, "train", "--checkpoint-every needs --checkpoint FILE");
    }
    if (!o->warmup_given) o->warmup_ratio = 0.1;
    return EXIT_OK;
}

/* ============================================================================================ */
/* The trainer                                                                                  */
/* ============================================================================================ */

typedef struct trainer {
    const gr_function *fn;
    train_options opt;
    FILE *out;
    FILE *err;
    gr_safetensors *weights;
    gr_safetensors *resume;
    train_data *data;
    gr_runtime *rt;
    gr_binding *binding;
    void **buffers; /* [param_count]: what each parameter points at */
    void **owned;   /* [param_count]: aligned blocks the trainer frees */
    int32_t lr_param, seed_param, step_param, grad_norm_result;
    int64_t steps_per_epoch;
    int64_t total;  /* T */
    int64_t epochs; /* -1 in --steps mode */
    int64_t warmup; /* W */
    int64_t start;  /* global steps done when this run started */
    int64_t step;   /* global steps done */
    double lr;
    uint64_t seed;
    train_epoch plan;
    history curve;
    FILE *log;
} trainer;

static void trainer_free(trainer *t) {
    if (t->owned != NULL && t->fn != NULL) {
        for (int32_t i = 0; i < t->fn->param_count; i++) gr_aligned_free(t->owned[i]);
    }
    free(t->owned);
    free(t->buffers);
    gr_binding_free(t->binding);
    gr_runtime_destroy(t->rt);
    train_data_free(t->data);
    gr_safetensors_close(t->weights);
    gr_safetensors_close(t->resume);
    train_epoch_free(&t->plan);
    history_free(&t->curve);
    if (t->log != NULL) fclose(t->log);
}

/* The train step: --function, else the one function whose name ends in "_train_step". */
static const gr_function *find_train_step(const gr_program *program, const char *requested, gr_error *err) {
    if (requested != NULL) {
        const gr_function *fn = gr_program_find(program, requested);
        if (fn == NULL) {
            gr_fail(err, "the program has no function '%s'", requested);
            return NULL;
        }
        /* Training a function that writes no trainable parameter would "train" nothing. */
        bool updates = false;
        for (int32_t r = 0; r < fn->result_count; r++) {
            if (fn->results[r].writes >= 0 && fn->params[fn->results[r].writes].role == GR_ROLE_TRAINABLE) updates = true;
        }
        if (!updates) {
            gr_fail(err, "--function %s: no result of it writes a trainable parameter, so training would change nothing (train "
                         "runs a train step: a function the adamw pass built, named <f>_train_step)",
                    requested);
            return NULL;
        }
        return fn;
    }
    const gr_function *found = NULL;
    char names[1024] = "";
    size_t used = 0;
    for (int32_t f = 0; f < gr_program_function_count(program); f++) {
        const gr_function *fn = gr_program_function(program, f);
        size_t length = strlen(fn->name), suffix = strlen("_train_step");
        if (used < sizeof names) {
            int n = snprintf(names + used, sizeof names - used, "%s%s", f > 0 ? ", " : "", fn->name);
            if (n > 0) used += (size_t)n;
        }
        if (length < suffix || strcmp(fn->name + length - suffix, "_train_step") != 0) continue;
        if (found != NULL) {
            gr_fail(err, "the program has several train step functions ('%s', '%s', ...); pick one with --function NAME", found->name,
                 fn->name);
            return NULL;
        }
        found = fn;
    }
    if (found == NULL) {
        gr_fail(err, "the program has no train step function (a function whose name ends in _train_step; compile with the adamw "
                  "pass); its functions: %s",
             names);
    }
    return found;
}

/* Points parameter i at its tensor in `file` (params.h). */
static int load_parameter(trainer *t, int32_t i, gr_safetensors *file, const char *role_text, bool mapped, gr_error *err) {
    return param_load(t->fn, i, file, role_text, mapped, &t->buffers[i], &t->owned[i], err);
}

/* A zeroed owned buffer for parameter i. */
static int zero_parameter(trainer *t, int32_t i, gr_error *err) {
    const gr_value_spec *spec = &t->fn->params[i];
    void *block = gr_aligned_alloc((size_t)spec->bytes);
    if (block == NULL) return gr_fail(err, "parameter '%s': out of memory (%" PRId64 " bytes)", spec->name, spec->bytes);
    if (spec->bytes > 0) memset(block, 0, (size_t)spec->bytes);
    t->owned[i] = t->buffers[i] = block;
    return 0;
}

static bool is_float_scalar(const gr_value_spec *spec) {
    return spec->rank == 0 && (spec->dtype == GR_F32 || spec->dtype == GR_F64);
}

/* Metadata of the checkpoint being resumed, parsed strictly. */
static const char *resume_text(trainer *t, const char *key, gr_error *err) {
    const char *value = gr_safetensors_metadata_find(t->resume, key);
    if (value == NULL) gr_fail(err, "%s: not a train checkpoint of this program: no metadata '%s'", t->opt.resume, key);
    return value;
}

static int resume_integer(trainer *t, const char *key, int64_t *out, gr_error *err) {
    const char *value = resume_text(t, key, err);
    if (value == NULL) return -1;
    if (!parse_integer(value, 0, INT64_MAX, out)) return gr_fail(err, "%s: metadata '%s' is not an integer: '%s'", t->opt.resume, key, value);
    return 0;
}

static int resume_real(trainer *t, const char *key, double *out, gr_error *err) {
    const char *value = resume_text(t, key, err);
    if (value == NULL) return -1;
    if (!parse_real(value, out)) return gr_fail(err, "%s: metadata '%s' is not a number: '%s'", t->opt.resume, key, value);
    return 0;
}

/* "10,4": the examples of every task. */
static void examples_text(const train_data *data, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (int32_t k = 0; k < train_data_task_count(data) && used < size; k++) {
        int n = snprintf(out + used, size - used, "%s%" PRId64, k > 0 ? "," : "", train_data_examples(data, k));
        if (n > 0) used += (size_t)n;
    }
}

/* "vqa,gqa": the task names, in --data order. */
static void tasks_text(const train_data *data, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (int32_t k = 0; k < train_data_task_count(data) && used < size; k++) {
        int n = snprintf(out + used, size - used, "%s%s", k > 0 ? "," : "", train_data_task_name(data, k));
        if (n > 0) used += (size_t)n;
    }
}

/* Reads the checkpoint's position and settings; omitted options take its values, given ones must
 * agree (anything else would break the bit-identical continuation). */
static int reconcile_resume(trainer *t, gr_error *err) {
    const char *path = t->opt.resume;
    const char *format = resume_text(t, "granule_train", err);
    if (format == NULL) return -1;
    if (strcmp(format, CHECKPOINT_FORMAT) != 0) {
        return gr_fail(err, "%s: train checkpoint format '%s', this program reads '%s'", path, format, CHECKPOINT_FORMAT);
    }
    const char *function = resume_text(t, "function", err);
    if (function == NULL) return -1;
    if (strcmp(function, t->fn->name) != 0) {
        return gr_fail(err, "%s: the checkpoint is of function '%s', this run trains '%s'", path, function, t->fn->name);
    }
    int64_t step, total, batch, seed, warmup;
    double lr, ratio;
    if (resume_integer(t, "step", &step, err) != 0 || resume_integer(t, "total_steps", &total, err) != 0 ||
        resume_integer(t, "batch_size", &batch, err) != 0 || resume_integer(t, "seed", &seed, err) != 0 ||
        resume_integer(t, "warmup_steps", &warmup, err) != 0 || resume_real(t, "lr", &lr, err) != 0 ||
        resume_real(t, "warmup_ratio", &ratio, err) != 0) {
        return -1;
    }
    /* The metadata obeys the command line's rules: a checkpoint edited by hand must not train with them broken. */
    if (!(isfinite(lr) && lr >= 0)) return gr_fail(err, "%s: metadata 'lr' must be a finite number >= 0, got %.17g", path, lr);
    if (!(ratio >= 0 && ratio <= 1)) return gr_fail(err, "%s: metadata 'warmup_ratio' must be a number in [0, 1], got %.17g", path, ratio);
    const char *examples = resume_text(t, "examples", err);
    if (examples == NULL) return -1;
    char ours[2048];
    examples_text(t->data, ours, sizeof ours);
    if (batch != train_data_batch_size(t->data) || strcmp(examples, ours) != 0) {
        return gr_fail(err,
                    "%s: the checkpoint was trained on tasks of %s examples (batch size %" PRId64 "); --data gives %s (batch size "
                    "%" PRId64 "): resume with the same --data files",
                    path, examples, batch, ours, train_data_batch_size(t->data));
    }
    const char *tasks = resume_text(t, "tasks", err);
    if (tasks == NULL) return -1;
    char our_tasks[4096];
    tasks_text(t->data, our_tasks, sizeof our_tasks);
    if (strcmp(tasks, our_tasks) != 0) {
        return gr_fail(err, "%s: the checkpoint was trained on the tasks %s; --data gives %s: resume with the same --data files", path,
                       tasks, our_tasks);
    }
    if (t->opt.seed_given && t->opt.seed != (uint64_t)seed) {
        return gr_fail(err, "%s: the checkpoint was trained with --seed %" PRId64 ", this run gives --seed %" PRIu64, path, seed, t->opt.seed);
    }
    if (t->opt.lr_given && t->opt.lr != lr) {
        return gr_fail(err, "%s: the checkpoint was trained with --lr %.17g, this run gives --lr %.17g", path, lr, t->opt.lr);
    }
    if (t->opt.warmup_given && t->opt.warmup_ratio != ratio) {
        return gr_fail(err, "%s: the checkpoint was trained with --warmup-ratio %.17g, this run gives %.17g", path, ratio,
                    t->opt.warmup_ratio);
    }
    if (t->opt.epochs > INT64_MAX / 4 / t->steps_per_epoch) return gr_fail(err, "--epochs %" PRId64 " is too many steps", t->opt.epochs);
    int64_t asked = t->opt.steps > 0 ? t->opt.steps : t->opt.epochs > 0 ? t->opt.epochs * t->steps_per_epoch : total;
    if (asked != total) {
        return gr_fail(err, "%s: the checkpoint belongs to a run of %" PRId64 " steps in all, this run asks for %" PRId64
                    " (resume with the same --steps/--epochs, or without them)",
                    path, total, asked);
    }
    if (step > total) return gr_fail(err, "%s: metadata step %" PRId64 " is beyond total_steps %" PRId64, path, step, total);
    const char *epochs = gr_safetensors_metadata_find(t->resume, "epochs");
    t->epochs = -1;
    if (epochs != NULL && !parse_integer(epochs, 1, MAX_COUNT, &t->epochs)) {
        return gr_fail(err, "%s: metadata 'epochs' is not an integer: '%s'", path, epochs);
    }
    t->total = total;
    t->warmup = warmup;
    t->opt.warmup_ratio = ratio;
    t->lr = lr;
    t->seed = (uint64_t)seed;
    t->start = t->step = step;
    if (warmup != train_warmup_steps(ratio, total)) {
        return gr_fail(err, "%s: metadata warmup_steps %" PRId64 " does not match warmup_ratio %.17g of %" PRId64 " steps", path, warmup,
                    ratio, total);
    }
    return 0;
}

/* Binds every parameter (see the file comment, step 1). */
static int bind_parameters(trainer *t, gr_error *err) {
    const gr_function *fn = t->fn;
    t->binding = gr_binding_create(fn, NULL, 0, GR_BIND_ALLOW_MISSING | GR_BIND_RESULTS_IN_PLACE, err);
    if (t->binding == NULL) return -1;
    for (int32_t i = 0; i < fn->param_count; i++) {
        const gr_value_spec *spec = &fn->params[i];
        int status = 0;
        switch (spec->role) {
        case GR_ROLE_FROZEN: status = load_parameter(t, i, t->weights, "frozen", true, err); break;
        case GR_ROLE_TRAINABLE:
            status = load_parameter(t, i, t->resume != NULL ? t->resume : t->weights, "trainable", false, err);
            break;
        case GR_ROLE_STATE:
            status = t->resume != NULL ? load_parameter(t, i, t->resume, "state", false, err) : zero_parameter(t, i, err);
            break;
        case GR_ROLE_INPUT:
        case GR_ROLE_RESULT:
            if (strcmp(spec->name, LEARNING_RATE) == 0 && !is_float_scalar(spec)) {
                char type[256];
                gr_value_spec_type(spec, type, sizeof type);
                return gr_fail(err, "function '%s': '%s' is %s; train feeds it as a float scalar (f32[] or f64[])", fn->name, spec->name,
                            type);
            }
            if (strcmp(spec->name, DROPOUT_SEED) == 0 && !(spec->rank == 0 && spec->dtype == GR_I64)) {
                char type[256];
                gr_value_spec_type(spec, type, sizeof type);
                return gr_fail(err, "function '%s': '%s' is %s; train feeds it as i64[]", fn->name, spec->name, type);
            }
            status = zero_parameter(t, i, err);
            if (strcmp(spec->name, LEARNING_RATE) == 0) t->lr_param = i;
            if (strcmp(spec->name, DROPOUT_SEED) == 0) t->seed_param = i;
            break;
        }
        if (status != 0) return -1;
        if (spec->role == GR_ROLE_STATE && strcmp(spec->name, ADAM_STEP) == 0 && spec->rank == 0 && spec->dtype == GR_I64) {
            t->step_param = i;
        }
        if (gr_binding_set_param(t->binding, i, t->buffers[i], err) != 0) return -1;
        if (spec->role == GR_ROLE_FROZEN && !t->opt.resident_weights) {
            (void)gr_binding_release_between_uses(t->binding, i, t->weights, gr_safetensors_find(t->weights, spec->name));
        }
    }
    if (t->resume != NULL && t->step_param >= 0) {
        int64_t counter = *(const int64_t *)t->buffers[t->step_param];
        if (counter != t->start) {
            return gr_fail(err, "%s: tensor '%s' is %" PRId64 " but the metadata says step %" PRId64 " (the checkpoint is inconsistent)",
                        t->opt.resume, ADAM_STEP, counter, t->start);
        }
    }
    return 0;
}

/* Everything before the first step. */
/* The outputs, checked before anything runs (check_output_path): a missing directory must not cost
 * the whole run, and a checkpoint must not replace --weights or a dataset. */
static int check_outputs(const train_options *o, gr_error *err) {
    const char *names[MAX_DATA + 3], *inputs[MAX_DATA + 3];
    int count = 0;
    names[count] = "--weights", inputs[count++] = o->weights;
    for (int32_t d = 0; d < o->data_count; d++) names[count] = "--data", inputs[count++] = o->data[d];
    if (o->checkpoint != NULL && check_output_path("--checkpoint", o->checkpoint, names, inputs, count, err) != 0) return -1;
    names[count] = "--resume", inputs[count++] = o->resume;
    names[count] = "--checkpoint", inputs[count++] = o->checkpoint;
    if (o->curve != NULL) {
        if (check_output_path("--curve", o->curve, names, inputs, count, err) != 0) return -1;
        char *svg = svg_path_of(o->curve);
        if (svg == NULL) return gr_fail(err, "out of memory");
        int status = check_output_path("--curve (its SVG)", svg, names, inputs, count, err);
        free(svg);
        if (status != 0) return -1;
    }
    return 0;
}

static int trainer_setup(trainer *t, const gr_program *program, gr_error *err) {
    t->lr_param = t->seed_param = t->step_param = t->grad_norm_result = -1;
    if (check_outputs(&t->opt, err) != 0) return -1;
    t->fn = find_train_step(program, t->opt.function, err);
    if (t->fn == NULL) return -1;
    const gr_function *fn = t->fn;
    if (fn->result_count == 0 || !is_float_scalar(&fn->results[0])) {
        return gr_fail(err, "function '%s': the first result must be the loss (a float scalar)", fn->name);
    }
    for (int32_t r = 0; r < fn->result_count; r++) {
        if (strcmp(fn->results[r].name, GRAD_NORM) == 0 && is_float_scalar(&fn->results[r])) t->grad_norm_result = r;
    }
    t->buffers = calloc((size_t)fn->param_count + 1, sizeof *t->buffers);
    t->owned = calloc((size_t)fn->param_count + 1, sizeof *t->owned);
    if (t->buffers == NULL || t->owned == NULL) return gr_fail(err, "out of memory");
    t->data = train_data_open(fn, t->opt.data, t->opt.data_count, err);
    if (t->data == NULL) return -1;
    t->steps_per_epoch = train_data_steps_per_epoch(t->data);
    t->weights = gr_safetensors_open(t->opt.weights, 0, err);
    if (t->weights == NULL) return -1;
    if (t->opt.resume != NULL) {
        t->resume = gr_safetensors_open(t->opt.resume, 0, err);
        if (t->resume == NULL) return -1;
        if (reconcile_resume(t, err) != 0) return -1;
    } else {
        t->epochs = t->opt.epochs;
        if (t->opt.epochs > 0) {
            if (t->opt.epochs > INT64_MAX / 4 / t->steps_per_epoch) {
                return gr_fail(err, "--epochs %" PRId64 " is too many steps", t->opt.epochs);
            }
            t->total = t->opt.epochs * t->steps_per_epoch;
        } else {
            t->total = t->opt.steps;
        }
        t->lr = t->opt.lr;
        t->seed = t->opt.seed;
        t->warmup = train_warmup_steps(t->opt.warmup_ratio, t->total);
    }
    if (bind_parameters(t, err) != 0) return -1;
    t->rt = gr_runtime_create_checked(t->opt.threads, err);
    return t->rt == NULL ? -1 : 0;
}

/* The checkpoint at the current step (see the file comment). */
static int write_checkpoint(trainer *t, gr_error *err) {
    const gr_function *fn = t->fn;
    /* The loss can stay finite for a step after the updates overflow (a huge --lr): a checkpoint
     * of infinities would load and evaluate without complaint, so it is never written. */
    for (int32_t i = 0; i < fn->param_count; i++) {
        const gr_value_spec *spec = &fn->params[i];
        double value;
        if (spec->role != GR_ROLE_TRAINABLE && spec->role != GR_ROLE_STATE) continue;
        if (first_nonfinite(spec->dtype, t->buffers[i], spec->count, &value) >= 0) {
            return gr_fail(err, "%s: not written: tensor '%s' holds a non-finite value after step %" PRId64
                                " (the updates diverged; a lower --lr may help)",
                           t->opt.checkpoint, spec->name, t->step);
        }
    }
    gr_st_write_tensor *tensors = calloc((size_t)fn->param_count + 1, sizeof *tensors);
    if (tensors == NULL) return gr_fail(err, "%s: out of memory", t->opt.checkpoint);
    size_t count = 0;
    for (int pass = 0; pass < 2; pass++) {
        gr_role role = pass == 0 ? GR_ROLE_TRAINABLE : GR_ROLE_STATE;
        for (int32_t i = 0; i < fn->param_count; i++) {
            const gr_value_spec *spec = &fn->params[i];
            if (spec->role != role) continue;
            tensors[count++] = (gr_st_write_tensor){spec->name, gr_st_dtype_of(spec->dtype), spec->rank, spec->shape, t->buffers[i]};
        }
    }
    char step[32], epoch[32], position[32], per_epoch[32], batch[32], seed[32], total[32], epochs[32], lr[48], ratio[48], warmup[32];
    char examples[2048], tasks[4096];
    snprintf(step, sizeof step, "%" PRId64, t->step);
    snprintf(epoch, sizeof epoch, "%" PRId64, t->step / t->steps_per_epoch);
    snprintf(position, sizeof position, "%" PRId64, t->step % t->steps_per_epoch);
    snprintf(per_epoch, sizeof per_epoch, "%" PRId64, t->steps_per_epoch);
    snprintf(batch, sizeof batch, "%" PRId64, train_data_batch_size(t->data));
    snprintf(seed, sizeof seed, "%" PRIu64, t->seed);
    snprintf(total, sizeof total, "%" PRId64, t->total);
    snprintf(epochs, sizeof epochs, "%" PRId64, t->epochs);
    snprintf(lr, sizeof lr, "%.17g", t->lr);
    snprintf(ratio, sizeof ratio, "%.17g", t->opt.warmup_ratio);
    snprintf(warmup, sizeof warmup, "%" PRId64, t->warmup);
    examples_text(t->data, examples, sizeof examples);
    tasks_text(t->data, tasks, sizeof tasks);
    gr_st_metadata metadata[] = {
        {"granule_train", CHECKPOINT_FORMAT}, {"function", fn->name},  {"step", step},           {"epoch", epoch},
        {"epoch_position", position},         {"steps_per_epoch", per_epoch}, {"tasks", tasks}, {"examples", examples},
        {"batch_size", batch},                {"seed", seed},          {"total_steps", total},   {"lr", lr},
        {"warmup_ratio", ratio},              {"warmup_steps", warmup}, {"epochs", epochs},
    };
    size_t metadata_count = sizeof metadata / sizeof metadata[0] - (t->epochs > 0 ? 0 : 1);
    int status = gr_safetensors_write(t->opt.checkpoint, tensors, count, metadata, metadata_count, err);
    free(tensors);
    return status;
}

/* The checkpoint and the curve, as configured. */
static int save(trainer *t, gr_error *err) {
    if (t->opt.checkpoint != NULL && write_checkpoint(t, err) != 0) return -1;
    if (t->opt.curve != NULL) {
        gr_dtype lr_dtype = t->lr_param >= 0 ? t->fn->params[t->lr_param].dtype : GR_F32;
        if (write_curve(t->opt.curve, &t->curve, t->fn->results[0].dtype, lr_dtype, err) != 0) return -1;
    }
    return 0;
}

/* Whether `name` is exactly "<base>.tmp-<pid>-<n>", the temporary file gr_safetensors_write makes
 * for `base` (decimal numbers without leading zeros, pid > 0); sets *pid. */
static bool is_temporary_of(const char *name, const char *base, pid_t *pid) {
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0 || strncmp(name + n, ".tmp-", 5) != 0) return false;
    const char *p = name + n + 5;
    long long value = 0;
    if (*p < '1' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (value > INT32_MAX) return false;
        value = value * 10 + (*p - '0');
    }
    if (*p++ != '-' || (long long)(pid_t)value != value) return false;
    if (p[0] == '0' && p[1] != '\0') return false;
    const char *attempt = p;
    while (*p >= '0' && *p <= '9') p++;
    if (p == attempt || *p != '\0') return false;
    *pid = (pid_t)value;
    return true;
}

/* A SIGKILL, a crash or a power cut during a checkpoint write leaves its temporary file
 * "<checkpoint>.tmp-<pid>-<n>" (as large as a checkpoint; the checkpoint itself stays whole, see
 * train_test.c). Before the first step, remove those of this checkpoint whose writer is gone: that
 * exact name, in the checkpoint's directory, a regular file, and a pid that names no process
 * (kill(pid, 0) fails with ESRCH) or is this process's own (an earlier process with the same pid,
 * e.g. a restarted container's; this one has not written yet). A live process's file (another run
 * writing the same checkpoint) is kept, and so is the --resume file. Pids mean nothing across
 * machines: two machines writing one checkpoint on a shared file system at once is unsupported (the
 * worst case here is that the other run's rename fails and it stops with an error). */
static void remove_stale_temporaries(const trainer *t) {
    const char *path = t->opt.checkpoint;
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    int prefix = slash != NULL ? (int)(slash - path + 1) : 0; /* the directory, with its '/' */
    char directory[4200], candidate[4200];
    if (*base == '\0' || snprintf(directory, sizeof directory, "%.*s", prefix, path) >= (int)sizeof directory) return;
    struct stat resume, info;
    bool has_resume = t->opt.resume != NULL && stat(t->opt.resume, &resume) == 0;
    DIR *dir = opendir(prefix > 0 ? directory : ".");
    if (dir == NULL) return;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        pid_t pid;
        if (!is_temporary_of(e->d_name, base, &pid)) continue;
        if (pid != getpid() && !(kill(pid, 0) != 0 && errno == ESRCH)) continue;
        if (snprintf(candidate, sizeof candidate, "%s%s", directory, e->d_name) >= (int)sizeof candidate) continue;
        if (lstat(candidate, &info) != 0 || !S_ISREG(info.st_mode)) continue;
        if (has_resume && info.st_dev == resume.st_dev && info.st_ino == resume.st_ino) continue;
        if (unlink(candidate) == 0) fprintf(t->err, "removed %s, left by an interrupted checkpoint write\n", candidate);
    }
    closedir(dir);
}

/* On --resume, the log lines and curve rows of steps up to the checkpoint's are kept (a run that
 * went on after its last checkpoint logged steps that will now be taken again); otherwise the log
 * starts empty. The log is then appended to, one flushed line per step. */
static int open_outputs(trainer *t, gr_error *err) {
    if (t->opt.curve != NULL && t->resume != NULL) {
        size_t length = 0;
        bool missing = false;
        char *text = read_text(t->opt.curve, &length, &missing);
        if (text == NULL && !missing) return gr_fail(err, "%s: cannot read the curve to continue it: %s", t->opt.curve, strerror(errno));
        if (text != NULL && strncmp(text, "step,loss,lr\n", 13) == 0) {
            char *cursor = text + 13;
            for (char *line = next_line(&cursor); line != NULL; line = next_line(&cursor)) {
                int64_t step = leading_step(line, false);
                if (step < 1 || step > t->start) continue;
                char *loss_end;
                double loss = strtod(strchr(line, ',') + 1, &loss_end);
                if (*loss_end != ',') continue;
                double lr = strtod(loss_end + 1, NULL);
                /* "%.9g" round-trips a float: round back to it so the rows are as first computed */
                if (t->fn->results[0].dtype == GR_F32) loss = (float)loss;
                if (t->lr_param < 0 || t->fn->params[t->lr_param].dtype == GR_F32) lr = (float)lr;
                if (history_add(&t->curve, step, loss, lr) != 0) {
                    free(text);
                    return gr_fail(err, "%s: out of memory", t->opt.curve);
                }
            }
        }
        free(text);
    }
    if (t->opt.log == NULL) return 0;
    if (t->resume != NULL) {
        size_t length = 0;
        bool missing = false;
        char *text = read_text(t->opt.log, &length, &missing);
        if (text == NULL && !missing) return gr_fail(err, "%s: cannot read the log to continue it: %s", t->opt.log, strerror(errno));
        if (text != NULL) {
            text_file kept;
            if (text_open(&kept, t->opt.log, err) != 0) {
                free(text);
                return -1;
            }
            char *cursor = text;
            for (char *line = next_line(&cursor); line != NULL; line = next_line(&cursor)) {
                int64_t step = leading_step(line, true);
                if (step >= 1 && step <= t->start) fprintf(kept.stream, "%s\n", line);
            }
            free(text);
            if (text_commit(&kept, t->opt.log, err) != 0) return -1;
        }
    }
    t->log = fopen(t->opt.log, t->resume != NULL ? "a" : "w");
    if (t->log == NULL) return gr_fail(err, "%s: cannot open the log: %s", t->opt.log, strerror(errno));
    return 0;
}

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static void format_duration(char *out, size_t size, double seconds) {
    if (!isfinite(seconds) || seconds < 0) seconds = 0;
    long long s = (long long)(seconds + 0.5);
    if (s >= 3600) {
        snprintf(out, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
    } else if (s >= 60) {
        snprintf(out, size, "%lldm%02llds", s / 60, s % 60);
    } else {
        snprintf(out, size, "%llds", s);
    }
}

static void write_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            fprintf(f, "\\%c", *c);
        } else if (*c < 0x20) {
            fprintf(f, "\\u%04x", *c);
        } else {
            fputc(*c, f);
        }
    }
    fputc('"', f);
}

static double scalar_value(const gr_value_spec *spec, const void *data) {
    return spec->dtype == GR_F32 ? (double)*(const float *)data : *(const double *)data;
}

static const char *nonfinite_name(double value) {
    return isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf";
}

typedef enum outcome { FINISHED, STOPPED_AT, INTERRUPTED, FAILED } outcome;

/* The training loop (file comment, steps 2-4). */
static outcome train_loop(trainer *t, gr_error *err) {
    const gr_function *fn = t->fn;
    int64_t end = t->total;
    if (t->opt.stop_at > 0 && t->opt.stop_at < end) end = t->opt.stop_at;
    int64_t batch = train_data_batch_size(t->data);
    double started = seconds_now(), last_progress = -INFINITY;
    gr_dtype loss_dtype = fn->results[0].dtype;
    while (t->step < end) {
        double step_start = seconds_now();
        int64_t k = t->step;
        int64_t epoch = k / t->steps_per_epoch, position = k % t->steps_per_epoch;
        if (t->plan.task == NULL || t->plan.epoch != epoch) {
            train_epoch_free(&t->plan);
            if (train_epoch_plan(t->data, t->seed, epoch, &t->plan, err) != 0) return FAILED;
        }
        train_fill_batch(t->data, &t->plan, position, t->buffers);
        double lr = train_learning_rate(k, t->lr, t->warmup, t->total);
        if (t->lr_param >= 0) {
            if (fn->params[t->lr_param].dtype == GR_F32) {
                float rounded = (float)lr;
                *(float *)t->buffers[t->lr_param] = rounded;
                lr = rounded;
            } else {
                *(double *)t->buffers[t->lr_param] = lr;
            }
        }
        if (t->seed_param >= 0) *(int64_t *)t->buffers[t->seed_param] = train_dropout_seed(t->seed, k);
        gr_binding_clear_results(t->binding);
        const char *task_name = train_data_task_name(t->data, t->plan.task[position]);
        if (gr_binding_call(t->rt, t->binding, err) != 0) {
            char message[GR_ERROR_CAPACITY];
            snprintf(message, sizeof message, "%s", err->message);
            gr_fail(err, "step %" PRId64 " (epoch %" PRId64 ", task %s): %s; stopped without writing a checkpoint", k + 1, epoch, task_name,
                 message);
            return FAILED;
        }
        double loss = scalar_value(&fn->results[0], gr_binding_result(t->binding, 0));
        int32_t g = t->grad_norm_result;
        double norm = g >= 0 ? scalar_value(&fn->results[g], gr_binding_result(t->binding, g)) : 0;
        if (!isfinite(loss) || !isfinite(norm)) {
            char kept[4200] = "";
            if (t->opt.checkpoint != NULL) {
                snprintf(kept, sizeof kept, access(t->opt.checkpoint, F_OK) == 0 ? ", the last one stays in %s" : "; none was written to %s yet",
                         t->opt.checkpoint);
            }
            gr_fail(err, "step %" PRId64 ": the %s is %s (epoch %" PRId64 ", task %s, lr %.9g); stopped without writing a checkpoint%s",
                 k + 1, isfinite(loss) ? "gradient norm" : "loss", nonfinite_name(isfinite(loss) ? norm : loss), epoch, task_name, lr, kept);
            return FAILED;
        }
        for (int32_t r = 0; r < fn->result_count; r++) {
            const gr_value_spec *spec = &fn->results[r];
            if (spec->writes >= 0 && spec->bytes > 0 && !gr_binding_result_in_place(t->binding, r)) {
                memcpy(t->buffers[spec->writes], gr_binding_result(t->binding, r), (size_t)spec->bytes);
            }
        }
        t->step = k + 1;
        double now = seconds_now();
        if (t->log != NULL) {
            fprintf(t->log, "{\"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"task\": ", t->step, epoch);
            write_json_string(t->log, task_name);
            fprintf(t->log, ", \"loss\": ");
            fprintf(t->log, number_format(loss_dtype), loss);
            fprintf(t->log, ", \"grad_norm\": ");
            if (t->grad_norm_result >= 0) {
                fprintf(t->log, number_format(fn->results[t->grad_norm_result].dtype), norm);
            } else {
                fprintf(t->log, "null");
            }
            fprintf(t->log, ", \"lr\": %.9g, \"seconds\": %.6f}\n", lr, now - step_start);
            if (fflush(t->log) != 0 || ferror(t->log)) {
                gr_fail(err, "%s: cannot write the log: %s", t->opt.log, strerror(errno));
                return FAILED;
            }
        }
        if (history_add(&t->curve, t->step, loss, lr) != 0) {
            gr_fail(err, "out of memory for the loss curve");
            return FAILED;
        }
        bool last = t->step == end || stop_signal != 0;
        if (now - last_progress >= 1.0 || last || t->step == t->start + 1) {
            last_progress = now;
            double elapsed = now - started;
            int64_t done = t->step - t->start;
            char eta[32];
            format_duration(eta, sizeof eta, elapsed / (double)done * (double)(end - t->step));
            fprintf(t->err, "step %" PRId64 "/%" PRId64 "  epoch %" PRId64 "  task %s  loss %.6g  lr %.3e  %.1f examples/s  ETA %s\n",
                    t->step, t->total, epoch, task_name, loss, lr, elapsed > 0 ? (double)(done * batch) / elapsed : 0.0, eta);
            fflush(t->err);
        }
        if (stop_signal != 0 && t->step < end) return INTERRUPTED;
        if (t->opt.checkpoint_every > 0 && t->step % t->opt.checkpoint_every == 0 && t->step < end) {
            if (save(t, err) != 0) return FAILED;
        }
    }
    return t->step == t->total ? FINISHED : STOPPED_AT;
}

int train_command(const gr_program *program, const char *program_name, int argc, char **argv, FILE *out, FILE *err_stream) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.opt.steps = t.opt.epochs = t.opt.stop_at = -1;
    t.out = out;
    t.err = err_stream;
    int parsed = parse_options(program_name, argc, argv, &t.opt, err_stream);
    if (parsed < 0) {
        print_train_help(out, program_name);
        return EXIT_OK;
    }
    if (parsed != EXIT_OK) return parsed;

    gr_error err;
    int status = EXIT_ERROR;
    struct sigaction previous_int, previous_term;
    bool handlers = false;
    if (trainer_setup(&t, program, &err) != 0 || open_outputs(&t, &err) != 0) goto done;
    if (t.opt.checkpoint != NULL) remove_stale_temporaries(&t);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    stop_signal = 0;
    sigaction(SIGINT, &action, &previous_int);
    sigaction(SIGTERM, &action, &previous_term);
    handlers = true;

    double started = seconds_now();
    outcome result = train_loop(&t, &err);
    double elapsed = seconds_now() - started;
    if (result == FAILED) {
        /* The curve up to the last good step helps to see what went wrong (never the checkpoint). */
        gr_error curve_err;
        if (t.opt.curve != NULL && t.curve.count > 0) {
            gr_dtype lr_dtype = t.lr_param >= 0 ? t.fn->params[t.lr_param].dtype : GR_F32;
            if (write_curve(t.opt.curve, &t.curve, t.fn->results[0].dtype, lr_dtype, &curve_err) != 0) {
                fprintf(err_stream, "warning: %s\n", curve_err.message);
            }
        }
        goto done;
    }
    if (save(&t, &err) != 0) goto done;
    if (result == INTERRUPTED) {
        const char *name = stop_signal == SIGINT ? "SIGINT" : "SIGTERM";
        fprintf(out, "interrupted by %s after step %" PRId64 " of %" PRId64 "; ", name, t.step, t.total);
    } else if (result == STOPPED_AT) {
        fprintf(out, "stopped after step %" PRId64 " of %" PRId64 " (--stop-at); ", t.step, t.total);
    } else {
        if (t.start == t.total) {
            fprintf(out, "nothing to train: the checkpoint is at step %" PRId64 " of %" PRId64, t.total, t.total);
        } else if (t.start > 0) {
            fprintf(out, "trained steps %" PRId64 "-%" PRId64 " of %" PRId64, t.start + 1, t.total, t.total);
        } else {
            fprintf(out, "trained %" PRId64 " step%s", t.total, t.total == 1 ? "" : "s");
        }
        if (t.epochs > 0) fprintf(out, " (%" PRId64 " epoch%s)", t.epochs, t.epochs == 1 ? "" : "s");
        fprintf(out, " in %.2f s", elapsed);
        if (t.curve.count > 0) {
            fprintf(out, ", final loss ");
            fprintf(out, number_format(t.fn->results[0].dtype), t.curve.loss[t.curve.count - 1]);
        }
        fprintf(out, ", peak RSS %.1f MiB\n", peak_rss_mib());
    }
    if (result != FINISHED) {
        if (t.opt.checkpoint != NULL) {
            fprintf(out, "checkpoint written to %s (continue with --resume %s)\n", t.opt.checkpoint, t.opt.checkpoint);
        } else {
            fprintf(out, "no --checkpoint given, nothing saved\n");
        }
    } else if (t.opt.checkpoint != NULL) {
        fprintf(out, "checkpoint: %s\n", t.opt.checkpoint);
    }
    if (t.opt.curve != NULL) {
        char *svg = svg_path_of(t.opt.curve);
        fprintf(out, "curve: %s and %s\n", t.opt.curve, svg != NULL ? svg : "(svg)");
        free(svg);
    }
    if (t.opt.log != NULL) fprintf(out, "log: %s\n", t.opt.log);
    status = EXIT_OK;
done:
    if (handlers) {
        sigaction(SIGINT, &previous_int, NULL);
        sigaction(SIGTERM, &previous_term, NULL);
    }
    if (status != EXIT_OK) fprintf(err_stream, "error: %s\n", err.message);
    trainer_free(&t);
    return status;
}
