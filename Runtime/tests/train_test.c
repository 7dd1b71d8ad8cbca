/*
 * train_test.c: the `train` command (Runtime/main/train.c) with the hand-written train step of
 * train_fake_program.c: the generator, the data order, the learning-rate schedule and the datasets
 * on their own, then whole runs in-process (checkpoints, resume bit-identity, the NaN stop, an
 * interruption, errors) and, given the path of `fake_trainer` (main.c + the fake program), the
 * command line end to end with a real SIGTERM; given also `fake_trainer_wide` (train_wide_fake_program.c,
 * a checkpoint of 2 MiB), SIGKILLs in the middle of checkpoint writes.
 *
 * Usage: train_tests [PATH/TO/fake_trainer [PATH/TO/fake_trainer_wide]]
 */
#include "test.h"
#include "../main/train.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const char granule_manifest[];
extern gr_entry_fn const granule_entries[];

/* Test state: the loaded fake program, a scratch directory and the executable (or NULL). */
static gr_program *program;
static char directory[512];
static const char *trainer_path;
static const char *wide_trainer_path;

static void path_in(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", directory, name);
}

/* ---- files ---------------------------------------------------------------------------------------- */

static const float true_w[3] = {1.0f, -2.0f, 0.5f};

/* A task file of n examples: x[n,3] with y = Σ true_w·x (x_j0 = marker when marker != 0). */
static void write_task(const char *name, int64_t n, float marker, float poison) {
    char path[700];
    path_in(path, sizeof path, name);
    float *x = malloc(sizeof *x * (size_t)(3 * n + 1));
    float *y = malloc(sizeof *y * (size_t)(n + 1));
    for (int64_t j = 0; j < n; j++) {
        y[j] = 0;
        for (int i = 0; i < 3; i++) {
            x[j * 3 + i] = (float)((j * 7 + i * 3) % 11) / 5.0f - 1.0f;
            if (i == 0 && marker != 0) x[j * 3] = marker;
            if (poison != 0) x[j * 3 + i] = poison;
            y[j] += true_w[i] * x[j * 3 + i];
        }
    }
    int64_t x_shape[2] = {n, 3}, y_shape[1] = {n};
    gr_st_write_tensor tensors[2] = {{"x", GR_ST_F32, 2, x_shape, x}, {"y", GR_ST_F32, 1, y_shape, y}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(path, tensors, 2, NULL, 0, &err), 0);
    free(x);
    free(y);
}

static void write_weights(void) {
    char path[700];
    path_in(path, sizeof path, "weights.safetensors");
    float scale[3] = {1, 1, 1}, w[3] = {0, 0, 0};
    int64_t shape[1] = {3};
    gr_st_write_tensor tensors[2] = {{"frozen.scale", GR_ST_F32, 1, shape, scale}, {"w", GR_ST_F32, 1, shape, w}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(path, tensors, 2, NULL, 0, &err), 0);
}

typedef struct result {
    int status;
    char out[8192];
    char err[16384];
} result;

static void slurp(FILE *f, char *buffer, size_t size) {
    fflush(f);
    rewind(f);
    size_t n = fread(buffer, 1, size - 1, f);
    buffer[n] = '\0';
    fclose(f);
}

/* train_command in-process with `args` (NULL-terminated); "@name" expands to a scratch path. */
static void train(result *r, const char *const *args) {
    char expanded[48][700];
    char *argv[48];
    int argc = 0;
    for (const char *const *a = args; *a != NULL && argc < 47; a++, argc++) {
        if ((*a)[0] == '@') {
            path_in(expanded[argc], sizeof expanded[argc], *a + 1);
        } else {
            snprintf(expanded[argc], sizeof expanded[argc], "%s", *a);
        }
        argv[argc] = expanded[argc];
    }
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    r->status = train_command(program, "model", argc, argv, out, err);
    slurp(out, r->out, sizeof r->out);
    slurp(err, r->err, sizeof r->err);
}

static unsigned char *file_bytes(const char *name, size_t *length) {
    char path[700];
    path_in(path, sizeof path, name);
    return read_bytes(path, length);
}

/* The "loss" fields of a JSONL log, one per line, concatenated ("1.25|0.5|..."). */
static void log_losses(const char *name, char *out, size_t size) {
    size_t length = 0;
    unsigned char *bytes = file_bytes(name, &length);
    out[0] = '\0';
    if (bytes == NULL) return;
    bytes = realloc(bytes, length + 1);
    bytes[length] = '\0';
    size_t used = 0;
    for (char *line = (char *)bytes; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL) *next++ = '\0';
        const char *loss = strstr(line, "\"loss\": ");
        const char *end = loss != NULL ? strchr(loss, ',') : NULL;
        if (loss != NULL && end != NULL && used < size) {
            used += (size_t)snprintf(out + used, size - used, "%.*s|", (int)(end - loss - 8), loss + 8);
        }
        line = next;
    }
    free(bytes);
}

static int count_lines(const char *name) {
    size_t length = 0;
    unsigned char *bytes = file_bytes(name, &length);
    if (bytes == NULL) return -1;
    int lines = 0;
    for (size_t i = 0; i < length; i++) lines += bytes[i] == '\n';
    free(bytes);
    return lines;
}

/* Whether two checkpoints hold byte-identical tensors (same names, dtypes, shapes and data). */
static bool same_tensors(const char *a_name, const char *b_name) {
    char a_path[700], b_path[700];
    path_in(a_path, sizeof a_path, a_name);
    path_in(b_path, sizeof b_path, b_name);
    gr_error err;
    gr_safetensors *a = gr_safetensors_open(a_path, 0, &err), *b = gr_safetensors_open(b_path, 0, &err);
    bool same = a != NULL && b != NULL && gr_safetensors_count(a) == gr_safetensors_count(b);
    for (int64_t i = 0; same && i < gr_safetensors_count(a); i++) {
        const gr_st_tensor *x = gr_safetensors_tensor(a, i);
        const gr_st_tensor *y = gr_safetensors_find(b, x->name);
        same = y != NULL && x->dtype == y->dtype && x->bytes == y->bytes && memcmp(x->data, y->data, (size_t)x->bytes) == 0;
    }
    gr_safetensors_close(a);
    gr_safetensors_close(b);
    return same;
}

/* Whether the scratch directory holds a leftover "*.tmp-*" file of an atomic write. */
static bool has_temporary_files(void) {
    DIR *dir = opendir(directory);
    bool found = false;
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) found |= strstr(e->d_name, ".tmp-") != NULL;
    if (dir != NULL) closedir(dir);
    return found;
}

/* ---- the generator and the schedule ---------------------------------------------------------------- */

static void test_splitmix64_known_answers(void) {
    /* The reference SplitMix64 (Steele, Lea, Flood 2014) from state 0. */
    uint64_t state = 0;
    CHECK(train_splitmix64(&state) == UINT64_C(0xE220A8397B1DCDAF));
    CHECK(train_splitmix64(&state) == UINT64_C(0x6E789E6AA1B965F4));
    CHECK(train_splitmix64(&state) == UINT64_C(0x06C45D188009454F));
    /* train_hash is the documented chain. */
    uint64_t s = 42;
    s = train_splitmix64(&s) ^ 7;
    s = train_splitmix64(&s) ^ 9;
    CHECK(train_hash(42, 7, 9) == train_splitmix64(&s));
    CHECK(train_hash(42, 7, 9) != train_hash(42, 7, 10));
    CHECK(train_hash(42, 7, 9) != train_hash(43, 7, 9));
    CHECK(train_dropout_seed(5, 3) >= 0);
    CHECK(train_dropout_seed(5, 3) == (int64_t)(train_hash(5, TRAIN_STREAM_DROPOUT, 3) >> 1));
}

static void test_uniform_and_shuffle(void) {
    uint64_t state = 1;
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < 3000; i++) {
        uint64_t v = train_uniform(&state, 3);
        CHECK(v < 3);
        if (v < 3) counts[v]++;
    }
    CHECK(counts[0] > 900 && counts[1] > 900 && counts[2] > 900);
    int64_t a[50], b[50];
    for (int i = 0; i < 50; i++) a[i] = b[i] = i;
    train_shuffle(a, 50, 99);
    train_shuffle(b, 50, 99);
    CHECK(memcmp(a, b, sizeof a) == 0);
    bool seen[50] = {false}, moved = false;
    for (int i = 0; i < 50; i++) {
        CHECK(a[i] >= 0 && a[i] < 50 && !seen[a[i]]);
        if (a[i] >= 0 && a[i] < 50) seen[a[i]] = true;
        moved |= a[i] != i;
    }
    CHECK(moved);
    train_shuffle(b, 50, 100);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

static void test_learning_rate_schedule(void) {
    /* W = int(ratio · T) */
    CHECK_EQ(train_warmup_steps(0.1, 100), 10);
    CHECK_EQ(train_warmup_steps(0.1, 30), 3);
    CHECK_EQ(train_warmup_steps(0.1, 6), 0);
    CHECK_EQ(train_warmup_steps(0.7, 10), 7); /* 0.7 · 10 = 7.000000000000001 */
    CHECK_EQ(train_warmup_steps(0.0, 10), 0);
    /* get_linear_schedule_with_warmup, peak 1e-3, W = 10, T = 100 */
    CHECK(train_learning_rate(0, 1e-3, 10, 100) == 0);
    CHECK(train_learning_rate(5, 1e-3, 10, 100) == 1e-3 * (5.0 / 10.0));
    CHECK(train_learning_rate(10, 1e-3, 10, 100) == 1e-3);
    CHECK(train_learning_rate(55, 1e-3, 10, 100) == 1e-3 * (45.0 / 90.0));
    CHECK(train_learning_rate(99, 1e-3, 10, 100) == 1e-3 * (1.0 / 90.0));
    CHECK(train_learning_rate(100, 1e-3, 10, 100) == 0);
    CHECK(train_learning_rate(120, 1e-3, 10, 100) == 0);
    /* no warm-up: the first step has the peak */
    CHECK(train_learning_rate(0, 0.5, 0, 4) == 0.5);
    CHECK(train_learning_rate(3, 0.5, 0, 4) == 0.5 * 0.25);
    /* W = T: max(1, T − W) */
    CHECK(train_learning_rate(4, 1.0, 4, 4) == 0);
}

/* ---- datasets and order ---------------------------------------------------------------------------- */

static const gr_function *train_step(void) {
    return gr_program_find(program, "toy_train_step");
}

static train_data *open_tasks(const char *const *names, int32_t count, gr_error *err) {
    char paths[8][700];
    const char *pointers[8];
    for (int32_t i = 0; i < count; i++) {
        path_in(paths[i], sizeof paths[i], names[i]);
        pointers[i] = paths[i];
    }
    return train_data_open(train_step(), pointers, count, err);
}

static void test_single_task_order_drops_the_partial_batch(void) {
    write_task("seven.safetensors", 7, 0, 0);
    gr_error err;
    train_data *data = open_tasks((const char *[]){"seven.safetensors"}, 1, &err);
    CHECK(data != NULL);
    if (data == NULL) {
        fprintf(stderr, "%s\n", err.message);
        return;
    }
    CHECK_EQ(train_data_batch_size(data), 2);
    CHECK_EQ(train_data_examples(data, 0), 7);
    CHECK_EQ(train_data_batches(data, 0), 3);
    CHECK_EQ(train_data_steps_per_epoch(data), 3);
    CHECK_STR_EQ(train_data_task_name(data, 0), "seven");
    train_epoch a, b, c;
    CHECK_EQ(train_epoch_plan(data, 11, 0, &a, &err), 0);
    CHECK_EQ(train_epoch_plan(data, 11, 0, &b, &err), 0);
    CHECK_EQ(train_epoch_plan(data, 11, 1, &c, &err), 0);
    CHECK_EQ(a.steps, 3);
    bool used[7] = {false};
    for (int64_t i = 0; i < 3; i++) {
        CHECK_EQ(a.task[i], 0);
        CHECK_EQ(a.batch[i], i);
    }
    for (int j = 0; j < 7; j++) CHECK(a.order[0][j] == b.order[0][j]);
    bool differs = false;
    for (int j = 0; j < 7; j++) differs |= a.order[0][j] != c.order[0][j];
    CHECK(differs);
    /* the order is the documented Fisher–Yates of train_order_state(seed, epoch, task) */
    int64_t expected[7] = {0, 1, 2, 3, 4, 5, 6};
    train_shuffle(expected, 7, train_order_state(11, 1, 0));
    CHECK(memcmp(expected, c.order[0], sizeof expected) == 0);
    /* each step takes 2 distinct examples; 6 of 7 are used, the last partial batch is dropped */
    float x[6], y[2];
    float x_all[21], y_all[7];
    char path[700];
    path_in(path, sizeof path, "seven.safetensors");
    gr_safetensors *file = gr_safetensors_open(path, 0, &err);
    memcpy(x_all, gr_safetensors_find(file, "x")->data, sizeof x_all);
    memcpy(y_all, gr_safetensors_find(file, "y")->data, sizeof y_all);
    gr_safetensors_close(file);
    void *buffers[8] = {x, y, NULL, NULL, NULL, NULL, NULL, NULL};
    int distinct = 0;
    for (int64_t i = 0; i < 3; i++) {
        train_fill_batch(data, &a, i, buffers);
        for (int j = 0; j < 2; j++) {
            int64_t example = a.order[0][i * 2 + j];
            CHECK(!used[example]);
            distinct += !used[example];
            used[example] = true;
            CHECK(memcmp(&x[j * 3], &x_all[example * 3], 3 * sizeof(float)) == 0);
            CHECK(y[j] == y_all[example]);
        }
    }
    CHECK_EQ(distinct, 6);
    CHECK(!used[a.order[0][6]]);
    train_epoch_free(&a);
    train_epoch_free(&b);
    train_epoch_free(&c);
    train_data_free(data);
}

static void test_round_robin_is_proportional(void) {
    write_task("ten.safetensors", 10, 0, 0);
    write_task("five.safetensors", 5, 0, 0);
    gr_error err;
    train_data *data = open_tasks((const char *[]){"ten.safetensors", "five.safetensors"}, 2, &err);
    CHECK(data != NULL);
    if (data == NULL) return;
    CHECK_EQ(train_data_steps_per_epoch(data), 7); /* 5 + 2 */
    for (int64_t epoch = 0; epoch < 4; epoch++) {
        train_epoch plan;
        CHECK_EQ(train_epoch_plan(data, 3, epoch, &plan, &err), 0);
        /* The documented list: [0 ×5, 1 ×2] shuffled with train_hash(seed, TASKS, epoch), popped from the end. */
        int64_t list[7] = {0, 0, 0, 0, 0, 1, 1};
        train_shuffle(list, 7, train_hash(3, TRAIN_STREAM_TASKS, (uint64_t)epoch));
        int64_t next[2] = {0, 0};
        for (int64_t i = 0; i < 7; i++) {
            CHECK_EQ(plan.task[i], list[6 - i]);
            CHECK_EQ(plan.batch[i], next[plan.task[i]]);
            next[plan.task[i]]++;
        }
        CHECK_EQ(next[0], 5);
        CHECK_EQ(next[1], 2);
        train_epoch_free(&plan);
    }
    train_data_free(data);
}

static void test_dataset_errors(void) {
    gr_error err;
    /* a missing tensor */
    char path[700];
    path_in(path, sizeof path, "only-x.safetensors");
    float x[12] = {0};
    int64_t x_shape[2] = {4, 3}, bad_shape[2] = {4, 2}, y_shape[1] = {3};
    gr_st_write_tensor only_x[1] = {{"x", GR_ST_F32, 2, x_shape, x}};
    CHECK_EQ(gr_safetensors_write(path, only_x, 1, NULL, 0, &err), 0);
    CHECK(open_tasks((const char *[]){"only-x.safetensors"}, 1, &err) == NULL);
    CHECK_CONTAINS(err.message,
                   "only-x.safetensors: no tensor 'y' (the train step's batch parameter f32[2]: a dataset holds it as [N] + []");
    /* a second task whose examples have another shape */
    write_task("ten.safetensors", 10, 0, 0);
    path_in(path, sizeof path, "narrow.safetensors");
    gr_st_write_tensor narrow[2] = {{"x", GR_ST_F32, 2, bad_shape, x}, {"y", GR_ST_F32, 1, (int64_t[]){4}, x}};
    CHECK_EQ(gr_safetensors_write(path, narrow, 2, NULL, 0, &err), 0);
    CHECK(open_tasks((const char *[]){"ten.safetensors", "narrow.safetensors"}, 2, &err) == NULL);
    CHECK_CONTAINS(err.message, "narrow.safetensors: tensor 'x' is F32 [4, 2]; the train step's batch parameter is f32[2,3], "
                                "so the dataset needs F32 [N] + [3]");
    /* a wrong dtype */
    path_in(path, sizeof path, "ints.safetensors");
    int64_t ints[12] = {0};
    gr_st_write_tensor wrong[2] = {{"x", GR_ST_I64, 2, x_shape, ints}, {"y", GR_ST_F32, 1, (int64_t[]){4}, x}};
    CHECK_EQ(gr_safetensors_write(path, wrong, 2, NULL, 0, &err), 0);
    CHECK(open_tasks((const char *[]){"ints.safetensors"}, 1, &err) == NULL);
    CHECK_CONTAINS(err.message, "tensor 'x' is I64 [4, 3]");
    /* tensors with different example counts */
    path_in(path, sizeof path, "uneven.safetensors");
    gr_st_write_tensor uneven[2] = {{"x", GR_ST_F32, 2, x_shape, x}, {"y", GR_ST_F32, 1, y_shape, x}};
    CHECK_EQ(gr_safetensors_write(path, uneven, 2, NULL, 0, &err), 0);
    CHECK(open_tasks((const char *[]){"uneven.safetensors"}, 1, &err) == NULL);
    CHECK_CONTAINS(err.message, "uneven.safetensors: tensor 'y' has 3 examples but 'x' has 4");
    /* fewer examples than the batch */
    write_task("one.safetensors", 1, 0, 0);
    CHECK(open_tasks((const char *[]){"one.safetensors"}, 1, &err) == NULL);
    CHECK_CONTAINS(err.message, "one.safetensors: 1 example, fewer than the batch size 2");
    /* a file that is not there */
    CHECK(open_tasks((const char *[]){"absent.safetensors"}, 1, &err) == NULL);
    CHECK_CONTAINS(err.message, "absent.safetensors");
    /* F16 features are widened */
    path_in(path, sizeof path, "half.safetensors");
    uint16_t half[6] = {0x3C00, 0x4000, 0xBC00, 0x3800, 0, 0x4400}; /* 1 2 -1 0.5 0 4 */
    float ys[2] = {1, 2};
    gr_st_write_tensor halves[2] = {{"x", GR_ST_F16, 2, (int64_t[]){2, 3}, half}, {"y", GR_ST_F32, 1, (int64_t[]){2}, ys}};
    CHECK_EQ(gr_safetensors_write(path, halves, 2, NULL, 0, &err), 0);
    train_data *data = open_tasks((const char *[]){"half.safetensors"}, 1, &err);
    CHECK(data != NULL);
    if (data != NULL) {
        train_epoch plan;
        CHECK_EQ(train_epoch_plan(data, 0, 0, &plan, &err), 0);
        float bx[6], by[2];
        void *buffers[8] = {bx, by};
        train_fill_batch(data, &plan, 0, buffers);
        float sum = 0;
        for (int i = 0; i < 6; i++) sum += bx[i];
        CHECK(sum == 6.5f);
        train_epoch_free(&plan);
        train_data_free(data);
    }
}

/* ---- whole runs ------------------------------------------------------------------------------------ */

static void test_a_run_learns_and_writes_everything(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    result r;
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "40", "--lr", "0.05",
                               "--seed", "7", "--checkpoint", "@run.safetensors", "--log", "@run.jsonl", "--curve", "@run.csv",
                               "--threads", "1", NULL});
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.err, "step 1/40  epoch 0  task ten  loss ");
    CHECK_CONTAINS(r.err, "step 40/40  epoch 7  task ten");
    CHECK(strstr(r.err, "error") == NULL);
    CHECK_CONTAINS(r.out, "trained 40 steps in ");
    CHECK_CONTAINS(r.out, "checkpoint: ");
    CHECK_EQ(count_lines("run.jsonl"), 40);
    CHECK_EQ(count_lines("run.csv"), 41);
    size_t length = 0;
    unsigned char *svg = file_bytes("run.svg", &length);
    CHECK(svg != NULL && length > 500);
    if (svg != NULL) {
        svg = realloc(svg, length + 1);
        svg[length] = '\0';
        CHECK_CONTAINS((char *)svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
        CHECK_CONTAINS((char *)svg, "<polyline");
        CHECK_CONTAINS((char *)svg, "learning rate");
        CHECK_CONTAINS((char *)svg, "</svg>\n");
    }
    free(svg);
    unsigned char *log = file_bytes("run.jsonl", &length);
    if (log != NULL) {
        log = realloc(log, length + 1);
        log[length] = '\0';
        CHECK_CONTAINS((char *)log, "{\"step\": 1, \"epoch\": 0, \"task\": \"ten\", \"loss\": ");
        CHECK_CONTAINS((char *)log, "\"grad_norm\": ");
        CHECK_CONTAINS((char *)log, "\"lr\": 0, \"seconds\": "); /* W = 4: the first step has lr 0 */
        CHECK_CONTAINS((char *)log, "{\"step\": 40, \"epoch\": 7, ");
    }
    free(log);
    /* the loss falls: the first steps against the last ones */
    char losses[4096];
    log_losses("run.jsonl", losses, sizeof losses);
    double first = atof(losses), last = 0;
    for (char *bar = strchr(losses, '|'); bar != NULL && bar[1] != '\0'; bar = strchr(bar + 1, '|')) last = atof(bar + 1);
    CHECK(first > 0.5 && last < first * 0.05);
    /* the checkpoint: trainable parameters, state and position */
    char path[700];
    path_in(path, sizeof path, "run.safetensors");
    gr_error err;
    gr_safetensors *ckpt = gr_safetensors_open(path, 0, &err);
    CHECK(ckpt != NULL);
    if (ckpt == NULL) return;
    CHECK_EQ(gr_safetensors_count(ckpt), 3);
    CHECK(gr_safetensors_find(ckpt, "w") != NULL && gr_safetensors_find(ckpt, "adam.m.w") != NULL);
    CHECK(gr_safetensors_find(ckpt, "frozen.scale") == NULL && gr_safetensors_find(ckpt, "x") == NULL);
    const gr_st_tensor *step = gr_safetensors_find(ckpt, "adam.step");
    int64_t counter = -1;
    if (step != NULL && step->dtype == GR_ST_I64) memcpy(&counter, step->data, sizeof counter); /* any alignment */
    CHECK_EQ(counter, 40);
    float w[3];
    memcpy(w, gr_safetensors_find(ckpt, "w")->data, sizeof w);
    CHECK(fabsf(w[0] - true_w[0]) < 0.2f && fabsf(w[1] - true_w[1]) < 0.2f);
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "granule_train"), "1");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "function"), "toy_train_step");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "step"), "40");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "epoch"), "8");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "epoch_position"), "0");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "steps_per_epoch"), "5");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "tasks"), "ten");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "examples"), "10");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "seed"), "7");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "total_steps"), "40");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "warmup_steps"), "4");
    CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "lr"), "0.050000000000000003");
    CHECK(gr_safetensors_metadata_find(ckpt, "granule_crc32") != NULL);
    CHECK(gr_safetensors_metadata_find(ckpt, "epochs") == NULL);
    gr_safetensors_close(ckpt);
    CHECK(!has_temporary_files()); /* every file was renamed into place */
}

/* N steps + --resume + M steps = N + M steps, bit for bit: two tasks, epochs mode, a checkpoint
 * in the middle of an epoch. */
static void test_resume_is_bit_identical(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    write_task("five.safetensors", 5, 0, 0);
    result r;
    const char *common[] = {"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--data", "@five.safetensors",
                            "--lr", "0.02", "--seed", "5", "--epochs", "3"};
    const char *straight[32], *first[32], *second[32];
    int n = 0;
    for (size_t i = 0; i < sizeof common / sizeof *common; i++) straight[n++] = common[i];
    memcpy(first, straight, sizeof(char *) * (size_t)n);
    const char *straight_tail[] = {"--checkpoint", "@straight.safetensors", "--log", "@straight.jsonl", "--curve", "@straight.csv", NULL};
    const char *first_tail[] = {"--checkpoint", "@split.safetensors", "--log", "@split.jsonl", "--curve", "@split.csv",
                                "--stop-at", "10", NULL};
    memcpy(straight + n, straight_tail, sizeof straight_tail);
    memcpy(first + n, first_tail, sizeof first_tail);
    train(&r, straight);
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.out, "trained 21 steps (3 epochs)");
    train(&r, first);
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.out, "stopped after step 10 of 21 (--stop-at); checkpoint written to ");
    /* a log line of a step after the checkpoint (as a run killed later would have left) is dropped on resume */
    char path[700];
    path_in(path, sizeof path, "split.jsonl");
    FILE *f = fopen(path, "a");
    fprintf(f, "{\"step\": 11, \"epoch\": 1, \"task\": \"ten\", \"loss\": 123, \"grad_norm\": 1, \"lr\": 0, \"seconds\": 0}\n");
    fclose(f);
    /* the second half: settings from the checkpoint */
    const char *resume_args[] = {"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--data", "@five.safetensors",
                                 "--resume", "@split.safetensors", "--checkpoint", "@split.safetensors", "--log", "@split.jsonl",
                                 "--curve", "@split.csv", NULL};
    memcpy(second, resume_args, sizeof resume_args);
    train(&r, second);
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.err, "step 11/21  epoch 1");
    CHECK_CONTAINS(r.out, "trained steps 11-21 of 21 (3 epochs) in ");
    CHECK(same_tensors("straight.safetensors", "split.safetensors"));
    char a[4096], b[4096];
    log_losses("straight.jsonl", a, sizeof a);
    log_losses("split.jsonl", b, sizeof b);
    CHECK_STR_EQ(b, a);
    CHECK_EQ(count_lines("split.jsonl"), 21);
    size_t la = 0, lb = 0;
    unsigned char *ca = file_bytes("straight.csv", &la), *cb = file_bytes("split.csv", &lb);
    CHECK(ca != NULL && cb != NULL && la == lb && memcmp(ca, cb, la) == 0);
    free(ca);
    free(cb);
    /* the same metadata too (the file bytes are equal: same tensors, same position, same settings) */
    unsigned char *ka = file_bytes("straight.safetensors", &la), *kb = file_bytes("split.safetensors", &lb);
    CHECK(ka != NULL && kb != NULL && la == lb && memcmp(ka, kb, la) == 0);
    free(ka);
    free(kb);
}

static void test_resume_rejects_other_settings(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    write_task("five.safetensors", 5, 0, 0);
    result r;
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "6", "--lr", "0.01",
                               "--checkpoint", "@c.safetensors", "--stop-at", "2", NULL});
    CHECK_EQ(r.status, 0);
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--resume", "@c.safetensors",
                               "--seed", "3", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "c.safetensors: the checkpoint was trained with --seed 0, this run gives --seed 3");
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@five.safetensors", "--resume", "@c.safetensors", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "the checkpoint was trained on tasks of 10 examples (batch size 2); --data gives 5");
    write_task("other.safetensors", 10, 0, 0); /* as many examples, another task */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@other.safetensors", "--resume", "@c.safetensors", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "c.safetensors: the checkpoint was trained on the tasks ten; --data gives other: resume with the same --data files");
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--resume", "@c.safetensors",
                               "--steps", "7", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "the checkpoint belongs to a run of 6 steps in all, this run asks for 7");
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--resume", "@c.safetensors",
                               "--lr", "0.02", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "--lr 0.01");
    /* a finished run resumed: nothing left to do, said so */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "2", "--lr", "0.01",
                               "--checkpoint", "@done.safetensors", NULL});
    CHECK_EQ(r.status, 0);
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--resume", "@done.safetensors", NULL});
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.out, "nothing to train: the checkpoint is at step 2 of 2");
    /* a file that is not a train checkpoint */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--resume", "@weights.safetensors",
                               NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "weights.safetensors: not a train checkpoint of this program: no metadata 'granule_train'");
    /* matching settings given explicitly are fine */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--resume", "@c.safetensors",
                               "--steps", "6", "--lr", "0.01", "--seed", "0", "--warmup-ratio", "0.1", NULL});
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.out, "trained steps 3-6 of 6 in ");
}

static void test_nan_stops_and_keeps_the_checkpoint(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    char poisoned[700];
    path_in(poisoned, sizeof poisoned, "poisoned");
    CHECK_EQ(mkdir(poisoned, 0755), 0);
    write_task("poisoned/ten.safetensors", 10, 0, INFINITY); /* the same task name: resume checks it */
    write_task("bad.safetensors", 10, 0, INFINITY);
    result r;
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "8", "--lr", "0.01",
                               "--checkpoint", "@good.safetensors", "--checkpoint-every", "1", "--stop-at", "3", NULL});
    CHECK_EQ(r.status, 0);
    size_t before_length = 0, after_length = 0;
    unsigned char *before = file_bytes("good.safetensors", &before_length);
    /* the same number of examples, so the checkpoint resumes, but every feature is infinite */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@poisoned/ten.safetensors", "--resume", "@good.safetensors",
                               "--checkpoint", "@good.safetensors", "--checkpoint-every", "1", "--log", "@bad.jsonl", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "error: step 4: the loss is ");
    CHECK_CONTAINS(r.err, "stopped without writing a checkpoint, the last one stays in ");
    unsigned char *after = file_bytes("good.safetensors", &after_length);
    CHECK(before != NULL && after != NULL && before_length == after_length && memcmp(before, after, before_length) == 0);
    free(before);
    free(after);
    CHECK_EQ(count_lines("bad.jsonl"), 0);
    /* a fresh run that fails at once writes no checkpoint at all */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@bad.safetensors", "--steps", "8", "--lr", "0.01",
                               "--checkpoint", "@never.safetensors", "--warmup-ratio", "0", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "error: step 1: the loss is ");
    CHECK_CONTAINS(r.err, "; none was written to ");
    char path[700];
    path_in(path, sizeof path, "never.safetensors");
    CHECK(access(path, F_OK) != 0);
}

static void test_diverged_weights_are_never_checkpointed(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    result r;
    /* A learning rate of 3.4e38 (near FLT_MAX): the first update overflows w while step 1's loss is finite. */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "4", "--lr", "3.4e38",
                               "--warmup-ratio", "0", "--checkpoint", "@diverged.safetensors", "--checkpoint-every", "1", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "diverged.safetensors: not written: tensor '");
    CHECK_CONTAINS(r.err, "holds a non-finite value after step 1");
    char path[700];
    path_in(path, sizeof path, "diverged.safetensors");
    CHECK(access(path, F_OK) != 0);
}

static void test_outputs_are_checked_before_training(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    result r;
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "0.01",
                               "--checkpoint", "@missing/c.safetensors", "--log", "@log.jsonl", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "error: --checkpoint ");
    CHECK_CONTAINS(r.err, "missing/c.safetensors: the directory ");
    CHECK(count_lines("log.jsonl") <= 0); /* not a single step ran (the log is not even opened) */
    /* the checkpoint holds only what training changes: it must not replace the weights */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "0.01",
                               "--checkpoint", "@weights.safetensors", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "weights.safetensors is the file given as --weights: writing it would replace that input");
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "0.01",
                               "--curve", "@ten.safetensors", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "is the file given as --data");
    char sub[700];
    path_in(sub, sizeof sub, "sub.csv");
    CHECK_EQ(mkdir(sub, 0755), 0);
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "0.01",
                               "--curve", "@sub.csv", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "sub.csv: is a directory; give a file name");
    /* a NaN among the weights would make every step NaN: named when the weights are bound */
    char nan_path[700];
    path_in(nan_path, sizeof nan_path, "nan-weights.safetensors");
    float scale[3] = {1, NAN, 1}, w[3] = {0, 0, 0};
    int64_t shape[1] = {3};
    gr_st_write_tensor tensors[2] = {{"frozen.scale", GR_ST_F32, 1, shape, scale}, {"w", GR_ST_F32, 1, shape, w}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(nan_path, tensors, 2, NULL, 0, &err), 0);
    train(&r, (const char *[]){"--weights", "@nan-weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "0.01", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "nan-weights.safetensors: tensor 'frozen.scale' (the frozen parameter of 'toy_train_step') holds NaN at element 1");
    /* a function that updates nothing is not a train step */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "0.01",
                               "--function", "toy", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "--function toy: no result of it writes a trainable parameter");
}

static void test_a_signal_stops_after_the_step(void) {
    write_weights();
    write_task("marked.safetensors", 6, 777.0f, 0);
    result r;
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@marked.safetensors", "--steps", "50", "--lr", "0.01",
                               "--checkpoint", "@stopped.safetensors", "--curve", "@stopped.csv", NULL});
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.out, "interrupted by SIGTERM after step 1 of 50; checkpoint written to ");
    CHECK_CONTAINS(r.out, "(continue with --resume ");
    char path[700];
    path_in(path, sizeof path, "stopped.safetensors");
    gr_error err;
    gr_safetensors *ckpt = gr_safetensors_open(path, 0, &err);
    CHECK(ckpt != NULL);
    if (ckpt != NULL) {
        CHECK_STR_EQ(gr_safetensors_metadata_find(ckpt, "step"), "1");
        gr_safetensors_close(ckpt);
    }
    CHECK_EQ(count_lines("stopped.csv"), 2);
    /* the handler is gone afterwards: SIGTERM's disposition is the default again */
    struct sigaction now;
    sigaction(SIGTERM, NULL, &now);
    CHECK(now.sa_handler == SIG_DFL);
}

/* A run removes the stale temporary files of its checkpoint (train.c, remove_stale_temporaries):
 * "<checkpoint>.tmp-<pid>-<n>" of a process that is gone (or of its own pid), and nothing else. */
static void test_stale_temporary_files_are_removed(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    result r;
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "6", "--lr", "0.01",
                               "--checkpoint", "@saved.safetensors", "--stop-at", "2", NULL});
    CHECK_EQ(r.status, 0);
    fflush(stdout);
    fflush(stderr);
    pid_t dead = fork(); /* a pid that names no process once reaped */
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    long gone = (long)dead, own = (long)getpid(), live = (long)getppid();
    char removed[3][64], kept[12][64], path[1024];
    snprintf(removed[0], sizeof removed[0], "c.safetensors.tmp-%ld-0", gone);
    snprintf(removed[1], sizeof removed[1], "c.safetensors.tmp-%ld-12", gone);
    snprintf(removed[2], sizeof removed[2], "c.safetensors.tmp-%ld-0", own); /* an earlier process with this pid */
    snprintf(kept[0], sizeof kept[0], "c.safetensors.tmp-%ld-0", live);     /* a live writer */
    snprintf(kept[1], sizeof kept[1], "c.safetensors.tmp-%ld-0.bak", gone);
    snprintf(kept[2], sizeof kept[2], "c.safetensors.tmp-%ld", gone);
    snprintf(kept[3], sizeof kept[3], "c.safetensors.tmp-%ld-", gone);
    snprintf(kept[4], sizeof kept[4], "c.safetensors.tmp-0%ld-0", gone);
    snprintf(kept[5], sizeof kept[5], "c.safetensors.tmp-0-0");
    snprintf(kept[6], sizeof kept[6], "c.safetensors.tmp-99999999999999999999-0");
    snprintf(kept[7], sizeof kept[7], "xc.safetensors.tmp-%ld-0", gone);
    snprintf(kept[8], sizeof kept[8], "c.safetensors.tmp-%ld-0", gone); /* in sub/, another directory */
    snprintf(kept[9], sizeof kept[9], "run.csv.tmp-%ld-0", gone);       /* the curve's: not the checkpoint's */
    snprintf(kept[10], sizeof kept[10], "c.safetensors.tmp-%ld-5", gone); /* the --resume file itself */
    snprintf(kept[11], sizeof kept[11], "c.safetensors.tmp-%ld-7", gone); /* a directory */
    path_in(path, sizeof path, "sub");
    mkdir(path, 0755);
    for (int i = 0; i < 3; i++) {
        path_in(path, sizeof path, removed[i]);
        write_bytes(path, "partial", 7);
    }
    for (int i = 0; i < 11; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s%.60s", i == 8 ? "sub/" : "", kept[i]);
        path_in(path, sizeof path, name);
        if (i == 10) {
            size_t length = 0;
            unsigned char *saved = file_bytes("saved.safetensors", &length);
            write_bytes(path, saved, length);
            free(saved);
        } else {
            write_bytes(path, "partial", 7);
        }
    }
    path_in(path, sizeof path, kept[11]);
    mkdir(path, 0755);
    char resume[96];
    snprintf(resume, sizeof resume, "@%.60s", kept[10]);
    /* a run that fails before its first step touches nothing */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@absent.safetensors", "--resume", resume,
                               "--checkpoint", "@c.safetensors", NULL});
    CHECK_EQ(r.status, 1);
    for (int i = 0; i < 3; i++) {
        path_in(path, sizeof path, removed[i]);
        CHECK(access(path, F_OK) == 0);
    }
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--resume", resume, "--checkpoint",
                               "@c.safetensors", NULL});
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.out, "trained steps 3-6 of 6 in ");
    for (int i = 0; i < 3; i++) {
        path_in(path, sizeof path, removed[i]);
        CHECK(access(path, F_OK) != 0);
        CHECK_CONTAINS(r.err, removed[i]);
    }
    CHECK_CONTAINS(r.err, ", left by an interrupted checkpoint write\n");
    for (int i = 0; i < 12; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s%.60s", i == 8 ? "sub/" : "", kept[i]);
        path_in(path, sizeof path, name);
        CHECK(access(path, F_OK) == 0);
    }
    path_in(path, sizeof path, "c.safetensors");
    gr_error err;
    gr_safetensors *written = gr_safetensors_open(path, 0, &err);
    CHECK(written != NULL && strcmp(gr_safetensors_metadata_find(written, "step"), "6") == 0);
    gr_safetensors_close(written);
    /* a checkpoint in another directory: only its own directory is searched */
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "2", "--lr", "0.01",
                               "--checkpoint", "@sub/c.safetensors", NULL});
    CHECK_EQ(r.status, 0);
    char name[96];
    snprintf(name, sizeof name, "sub/%.60s", kept[8]);
    path_in(path, sizeof path, name);
    CHECK(access(path, F_OK) != 0);
    path_in(path, sizeof path, kept[0]);
    CHECK(access(path, F_OK) == 0);
}

static void test_usage_and_setup_errors(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    result r;
    train(&r, (const char *[]){"--help", NULL});
    CHECK_EQ(r.status, 0);
    CHECK_CONTAINS(r.out, "model train --weights W.safetensors --data D.safetensors");
    train(&r, (const char *[]){"--data", "@ten.safetensors", "--steps", "3", "--lr", "1", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "error: train needs --weights FILE (see model train --help)");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "3", "--epochs", "2", "--lr", "1", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "give --steps or --epochs, not both");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "3", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "train needs --lr LR");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--lr", "1", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "train needs --steps N or --epochs E");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "0", "--lr", "1", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "--steps must be an integer in [1, 1000000000], got '0'");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "3", "--lr", "nan", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "--lr must be a finite number >= 0, got 'nan'");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "3", "--lr", "1", "--warmup-ratio=1.5", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "--warmup-ratio must be a number in [0, 1], got '1.5'");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "3", "--lr", "1", "--checkpoint-every", "2", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "--checkpoint-every needs --checkpoint FILE");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "3", "--lr", "1", "--batch", "b", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "train: unknown option '--batch'");
    train(&r, (const char *[]){"--weights", "w", "--data", "d", "--steps", "3", "--lr", "1", "--resident-weights=yes", NULL});
    CHECK_EQ(r.status, 2);
    CHECK_CONTAINS(r.err, "option '--resident-weights' takes no value");
    /* setup errors: exit 1 */
    train(&r, (const char *[]){"--weights", "@absent.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "1", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "absent.safetensors");
    train(&r, (const char *[]){"--weights", "@ten.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "1", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "ten.safetensors: no tensor 'frozen.scale' (the frozen parameter f32[3] of 'toy_train_step')");
    train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "1",
                               "--function", "nope", NULL});
    CHECK_EQ(r.status, 1);
    CHECK_CONTAINS(r.err, "error: the program has no function 'nope'");
    /* a program without a train step */
    gr_program *saved = program;
    gr_error err;
    program = gr_program_load("{\"version\": 1, \"functions\": [{\"name\": \"loss_grad\", \"arena_bytes\": 0, \"params\": [], "
                              "\"results\": []}], \"ops\": []}",
                              NULL, &err);
    CHECK(program != NULL);
    if (program != NULL) {
        train(&r, (const char *[]){"--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "3", "--lr", "1", NULL});
        CHECK_EQ(r.status, 1);
        CHECK_CONTAINS(r.err, "error: the program has no train step function (a function whose name ends in _train_step; compile with "
                              "the adamw pass); its functions: loss_grad");
        gr_program_free(program);
    }
    program = saved;
}

/* ---- the executable ---------------------------------------------------------------------------------- */

/* Starts `executable` with `args` (NULL-terminated; "@name" expands to a scratch path), its stdout
 * and stderr going to the scratch files `out_name` and `err_name`. */
static pid_t spawn(const char *executable, const char *const *args, const char *out_name, const char *err_name) {
    char out_path[700], err_path[700];
    path_in(out_path, sizeof out_path, out_name);
    path_in(err_path, sizeof err_path, err_name);
    char expanded[32][700];
    char *argv[34];
    int argc = 0;
    argv[argc++] = (char *)executable;
    for (const char *const *a = args; *a != NULL && argc < 32; a++, argc++) {
        if ((*a)[0] == '@') {
            path_in(expanded[argc], sizeof expanded[argc], *a + 1);
        } else {
            snprintf(expanded[argc], sizeof expanded[argc], "%s", *a);
        }
        argv[argc] = expanded[argc];
    }
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        execv(executable, argv);
        _exit(127);
    }
    return pid;
}

static int run_executable(const char *const *args, char *out, size_t out_size, char *err, size_t err_size, bool send_term) {
    char err_path[700];
    path_in(err_path, sizeof err_path, ".stderr");
    pid_t pid = spawn(trainer_path, args, ".stdout", ".stderr");
    if (send_term) {
        /* SIGTERM once the first progress line shows the loop is running */
        for (int wait = 0; wait < 2000; wait++) {
            size_t length = 0;
            unsigned char *text = read_bytes(err_path, &length);
            if (text != NULL) text = realloc(text, length + 1);
            if (text != NULL) text[length] = '\0';
            bool running = text != NULL && strstr((char *)text, "step 1/") != NULL;
            free(text);
            if (running) break;
            nanosleep(&(struct timespec){0, 5000000}, NULL);
        }
        kill(pid, SIGTERM);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    size_t length = 0;
    char out_path[700];
    path_in(out_path, sizeof out_path, ".stdout");
    unsigned char *text = read_bytes(out_path, &length);
    snprintf(out, out_size, "%.*s", (int)length, text != NULL ? (char *)text : "");
    free(text);
    text = read_bytes(err_path, &length);
    snprintf(err, err_size, "%.*s", (int)length, text != NULL ? (char *)text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static void test_the_command_line(void) {
    write_weights();
    write_task("ten.safetensors", 10, 0, 0);
    write_task("bad.safetensors", 10, 0, NAN);
    char out[8192], err[16384];
    int status = run_executable((const char *[]){"--help", NULL}, out, sizeof out, err, sizeof err, false);
    CHECK_EQ(status, 0);
    CHECK_CONTAINS(out, " train --weights W.safetensors --data D.safetensors [--data D2.safetensors ...]\n");
    status = run_executable((const char *[]){"train", "--help", NULL}, out, sizeof out, err, sizeof err, false);
    CHECK_EQ(status, 0);
    CHECK_CONTAINS(out, "--checkpoint-every K");
    status = run_executable((const char *[]){"train", "--weights", "@weights.safetensors", NULL}, out, sizeof out, err, sizeof err, false);
    CHECK_EQ(status, 2);
    CHECK_CONTAINS(err, "error: train needs --data FILE");
    status = run_executable((const char *[]){"train", "--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps", "12",
                                             "--lr", "0.05", "--checkpoint", "@cli.safetensors", NULL},
                            out, sizeof out, err, sizeof err, false);
    CHECK_EQ(status, 0);
    CHECK_CONTAINS(out, "trained 12 steps in ");
    status = run_executable((const char *[]){"train", "--weights", "@weights.safetensors", "--data", "@bad.safetensors", "--steps", "12",
                                             "--lr", "0.05", NULL},
                            out, sizeof out, err, sizeof err, false);
    CHECK_EQ(status, 1);
    CHECK_CONTAINS(err, "error: step 1: the loss is NaN");
    /* a real SIGTERM from outside, in the middle of a long run */
    status = run_executable((const char *[]){"train", "--weights", "@weights.safetensors", "--data", "@ten.safetensors", "--steps",
                                             "100000000", "--lr", "0.05", "--checkpoint", "@term.safetensors", NULL},
                            out, sizeof out, err, sizeof err, true);
    CHECK_EQ(status, 0);
    CHECK_CONTAINS(out, "interrupted by SIGTERM after step ");
    char path[700];
    path_in(path, sizeof path, "term.safetensors");
    gr_error e;
    gr_safetensors *ckpt = gr_safetensors_open(path, 0, &e);
    CHECK(ckpt != NULL);
    if (ckpt != NULL) {
        int64_t step = atoll(gr_safetensors_metadata_find(ckpt, "step"));
        CHECK(step >= 1 && step < 100000000);
        int64_t counter = -1;
        memcpy(&counter, gr_safetensors_find(ckpt, "adam.step")->data, sizeof counter);
        CHECK_EQ(counter, step);
        gr_safetensors_close(ckpt);
    }
}

/* ---- SIGKILL during checkpoint writes (fake_trainer_wide) ------------------------------------------- */

#define WIDE_WIDTH 262144 /* train_wide_fake_program.c's WIDTH: each wide tensor is 1 MiB */
#define WIDE_STEPS 20
#define WIDE_KILLS 40

static void write_wide_weights(void) {
    char path[700];
    path_in(path, sizeof path, "wide-weights.safetensors");
    float scale[3] = {1, 1, 1}, w[3] = {0, 0, 0};
    float *wide = malloc(sizeof *wide * WIDE_WIDTH);
    for (int32_t i = 0; i < WIDE_WIDTH; i++) wide[i] = (float)(i % 13) / 13.0f;
    int64_t shape[1] = {3}, wide_shape[1] = {WIDE_WIDTH};
    gr_st_write_tensor tensors[3] = {{"frozen.scale", GR_ST_F32, 1, shape, scale},
                                     {"w", GR_ST_F32, 1, shape, w},
                                     {"wide", GR_ST_F32, 1, wide_shape, wide}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(path, tensors, 3, NULL, 0, &err), 0);
    free(wide);
}

/* Opens a checkpoint of fake_trainer_wide (gr_safetensors_open verifies its CRC-32) and checks that
 * it is whole: the format, all five tensors at their sizes, and a metadata step equal to adam.step.
 * Returns that step (-1: it does not open or is not whole; `why` says why) and copies its CRC text. */
static int64_t whole_wide_checkpoint(const char *name, char *crc, size_t crc_size, char *why, size_t why_size) {
    char path[700];
    path_in(path, sizeof path, name);
    gr_error err;
    gr_safetensors *c = gr_safetensors_open(path, 0, &err);
    if (c == NULL) {
        snprintf(why, why_size, "%s", err.message);
        return -1;
    }
    static const char *const names[5] = {"w", "wide", "adam.step", "adam.m.w", "adam.m.wide"};
    static const int64_t sizes[5] = {12, 4 * WIDE_WIDTH, 8, 12, 4 * WIDE_WIDTH};
    bool whole = gr_safetensors_count(c) == 5;
    for (int i = 0; i < 5; i++) {
        const gr_st_tensor *t = gr_safetensors_find(c, names[i]);
        whole = whole && t != NULL && t->bytes == sizes[i];
    }
    const char *format = gr_safetensors_metadata_find(c, "granule_train"), *step = gr_safetensors_metadata_find(c, "step");
    const char *checksum = gr_safetensors_metadata_find(c, "granule_crc32");
    int64_t counter = -1;
    if (whole) memcpy(&counter, gr_safetensors_find(c, "adam.step")->data, sizeof counter);
    whole = whole && format != NULL && strcmp(format, "1") == 0 && step != NULL && strtoll(step, NULL, 10) == counter &&
            checksum != NULL;
    snprintf(crc, crc_size, "%s", checksum != NULL ? checksum : "");
    snprintf(why, why_size, "%s", whole ? "" : "not a whole checkpoint");
    gr_safetensors_close(c);
    return whole ? counter : -1;
}

/* Leftover temporary files "killed.safetensors.tmp-*" in the scratch directory: all of them, and
 * (in `of_pid`, when given) the name of one of process `pid`. */
static int leftover_temporaries(pid_t pid, char *of_pid, size_t of_pid_size, int *count_of_pid) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "killed.safetensors.tmp-%ld-", (long)pid);
    DIR *dir = opendir(directory);
    int all = 0;
    *count_of_pid = 0;
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, "killed.safetensors.tmp-", 23) != 0) continue;
        all++;
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            (*count_of_pid)++;
            if (of_pid != NULL) snprintf(of_pid, of_pid_size, "%s", e->d_name);
        }
    }
    if (dir != NULL) closedir(dir);
    return all;
}

static bool same_file_bytes(const char *name, const unsigned char *bytes, size_t length) {
    size_t got_length = 0;
    unsigned char *got = file_bytes(name, &got_length);
    bool same = got != NULL && got_length == length && memcmp(got, bytes, length) == 0;
    free(got);
    return same;
}

static int wait_exit_status(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static void print_scratch_file(const char *name) {
    size_t length = 0;
    unsigned char *text = file_bytes(name, &length);
    fprintf(stderr, "    %s: %.*s\n", name, (int)length, text != NULL ? (char *)text : "(none)");
    free(text);
}

/* Atomic checkpoints under SIGKILL. `train --checkpoint-every 1` of a program whose checkpoint is
 * 2 MiB (each write: CRC, write, fsync, rename) is SIGKILLed WIDE_KILLS times, at pseudo-random
 * delays from its start (calibrated on an uninterrupted run), and every 4th time as soon as its
 * temporary file shows (so that some kills land mid-write wherever the scratch directory lives, even on
 * a tmpfs where writes are fast). The runs form chains: each resumes from the checkpoint the killed
 * one left; a chain that reaches the end starts over. After every kill:
 *  - the checkpoint is absent only if the chain had not written one yet; otherwise it opens (CRC
 *    verified), is whole, its metadata step is its adam.step, and the step never goes back;
 *  - a kill mid-write leaves the killed process's "<checkpoint>.tmp-<pid>-<n>": counted, and either
 *    partial (it does not open) or a whole checkpoint of a later step than the one in place (killed
 *    between fsync and rename): it never replaced the checkpoint;
 *  - checkpoints of the same step are the same bytes (same CRC) whichever chain wrote them, and from
 *    each one (each distinct step) --resume runs to the end and writes exactly the bytes of the
 *    uninterrupted run;
 *  - once a later run of the chain gets to its first step, the temporary files of killed runs are
 *    gone (it removed them: remove_stale_temporaries in train.c).
 * A last resume finishes the chain: the same bytes again, and no temporary file left. */
static void test_a_sigkill_never_tears_a_checkpoint(void) {
    write_wide_weights();
    write_task("ten.safetensors", 10, 0, 0);
    char steps[16];
    snprintf(steps, sizeof steps, "%d", WIDE_STEPS);
    const char *const base[] = {"train", "--weights", "@wide-weights.safetensors", "--data", "@ten.safetensors", "--steps", steps,
                                "--lr", "0.01", "--seed", "9", "--threads", "1"};
    enum { BASE = sizeof base / sizeof *base };
    const char *args[BASE + 8];
    memcpy(args, base, sizeof base);

    /* the uninterrupted run, timed: its start-up (to the first checkpoint) and its steps */
    const char *const straight_tail[] = {"--checkpoint", "@straight.safetensors", "--checkpoint-every", "1", NULL};
    memcpy(args + BASE, straight_tail, sizeof straight_tail);
    double start = test_now(), first = -1;
    pid_t pid = spawn(wide_trainer_path, args, ".out", ".err");
    int status = 0;
    char path[700];
    path_in(path, sizeof path, "straight.safetensors");
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (first < 0 && access(path, F_OK) == 0) first = test_now() - start;
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    double whole_run = test_now() - start;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        print_scratch_file(".err");
        return;
    }
    if (first < 0) first = whole_run / 2;
    double step_time = (whole_run - first) / (WIDE_STEPS - 1);
    size_t straight_length = 0;
    unsigned char *straight = file_bytes("straight.safetensors", &straight_length);

    uint64_t dice = 20240607;
    int kills = 0, absent = 0, mid_write = 0, targeted = 0, targeted_mid_write = 0, partial = 0, unrenamed = 0, chains = 0;
    int resumed = 0, cleaned = 0;
    char crc_at[WIDE_STEPS + 1][16];
    memset(crc_at, 0, sizeof crc_at);
    int64_t previous = 0; /* the step of the chain's checkpoint (0: none yet) */
    char crc[16], why[GR_ERROR_CAPACITY], temporary[256];
    for (int round = 0; round < WIDE_KILLS; round++) {
        int n = BASE;
        args[n++] = "--checkpoint";
        args[n++] = "@killed.safetensors";
        args[n++] = "--checkpoint-every";
        args[n++] = "1";
        if (previous > 0) {
            args[n++] = "--resume";
            args[n++] = "@killed.safetensors";
        }
        args[n] = NULL;
        int stale_before = leftover_temporaries(0, NULL, 0, &(int){0});
        bool aim = round % 4 == 3;
        targeted += aim;
        double delay = 0.5 * first + (double)(train_splitmix64(&dice) >> 11) * 0x1p-53 * (0.5 * first + 4 * step_time);
        double limit = aim ? 4 * (first + 4 * step_time) : delay;
        start = test_now();
        pid = spawn(wide_trainer_path, args, ".out", ".err");
        bool exited = false;
        for (;;) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = true;
                break;
            }
            int mine = 0;
            if (aim) leftover_temporaries(pid, NULL, 0, &mine);
            if (mine > 0 || test_now() - start >= limit) break;
            nanosleep(&(struct timespec){0, aim ? 50000 : 200000}, NULL);
        }
        if (!exited) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            exited = WIFEXITED(status); /* it may have finished just before the signal */
            kills += !exited;
        }
        if (!exited) {
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        } else {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* it finished first */
            if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) print_scratch_file(".err");
        }
        int mine = 0;
        int leftover = leftover_temporaries(pid, temporary, sizeof temporary, &mine);
        CHECK(mine <= (exited ? 0 : 1)); /* one write at a time; a finished run renamed all of them */
        if (!exited && mine > 0) {
            mid_write++;
            targeted_mid_write += aim;
        }
        path_in(path, sizeof path, "killed.safetensors");
        int64_t step = 0;
        if (access(path, F_OK) != 0) {
            CHECK_EQ(previous, 0); /* killed before the chain's first checkpoint */
            CHECK(!exited);
            absent++;
        } else {
            step = whole_wide_checkpoint("killed.safetensors", crc, sizeof crc, why, sizeof why);
            CHECK(step >= 1 && step >= previous && step <= WIDE_STEPS);
            if (step < 1) {
                fprintf(stderr, "    round %d: killed.safetensors: %s\n", round, why);
                break;
            }
        }
        if (mine > 0) {
            /* the killed run's temporary file never replaced the checkpoint: it is partial (it does not
             * open) or the whole next checkpoint, written but not yet renamed (killed in fsync) */
            char temporary_crc[16];
            int64_t temporary_step = whole_wide_checkpoint(temporary, temporary_crc, sizeof temporary_crc, why, sizeof why);
            CHECK(temporary_step == -1 || temporary_step == step + 1);
            partial += temporary_step == -1;
            unrenamed += temporary_step != -1;
        }
        if (step == 0) continue;
        if (step > previous && stale_before > 0) {
            /* this run got to its first step: the files of the runs killed before it are gone */
            CHECK_EQ(leftover, mine);
            cleaned += leftover == mine;
        }
        if (crc_at[step][0] == '\0') {
            snprintf(crc_at[step], sizeof crc_at[step], "%s", crc);
            if (step < WIDE_STEPS) {
                /* resume from it (to another file) to the end: the bytes of the uninterrupted run */
                const char *const resume_tail[] = {"--resume", "@killed.safetensors", "--checkpoint", "@finished.safetensors", NULL};
                memcpy(args + BASE, resume_tail, sizeof resume_tail);
                CHECK_EQ(wait_exit_status(spawn(wide_trainer_path, args, ".out", ".err")), 0);
                CHECK(same_file_bytes("finished.safetensors", straight, straight_length));
                path_in(path, sizeof path, "finished.safetensors");
                unlink(path);
                resumed++;
            }
        } else {
            CHECK_STR_EQ(crc, crc_at[step]);
        }
        if (step == WIDE_STEPS) { /* the chain is done: start another */
            CHECK(same_file_bytes("killed.safetensors", straight, straight_length));
            path_in(path, sizeof path, "killed.safetensors");
            unlink(path);
            chains++;
            previous = 0;
        } else {
            previous = step;
        }
    }
    /* finish the last chain */
    int stale = leftover_temporaries(0, NULL, 0, &(int){0});
    const char *const last_tail[] = {"--checkpoint", "@killed.safetensors", "--resume", "@killed.safetensors", NULL};
    memcpy(args + BASE, last_tail, sizeof last_tail);
    if (previous == 0) args[BASE + 2] = NULL;
    CHECK_EQ(wait_exit_status(spawn(wide_trainer_path, args, ".out", ".err")), 0);
    CHECK(same_file_bytes("killed.safetensors", straight, straight_length));
    CHECK_EQ(leftover_temporaries(0, NULL, 0, &(int){0}), 0);
    if (stale > 0) {
        size_t length = 0;
        unsigned char *text = file_bytes(".err", &length);
        text = realloc(text, length + 1);
        text[length] = '\0';
        CHECK_CONTAINS((char *)text, ", left by an interrupted checkpoint write\n");
        free(text);
    }
    free(straight);
    /* some kills must have landed in the middle of a write, or the test shows nothing */
    CHECK(mid_write > 0);
    printf("       %d SIGKILLs (%d aimed at a write): %d mid-write (%d of the aimed), leaving %d partial temporary files and %d "
           "whole ones not renamed yet;\n       %d before a chain's first checkpoint; chains finished: %d; %d distinct checkpoints "
           "resumed to the identical end;\n       stale temporary files removed by %d later runs; %.0f ms to the first checkpoint, "
           "%.1f ms a step\n",
           kills, targeted, mid_write, targeted_mid_write, partial, unrenamed, absent, chains + 1, resumed, cleaned + (stale > 0),
           first * 1e3, step_time * 1e3);
}

/* ---- main -------------------------------------------------------------------------------------------- */

/* Each test gets a fresh scratch directory. */
static void in_fresh_directory(const char *name, void (*test)(void)) {
    make_temp_dir(directory, sizeof directory);
    test_run(name, test);
    remove_tree(directory);
}

#define RUN_FRESH(test) in_fresh_directory(#test, test)

int main(int argc, char **argv) {
    double start = test_now();
    gr_error err;
    program = gr_program_load(granule_manifest, granule_entries, &err);
    if (program == NULL) {
        fprintf(stderr, "cannot load the fake train program: %s\n", err.message);
        return 1;
    }
    trainer_path = argc > 1 ? argv[1] : NULL;
    wide_trainer_path = argc > 2 ? argv[2] : NULL;
    printf("suite train\n");
    RUN_FRESH(test_splitmix64_known_answers);
    RUN_FRESH(test_uniform_and_shuffle);
    RUN_FRESH(test_learning_rate_schedule);
    RUN_FRESH(test_single_task_order_drops_the_partial_batch);
    RUN_FRESH(test_round_robin_is_proportional);
    RUN_FRESH(test_dataset_errors);
    RUN_FRESH(test_a_run_learns_and_writes_everything);
    RUN_FRESH(test_resume_is_bit_identical);
    RUN_FRESH(test_resume_rejects_other_settings);
    RUN_FRESH(test_nan_stops_and_keeps_the_checkpoint);
    RUN_FRESH(test_diverged_weights_are_never_checkpointed);
    RUN_FRESH(test_outputs_are_checked_before_training);
    RUN_FRESH(test_a_signal_stops_after_the_step);
    RUN_FRESH(test_stale_temporary_files_are_removed);
    RUN_FRESH(test_usage_and_setup_errors);
    if (trainer_path != NULL) {
        RUN_FRESH(test_the_command_line);
    } else {
        printf("  skip test_the_command_line (no fake_trainer path given)\n");
    }
    if (wide_trainer_path != NULL) {
        RUN_FRESH(test_a_sigkill_never_tears_a_checkpoint);
    } else {
        printf("  skip test_a_sigkill_never_tears_a_checkpoint (no fake_trainer_wide path given)\n");
    }
    gr_program_free(program);
    return test_report(start);
}
