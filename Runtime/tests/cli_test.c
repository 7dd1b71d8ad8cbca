/*
 * cli_test.c: main.c end to end, with the fake program linked into an executable.
 * Usage: cli_tests PATH/TO/fake_model
 */
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Test state: the executable under test and a scratch directory. */
static const char *model;
static char directory[512];

typedef struct outcome {
    int status; /* exit status, or -signal */
    char out[8192];
    char err[8192];
} outcome;

static void read_into(const char *path, char *buffer, size_t size) {
    size_t length = 0;
    unsigned char *bytes = read_bytes(path, &length);
    if (length >= size) length = size - 1;
    if (bytes != NULL) memcpy(buffer, bytes, length);
    buffer[length] = '\0';
    free(bytes);
}

/* Runs the model with `args` (NULL-terminated, without argv[0]), environment as is. */
static void run(outcome *o, const char *const *args) {
    char out_path[700], err_path[700];
    snprintf(out_path, sizeof out_path, "%s/.stdout", directory);
    snprintf(err_path, sizeof err_path, "%s/.stderr", directory);
    const char *argv[32];
    int argc = 0;
    argv[argc++] = model;
    for (const char *const *a = args; *a != NULL && argc < 31; a++) argv[argc++] = *a;
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(err, 2);
        execv(model, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    o->status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    read_into(out_path, o->out, sizeof o->out);
    read_into(err_path, o->err, sizeof o->err);
    unlink(out_path);
    unlink(err_path);
}

static void in_dir(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", directory, name);
}

static const float weight[32] = {0.5f, -1, 2, 0.25f, 1, 1, 1, 1, -3, 0.125f, 4, -0.5f, 0, 0, 0, 0,
                                 1.5f, 2.5f, -2.5f, 3, 7, -7, 0.75f, 0.25f, 0.5f, 0.5f, 0.5f, 0.5f, -1, -2, -3, -4};
static const float scale[4] = {1, -1, 0.5f, 2};

/* weights.safetensors (weight shape rows×4) and batch.safetensors with `ids`. */
static void write_files(int64_t rows, const int64_t *ids) {
    char weights_path[700], batch_path[700];
    in_dir(weights_path, sizeof weights_path, "weights.safetensors");
    in_dir(batch_path, sizeof batch_path, "batch.safetensors");
    int64_t weight_shape[2] = {rows, 4}, scale_shape[1] = {4}, ids_shape[2] = {2, 3};
    const gr_st_write_tensor weights[2] = {{"model.shared.weight", GR_ST_F32, 2, weight_shape, weight},
                                           {"adapter.scale", GR_ST_F32, 1, scale_shape, scale}};
    const gr_st_write_tensor batch[1] = {{"input_ids", GR_ST_I64, 2, ids_shape, ids}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(weights_path, weights, 2, NULL, 0, &err), 0);
    CHECK_EQ(gr_safetensors_write(batch_path, batch, 1, NULL, 0, &err), 0);
}

static const int64_t good_ids[6] = {1, 7, 0, 4, 4, 2};

static void test_help_and_usage_errors(void) {
    outcome o;
    run(&o, (const char *[]){"--help", NULL});
    CHECK_EQ(o.status, 0);
    CHECK_CONTAINS(o.out, "usage:\n");
    CHECK_CONTAINS(o.out, " run --function NAME --inputs A.safetensors [--inputs B.safetensors ...] --out OUT.safetensors [--threads N]\n");
    run(&o, (const char *[]){"run", "--help", NULL});
    CHECK_EQ(o.status, 0);
    run(&o, (const char *[]){NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "usage:\n");
    run(&o, (const char *[]){"fly", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: unknown command 'fly' (commands: run, step, bench, train, generate, eval, info)");
    run(&o, (const char *[]){"train", NULL}); /* train.c's own options: see train_test.c */
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: train needs --weights FILE");
    run(&o, (const char *[]){"run", "--function", "sgd", "--inputs", "x.safetensors", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: run needs --out FILE");
    run(&o, (const char *[]){"run", "--function", "sgd", "--out", "o.safetensors", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: run needs --inputs FILE");
    run(&o, (const char *[]){"step", "--weights", "w", "--batch", "b", "--out", "o", "--threads", "0", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: --threads must be an integer in [1, 1024], got '0'");
    run(&o, (const char *[]){"step", "--weights", "w", "--batch", "b", "--out", "o", "--threads=x", NULL});
    CHECK_EQ(o.status, 2);
    run(&o, (const char *[]){"step", "--weights", "w", "--batch", "b", "--out", "o", "--function", "f", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: step: unknown option '--function'");
    run(&o, (const char *[]){"step", "--weights", "w", "--weights", "w2", "--batch", "b", "--out", "o", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: option '--weights' is given more than once");
    run(&o, (const char *[]){"step", "--weights", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: option '--weights' needs a value");
    run(&o, (const char *[]){"info", "extra", NULL});
    CHECK_EQ(o.status, 2);
}

static void test_info_lists_signatures(void) {
    outcome o;
    run(&o, (const char *[]){"info", NULL});
    CHECK_EQ(o.status, 0);
    CHECK_CONTAINS(o.out, "@loss_grad (arena 96 bytes)  [step function]\n");
    CHECK_CONTAINS(o.out, "  %input_ids: i64[2,3] input\n");
    CHECK_CONTAINS(o.out, "  %model.shared.weight: f32[8,4] frozen\n");
    CHECK_CONTAINS(o.out, "  -> loss: f32[]\n");
    CHECK_CONTAINS(o.out, "  -> w.new: f32[4] writes %w\n");
    CHECK_STR_EQ(o.err, "");
}

static void test_step_succeeds_and_prints_the_loss(void) {
    write_files(8, good_ids);
    char weights[700], batch[700], out[700];
    in_dir(weights, sizeof weights, "weights.safetensors");
    in_dir(batch, sizeof batch, "batch.safetensors");
    in_dir(out, sizeof out, "grads.safetensors");
    outcome o;
    float losses[2] = {0, 0};
    const char *threads[2] = {"1", "2"};
    for (int k = 0; k < 2; k++) {
        run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, "--threads", threads[k], NULL});
        CHECK_EQ(o.status, 0);
        CHECK_STR_EQ(o.err, "");
        gr_error err;
        gr_safetensors *file = gr_safetensors_open(out, 0, &err);
        CHECK(file != NULL);
        if (file == NULL) return;
        const gr_st_tensor *loss = gr_safetensors_find(file, "loss");
        CHECK(loss != NULL && gr_safetensors_find(file, "grad.adapter.scale") != NULL);
        losses[k] = *(const float *)loss->data;
        char want[64];
        snprintf(want, sizeof want, "loss: %.9g\n", (double)losses[k]);
        CHECK_CONTAINS(o.out, want);
        gr_safetensors_close(file);
    }
    double expected = 0;
    for (int t = 0; t < 6; t++) {
        for (int j = 0; j < 4; j++) expected += (double)weight[good_ids[t] * 4 + j] * scale[j] / 6;
    }
    CHECK(fabs(losses[0] - expected) < 1e-6);
    CHECK(losses[0] == losses[1]);
    CHECK_CONTAINS(o.out, "wrote 2 results to ");
}

static void test_run_writes_every_result(void) {
    char inputs[700], out[700];
    in_dir(inputs, sizeof inputs, "sgd.safetensors");
    in_dir(out, sizeof out, "sgd-out.safetensors");
    float w[4] = {1, 2, 3, 4}, m[4] = {0, 0, 1, 1}, g[4] = {1, 1, 1, 1};
    int64_t shape[1] = {4};
    gr_st_write_tensor tensors[3] = {{"w", GR_ST_F32, 1, shape, w}, {"m", GR_ST_F32, 1, shape, m}, {"g", GR_ST_F32, 1, shape, g}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(inputs, tensors, 3, NULL, 0, &err), 0);
    outcome o;
    run(&o, (const char *[]){"run", "--function=sgd", "--inputs", inputs, "--out", out, NULL});
    CHECK_EQ(o.status, 0);
    CHECK_CONTAINS(o.out, "w.new: f32[4]");
    CHECK_CONTAINS(o.out, "wrote 2 results to ");
    gr_safetensors *file = gr_safetensors_open(out, 0, &err);
    CHECK(file != NULL);
    if (file != NULL) {
        const float *w_new = gr_safetensors_find(file, "w.new")->data;
        const float *m_new = gr_safetensors_find(file, "m.new")->data;
        CHECK(m_new[0] == 1.0f && m_new[2] == 0.9f * 1 + 1);
        CHECK(w_new[0] == 1.0f - 0.1f * 1.0f);
        gr_safetensors_close(file);
    }
    /* Every dtype, printed as `granule run` prints results. */
    char mixed[700];
    in_dir(mixed, sizeof mixed, "mixed.safetensors");
    uint8_t mask[5] = {1, 0, 1, 1, 0};
    int32_t counts[5] = {10, -20, 30, 41, 7};
    double x[2] = {0.25, 0.5};
    int64_t seed = 77;
    int32_t divisor = 3;
    int64_t s5[1] = {5}, s2[1] = {2};
    gr_st_write_tensor values[5] = {{"mask", GR_ST_BOOL, 1, s5, mask}, {"counts", GR_ST_I32, 1, s5, counts}, {"x", GR_ST_F64, 1, s2, x},
                                    {"seed", GR_ST_I64, 0, NULL, &seed}, {"divisor", GR_ST_I32, 0, NULL, &divisor}};
    CHECK_EQ(gr_safetensors_write(mixed, values, 5, NULL, 0, &err), 0);
    run(&o, (const char *[]){"run", "--function", "mixed", "--inputs", mixed, "--out", out, NULL});
    CHECK_EQ(o.status, 0);
    CHECK_CONTAINS(o.out, "masked: i32[5] [10, 0, 30, 41, 0]\n");
    CHECK_CONTAINS(o.out, "total: f64[] = 0.75\n");
    CHECK_CONTAINS(o.out, "quotient: i32[5] [3, -6, 10, 13, 2]\n");
    CHECK_CONTAINS(o.out, "keep: i1[5] [");
    run(&o, (const char *[]){"run", "--function", "sgd", "--inputs", inputs, "--out", out, NULL});
    CHECK_CONTAINS(o.out, "m.new: f32[4] norm 3.03644526 [1, 1, 1.89999998, 1.89999998]\n");
    /* The same file given twice is read once (through another path, too). */
    char again[800];
    snprintf(again, sizeof again, "%s/./sgd.safetensors", directory);
    run(&o, (const char *[]){"run", "--function", "sgd", "--inputs", inputs, "--inputs", again, "--out", out, NULL});
    CHECK_EQ(o.status, 0);
    run(&o, (const char *[]){"run", "--function", "nope", "--inputs", inputs, "--out", out, NULL});
    CHECK_EQ(o.status, 1);
    CHECK_STR_EQ(o.err, "error: the program has no function 'nope' (functions: loss_grad, mixed, sgd)\n");
    /* A missing output directory is an error before the call, naming the option and directory. */
    char nowhere[800], want[1800];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/out.safetensors", directory);
    snprintf(want, sizeof want, "error: --out %s: the directory %s/no/such does not exist\n", nowhere, directory);
    run(&o, (const char *[]){"run", "--function", "sgd", "--inputs", inputs, "--out", nowhere, NULL});
    CHECK_EQ(o.status, 1);
    CHECK_STR_EQ(o.err, want);
    CHECK_EQ(strstr(o.out, "w.new"), NULL);
    /* A path through a file is named as such. */
    snprintf(nowhere, sizeof nowhere, "%s/sgd.safetensors/out.safetensors", directory);
    snprintf(want, sizeof want, "error: --out %s: cannot inspect %s: Not a directory\n", nowhere, nowhere);
    run(&o, (const char *[]){"run", "--function", "sgd", "--inputs", inputs, "--out", nowhere, NULL});
    CHECK_EQ(o.status, 1);
    CHECK_STR_EQ(o.err, want);
    /* The results may replace the inputs' file (a state updated in place). */
    char state[700];
    in_dir(state, sizeof state, "state.safetensors");
    CHECK_EQ(gr_safetensors_write(state, tensors, 3, NULL, 0, &err), 0);
    run(&o, (const char *[]){"run", "--function", "sgd", "--inputs", state, "--out", state, NULL});
    CHECK_EQ(o.status, 0);
    file = gr_safetensors_open(state, 0, &err);
    CHECK(file != NULL && gr_safetensors_find(file, "w.new") != NULL);
    gr_safetensors_close(file);
}

/* Checks a failed step: exit 1, one "error:" line containing `want`, and no output file. */
static void expect_step_failure(const char *weights, const char *batch, const char *want, int line) {
    char out[700];
    in_dir(out, sizeof out, "failed.safetensors");
    outcome o;
    run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, NULL});
    test_check_i64(o.status, 1, "exit status", __FILE__, line);
    test_check(strncmp(o.err, "error: ", 7) == 0, "stderr starts with error:", __FILE__, line);
    test_check(strchr(o.err, '\n') == o.err + strlen(o.err) - 1, "stderr is one line", __FILE__, line);
    test_check_contains(o.err, want, "stderr", __FILE__, line);
    test_check(access(out, F_OK) != 0, "no output file", __FILE__, line);
}

static void test_failures_name_the_file_and_tensor(void) {
    char weights[700], batch[700], missing[700], want[2000];
    in_dir(weights, sizeof weights, "weights.safetensors");
    in_dir(batch, sizeof batch, "batch.safetensors");
    in_dir(missing, sizeof missing, "missing.safetensors");

    /* A missing weight file. */
    write_files(8, good_ids);
    snprintf(want, sizeof want, "error: %s: cannot open: No such file or directory\n", missing);
    expect_step_failure(missing, batch, want, __LINE__);

    /* A tensor of the wrong shape. */
    write_files(7, good_ids);
    snprintf(want, sizeof want, "error: %s: tensor 'model.shared.weight': parameter of function 'loss_grad' needs f32[8,4], got F32 [7, 4]\n",
             weights);
    expect_step_failure(weights, batch, want, __LINE__);

    /* A token id out of range, raised by the program. */
    const int64_t bad_ids[6] = {1, 2, 3, 4, 5, 64};
    write_files(8, bad_ids);
    expect_step_failure(weights, batch, "error: fake.tir:4:3: gather: index 64 is out of range [0, 8)\n", __LINE__);

    /* A corrupt checkpoint: one flipped bit in the data. */
    write_files(8, good_ids);
    size_t length;
    unsigned char *bytes = read_bytes(weights, &length);
    bytes[length - 3] ^= 0x04;
    write_bytes(weights, bytes, length);
    free(bytes);
    snprintf(want, sizeof want, "error: %s: checkpoint is corrupt: CRC mismatch", weights);
    expect_step_failure(weights, batch, want, __LINE__);

    /* A truncated file. */
    write_files(8, good_ids);
    bytes = read_bytes(weights, &length);
    write_bytes(weights, bytes, length - 5);
    free(bytes);
    snprintf(want, sizeof want, "error: %s: tensor '", weights);
    expect_step_failure(weights, batch, want, __LINE__);
    expect_step_failure(weights, batch, "run past the end of the data buffer", __LINE__);

    /* A parameter in no file (a file given twice is searched once), one in two files. */
    write_files(8, good_ids);
    snprintf(want, sizeof want, "error: function 'loss_grad': parameter 'input_ids' (i64[2,3], input) is in none of: %s\n", weights);
    expect_step_failure(weights, weights, want, __LINE__);
    char other_batch[700];
    in_dir(other_batch, sizeof other_batch, "batch-copy.safetensors");
    bytes = read_bytes(batch, &length);
    write_bytes(other_batch, bytes, length);
    free(bytes);
    snprintf(want, sizeof want, "error: function 'loss_grad': parameter 'input_ids' is in both %s and %s\n", batch, other_batch);
    expect_step_failure(batch, other_batch, want, __LINE__);

    /* An output path that cannot be written: exit 1 before the step runs, the inputs untouched. */
    char out[700];
    snprintf(out, sizeof out, "%s/no/such/dir/g.safetensors", directory);
    outcome o;
    run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, NULL});
    CHECK_EQ(o.status, 1);
    CHECK_CONTAINS(o.err, "/no/such/dir does not exist");
    CHECK_EQ(strstr(o.out, "loss:"), NULL);
}

static void test_invalid_thread_environment(void) {
    write_files(8, good_ids);
    char weights[700], batch[700], out[700];
    in_dir(weights, sizeof weights, "weights.safetensors");
    in_dir(batch, sizeof batch, "batch.safetensors");
    in_dir(out, sizeof out, "g.safetensors");
    setenv("GRANULE_THREADS", "many", 1);
    outcome o;
    run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, NULL});
    CHECK_EQ(o.status, 1);
    CHECK_STR_EQ(o.err, "error: GRANULE_THREADS must be an integer in [1, 1024], got 'many'\n");
    run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, "--threads", "2", NULL});
    CHECK_EQ(o.status, 0);
    unsetenv("GRANULE_THREADS");
}

/* The number after `"key": ` in a one-line JSON object, or NAN when the key is missing. */
static double json_number(const char *json, const char *key) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(json, pattern);
    if (at == NULL) return NAN;
    char *end = NULL;
    double value = strtod(at + strlen(pattern), &end);
    return end == at + strlen(pattern) ? NAN : value;
}

static void test_bench_times_the_step_function(void) {
    write_files(8, good_ids);
    char weights[700], batch[700], out[700];
    in_dir(weights, sizeof weights, "weights.safetensors");
    in_dir(batch, sizeof batch, "batch.safetensors");
    in_dir(out, sizeof out, "bench-grads.safetensors");
    outcome o;
    /* The loss the step prints is the loss bench prints. */
    run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, NULL});
    CHECK_EQ(o.status, 0);
    char loss_line[128] = "";
    const char *at = strstr(o.out, "loss: ");
    if (at != NULL) snprintf(loss_line, sizeof loss_line, "%.*s", (int)(strchr(at, '\n') - at + 1), at);
    CHECK(loss_line[0] != '\0');

    /* Text: defaults (10 timed calls after 2 warm-up calls) and the options. */
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--threads", "1", NULL});
    CHECK_EQ(o.status, 0);
    CHECK_STR_EQ(o.err, "");
    CHECK_CONTAINS(o.out, "bench @loss_grad: 10 timed calls after 2 warm-up calls, 1 thread, no parameter of 64 KiB or more to release\n");
    CHECK_CONTAINS(o.out, "\nmedian ");
    CHECK_CONTAINS(o.out, " ms, min ");
    CHECK_CONTAINS(o.out, "\npeak RSS ");
    CHECK_CONTAINS(o.out, loss_line);
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--steps=1", "--warmup", "0", "--threads", "2",
                             "--resident-weights", NULL});
    CHECK_EQ(o.status, 0);
    CHECK_CONTAINS(o.out, "bench @loss_grad: 1 timed call after 0 warm-up calls, 2 threads, weights resident\n");
    CHECK_CONTAINS(o.out, loss_line);

    /* JSON: one line, consistent statistics, one timing per step. */
    run(&o, (const char *[]){"bench", "--json", "--weights", weights, "--batch", batch, "--steps", "5", "--warmup", "1", "--threads", "2", NULL});
    CHECK_EQ(o.status, 0);
    CHECK_STR_EQ(o.err, "");
    static const char json_start[] =
        "{\"function\": \"loss_grad\", \"resident_weights\": false, \"threads\": 2, \"warmup\": 1, \"steps\": 5, \"median_ms\": ";
    CHECK(strncmp(o.out, json_start, strlen(json_start)) == 0);
    CHECK(strchr(o.out, '\n') == o.out + strlen(o.out) - 1);
    CHECK(strlen(o.out) >= 2 && o.out[strlen(o.out) - 2] == '}');
    double median = json_number(o.out, "median_ms"), min = json_number(o.out, "min_ms"), max = json_number(o.out, "max_ms");
    CHECK(min >= 0 && min <= median && median <= max);
    CHECK(json_number(o.out, "peak_rss_mb") > 0);
    CHECK(json_number(o.out, "cpu_ms") >= 0);
    const char *times = strstr(o.out, "\"times_ms\": [");
    CHECK(times != NULL);
    if (times != NULL) {
        int values = 1;
        for (const char *c = times; *c != ']' && *c != '\0'; c++) values += *c == ',';
        CHECK_EQ(values, 5);
    }
    /* Start times on the monotonic clock, increasing by at least each call's duration. */
    const char *starts = strstr(o.out, "\"starts_ms\": [");
    CHECK(starts != NULL);
    if (starts != NULL && times != NULL) {
        char *next = (char *)starts + strlen("\"starts_ms\": [");
        char *time_next = (char *)times + strlen("\"times_ms\": [");
        double previous_start = -1, previous_time = 0;
        for (int i = 0; i < 5; i++) {
            double start = strtod(next, &next), duration = strtod(time_next, &time_next);
            CHECK(start >= previous_start + previous_time - 0.002); /* both rounded to 0.001 */
            previous_start = start;
            previous_time = duration;
            next += strspn(next, ", ");
            time_next += strspn(time_next, ", ");
        }
    }
    double step_loss = strtod(loss_line + strlen("loss: "), NULL);
    CHECK(json_number(o.out, "loss") == step_loss);

    /* Another function by name; a first result that is not a scalar gives "loss": null. */
    char sgd[700];
    in_dir(sgd, sizeof sgd, "bench-sgd.safetensors");
    float w[4] = {1, 2, 3, 4}, m[4] = {0, 0, 1, 1}, g[4] = {1, 1, 1, 1};
    int64_t shape[1] = {4};
    gr_st_write_tensor tensors[3] = {{"w", GR_ST_F32, 1, shape, w}, {"m", GR_ST_F32, 1, shape, m}, {"g", GR_ST_F32, 1, shape, g}};
    gr_error err;
    CHECK_EQ(gr_safetensors_write(sgd, tensors, 3, NULL, 0, &err), 0);
    run(&o, (const char *[]){"bench", "--function", "sgd", "--weights", sgd, "--batch", sgd, "--json", "--steps", "2", NULL});
    CHECK_EQ(o.status, 0);
    CHECK_CONTAINS(o.out, "{\"function\": \"sgd\", ");
    CHECK_CONTAINS(o.out, "\"steps\": 2, ");
    CHECK_CONTAINS(o.out, "\"loss\": null}\n");

    /* Usage errors. */
    run(&o, (const char *[]){"bench", "--weights", weights, NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: bench needs --batch FILE");
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--steps", "0", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: --steps must be an integer in [1, 100000], got '0'");
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--warmup", "-1", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: --warmup must be an integer in [0, 100000], got '-1'");
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--steps", "3", "--steps", "4", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: option '--steps' is given more than once");
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--out", out, NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: bench: unknown option '--out'");
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--profile-rows", "5", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: --profile-rows needs --profile");
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--profile", "--profile-rows", "x", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: --profile-rows must be an integer in [0, 100000], got 'x'");
    run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, "--json", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: step: unknown option '--json'");
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--json=true", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: option '--json' takes no value");
    run(&o, (const char *[]){"step", "--weights", weights, "--batch", batch, "--out", out, "--resident-weights=1", NULL});
    CHECK_EQ(o.status, 2);
    CHECK_CONTAINS(o.err, "error: option '--resident-weights' takes no value");

    /* Errors: an unknown function, a missing parameter, a run-time error in a timed call. */
    run(&o, (const char *[]){"bench", "--function", "nope", "--weights", weights, "--batch", batch, NULL});
    CHECK_EQ(o.status, 1);
    CHECK_STR_EQ(o.err, "error: the program has no function 'nope' (functions: loss_grad, mixed, sgd)\n");
    run(&o, (const char *[]){"bench", "--function", "sgd", "--weights", weights, "--batch", batch, NULL});
    CHECK_EQ(o.status, 1);
    CHECK_CONTAINS(o.err, "error: function 'sgd': parameter 'w' (f32[4], trainable) is in none of: ");
    const int64_t bad_ids[6] = {1, 2, 3, 4, 5, 64};
    write_files(8, bad_ids);
    run(&o, (const char *[]){"bench", "--weights", weights, "--batch", batch, "--warmup", "0", NULL});
    CHECK_EQ(o.status, 1);
    CHECK_STR_EQ(o.err, "error: fake.tir:4:3: gather: index 64 is out of range [0, 8)\n");
    CHECK_STR_EQ(o.out, "");
    write_files(8, good_ids);
}

static void test_no_temporary_files_left(void) {
    /* Everything written above went through atomic writes: only the named files remain. */
    int entries = count_entries(directory);
    DIR *dir = opendir(directory);
    struct dirent *e;
    bool temporary = false;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        if (strstr(e->d_name, ".tmp-") != NULL) temporary = true;
    }
    if (dir != NULL) closedir(dir);
    CHECK(!temporary);
    CHECK(entries >= 3);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: cli_tests PATH/TO/fake_model\n");
        return 2;
    }
    double start = test_now();
    model = argv[1];
    unsetenv("GRANULE_THREADS");
    make_temp_dir(directory, sizeof directory);
    printf("suite cli (%s)\n", model);
    RUN(test_help_and_usage_errors);
    RUN(test_info_lists_signatures);
    RUN(test_step_succeeds_and_prints_the_loss);
    RUN(test_run_writes_every_result);
    RUN(test_failures_name_the_file_and_tensor);
    RUN(test_invalid_thread_environment);
    RUN(test_bench_times_the_step_function);
    RUN(test_no_temporary_files_left);
    remove_tree(directory);
    return test_report(start);
}
