/*
 * main.c: the command line of every program Granule compiles.
 *
 *   MODEL run --function NAME --inputs A.safetensors [--inputs B.safetensors ...] --out OUT.safetensors [--threads N]
 *             [--resident-weights]
 *   MODEL step --weights W.safetensors --batch B.safetensors --out G.safetensors [--threads N] [--resident-weights]
 *   MODEL bench --weights W.safetensors --batch B.safetensors [--function NAME] [--steps N] [--warmup K]
 *               [--threads N] [--json] [--profile] [--profile-rows N] [--resident-weights]
 *   MODEL train --weights W.safetensors --data D.safetensors ... (--steps N | --epochs E) --lr LR ...  (train.c)
 *   MODEL generate|eval --weights W.safetensors --data D.safetensors [--vocab V] ...  (generate.c)
 *   MODEL info
 *
 * Exit status: 0 on success, 1 on any error (one line "error: ..." on stderr naming the file,
 * tensor or field), 2 on a usage error.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* stat, clock_gettime, getrusage */
#endif

#include "options.h"
#include "params.h"
#include "generate.h"
#include "granule_runtime.h"
#include "train.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

/* Exported by the generated object. */
extern const char granule_manifest[];
extern gr_entry_fn const granule_entries[];

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

#define MAX_INPUTS 64
/* bench: default and largest numbers of timed and warm-up calls. */
#define DEFAULT_STEPS 10
#define DEFAULT_WARMUP 2
#define MAX_STEPS 100000
#define PROFILE_ROWS 40 /* bench --profile: the longest steps shown unless --profile-rows says */

static void print_help(FILE *out, const char *program) {
    fprintf(out,
            "usage:\n"
            "  %s run --function NAME --inputs A.safetensors [--inputs B.safetensors ...] --out OUT.safetensors [--threads N]\n"
            "        [--resident-weights]\n"
            "  %s step --weights W.safetensors --batch B.safetensors --out G.safetensors [--threads N] [--resident-weights]\n"
            "  %s bench --weights W.safetensors --batch B.safetensors [--function NAME] [--steps N] [--warmup K]\n"
            "        [--threads N] [--json] [--profile] [--profile-rows N] [--resident-weights]\n",
            program, program, program);
    train_print_usage(out, program);
    generate_print_usage(out, program);
    fprintf(out,
            "  %s info\n"
            "\n"
            "A program compiled by Granule. Parameters are read from .safetensors files by name (mapped,\n"
            "not copied; F16 and BF16 tensors are accepted for f32 parameters); results are written to a\n"
            ".safetensors file by name, atomically.\n"
            "\n"
            "commands:\n"
            "  run     run the function NAME; each parameter must be in exactly one --inputs file\n"
            "  step    run the training step function on --weights and --batch, print the loss and write\n"
            "          every result (the loss, the gradients, ...) to --out\n"
            "  bench   bind --weights and --batch once, call the function (default: the step function)\n"
            "          --warmup times untimed, then --steps times timed (monotonic clock around each call\n"
            "          only); print the median, min and max milliseconds and the peak RSS (--json: one\n"
            "          line of JSON) and the loss of the first call; nothing is written (a training step\n"
            "          updates its parameters in memory from call to call, as train does)\n"
            "  train   train with the program's @<f>_train_step (AdamW): data order, learning-rate schedule,\n"
            "          checkpoints, resume; see `%s train --help`\n"
            "  generate  greedy or beam-search generation with @encode / @decode_step, predictions as JSONL;\n"
            "          see `%s generate --help`\n"
            "  eval    generate, then score against references (VQA accuracy, label score, exact match)\n"
            "  info    list the functions with their parameters and results\n"
            "\n"
            "options:\n"
            "  --threads N   threads for the kernels (default: $GRANULE_THREADS, else every online CPU)\n"
            "  --steps N     bench: timed calls, in [1, %d] (default %d)\n"
            "  --warmup K    bench: untimed calls first, in [0, %d] (default %d)\n"
            "  --json        bench: print one JSON object on one line instead of text (with every timed\n"
            "                call's milliseconds, and its start on the monotonic clock in starts_ms)\n"
            "  --profile     bench: also print the time of every kernel and GEMM over the timed calls,\n"
            "                longest first (programs compiled with `granule compile --profile`; with\n"
            "                --json the table goes to stderr)\n"
            "  --profile-rows N  bench --profile: list the N longest steps, 0 for all (default %d)\n"
            "  --resident-weights  keep the mapped weights in the process between reads; by default a large\n"
            "                weight read straight from its file is dropped after a read whose next read is\n"
            "                far away and mapped again from the page cache at the next, so a training step's\n"
            "                peak memory holds only the layers in use (for 2-7%% of a BART-base batch-4 step\n"
            "                in page faults)\n"
            "  --help        this text\n"
            "  Options take their value as `--name VALUE` or `--name=VALUE`.\n"
            "\n"
            "exit status: 0 success, 1 error (one line `error: ...` on stderr), 2 usage error\n",
            program, program, program, MAX_STEPS, DEFAULT_STEPS, MAX_STEPS, DEFAULT_WARMUP, PROFILE_ROWS);
}


/* Parsed options of run, step and bench. */
typedef struct options {
    const char *function;
    const char *inputs[MAX_INPUTS];
    int input_count;
    const char *weights;
    const char *batch;
    const char *out;
    int threads;
    int steps;  /* bench; -1 until given */
    int warmup; /* bench; -1 until given */
    bool json;  /* bench */
    bool resident_weights;
    bool profile; /* bench */
    int profile_rows; /* bench; -1 until given, 0 for every step */
} options;

/* Parses a decimal integer in [low, high] strictly (digits only, at most 6 of them). */
static int parse_count(const char *text, int low, int high, int *out) {
    if (text[0] == '\0' || strlen(text) > 6) return -1;
    int value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') return -1;
        value = value * 10 + (*c - '0');
    }
    if (value < low || value > high) return -1;
    *out = value;
    return 0;
}

/* Parses the options after a command; returns EXIT_OK, EXIT_USAGE, or -1 for --help. */
static int parse_options(const char *program, const char *command, int argc, char **argv, options *o) {
    int is_run = strcmp(command, "run") == 0;
    int is_bench = strcmp(command, "bench") == 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
        if (strncmp(arg, "--", 2) != 0) return command_usage_error(stderr, program, NULL, "unexpected argument '%s'", arg);
        if (strcmp(arg, "--resident-weights") == 0) {
            o->resident_weights = true;
            continue;
        }
        if (is_bench && strcmp(arg, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (is_bench && strcmp(arg, "--profile") == 0) {
            o->profile = true;
            continue;
        }
        char name[64];
        const char *value = gr_split_option(arg, name, sizeof name);
        bool flag = strcmp(name, "--resident-weights") == 0 || (is_bench && (strcmp(name, "--json") == 0 || strcmp(name, "--profile") == 0));
        if (flag && value != NULL) {
            return command_usage_error(stderr, program, NULL, "option '%s' takes no value", name);
        }
        const char *const known_run[] = {"--function", "--inputs", "--out", "--threads", NULL};
        const char *const known_step[] = {"--weights", "--batch", "--out", "--threads", NULL};
        const char *const known_bench[] = {"--weights", "--batch", "--function", "--steps", "--warmup", "--threads", "--profile-rows", NULL};
        int known = 0;
        const char *const *names = is_run ? known_run : is_bench ? known_bench : known_step;
        for (const char *const *k = names; *k != NULL; k++) known |= strcmp(name, *k) == 0;
        if (!known) return command_usage_error(stderr, program, NULL, "%s: unknown option '%s'", command, name);
        if (value == NULL) {
            if (i + 1 >= argc) return command_usage_error(stderr, program, NULL, "option '%s' needs a value", name);
            value = argv[++i];
        }
        if (strcmp(name, "--inputs") == 0) {
            if (o->input_count == MAX_INPUTS) return command_usage_error(stderr, program, NULL, "too many --inputs (at most %d)", MAX_INPUTS);
            o->inputs[o->input_count++] = value;
            continue;
        }
        const char **slot = strcmp(name, "--function") == 0 ? &o->function
                            : strcmp(name, "--weights") == 0 ? &o->weights
                            : strcmp(name, "--batch") == 0   ? &o->batch
                            : strcmp(name, "--out") == 0     ? &o->out
                                                             : NULL;
        if (strcmp(name, "--profile-rows") == 0) {
            if (o->profile_rows >= 0) return command_usage_error(stderr, program, NULL, "option '%s' is given more than once", name);
            if (parse_count(value, 0, MAX_STEPS, &o->profile_rows) != 0) {
                return command_usage_error(stderr, program, NULL, "--profile-rows must be an integer in [0, %d], got '%s'", MAX_STEPS, value);
            }
            continue;
        }
        if (strcmp(name, "--steps") == 0 || strcmp(name, "--warmup") == 0) {
            bool steps = strcmp(name, "--steps") == 0;
            int *count = steps ? &o->steps : &o->warmup;
            if (*count >= 0) return command_usage_error(stderr, program, NULL, "option '%s' is given more than once", name);
            if (parse_count(value, steps ? 1 : 0, MAX_STEPS, count) != 0) {
                return command_usage_error(stderr, program, NULL, "%s must be an integer in [%d, %d], got '%s'", name, steps ? 1 : 0, MAX_STEPS, value);
            }
            continue;
        }
        if (slot == NULL) { /* --threads */
            if (parse_count(value, 1, GR_MAX_THREADS, &o->threads) != 0) {
                return command_usage_error(stderr, program, NULL, "--threads must be an integer in [1, %d], got '%s'", GR_MAX_THREADS, value);
            }
            continue;
        }
        if (*slot != NULL) return command_usage_error(stderr, program, NULL, "option '%s' is given more than once", name);
        *slot = value;
    }
    if (is_run) {
        if (o->function == NULL) return command_usage_error(stderr, program, NULL, "run needs --function NAME");
        if (o->input_count == 0) return command_usage_error(stderr, program, NULL, "run needs --inputs FILE");
    } else {
        if (o->weights == NULL) return command_usage_error(stderr, program, NULL, "%s needs --weights FILE", command);
        if (o->batch == NULL) return command_usage_error(stderr, program, NULL, "%s needs --batch FILE", command);
    }
    if (is_bench) {
        if (o->profile_rows >= 0 && !o->profile) return command_usage_error(stderr, program, NULL, "--profile-rows needs --profile");
        if (o->steps < 0) o->steps = DEFAULT_STEPS;
        if (o->warmup < 0) o->warmup = DEFAULT_WARMUP;
        return EXIT_OK;
    }
    if (o->out == NULL) return command_usage_error(stderr, program, NULL, "%s needs --out FILE", command);
    return EXIT_OK;
}

static int fail(const gr_error *err) {
    fprintf(stderr, "error: %s\n", err->message);
    return EXIT_ERROR;
}

/* One line per result, as `granule run` prints it: the value of a scalar, else the norm and the
 * first values of a float tensor or the first values of an integer one. */
static void print_summary(const gr_value_spec *spec, const void *data) {
    char type[256];
    gr_value_spec_type(spec, type, sizeof type);
    printf("%s: %s", spec->name, type);
    bool is_float = spec->dtype == GR_F32 || spec->dtype == GR_F64;
    double first[8];
    int64_t shown = spec->count < 8 ? spec->count : 8;
    for (int64_t i = 0; i < shown; i++) {
        switch (spec->dtype) {
        case GR_F32: first[i] = ((const float *)data)[i]; break;
        case GR_F64: first[i] = ((const double *)data)[i]; break;
        case GR_I32: first[i] = ((const int32_t *)data)[i]; break;
        case GR_I64: first[i] = (double)((const int64_t *)data)[i]; break;
        case GR_I1: first[i] = ((const uint8_t *)data)[i]; break;
        }
    }
    if (spec->count == 1) {
        if (spec->dtype == GR_I64) {
            printf(" = %" PRId64 "\n", *(const int64_t *)data);
        } else {
            printf(is_float ? " = %.9g\n" : " = %.0f\n", first[0]);
        }
        return;
    }
    if (is_float) {
        if (spec->count == 0) {
            printf("\n");
            return;
        }
        double squares = 0;
        for (int64_t i = 0; i < spec->count; i++) {
            double v = spec->dtype == GR_F32 ? (double)((const float *)data)[i] : ((const double *)data)[i];
            squares += v * v;
        }
        printf(" norm %.9g [", sqrt(squares));
        if (shown > 4) shown = 4;
    } else {
        printf(" [");
    }
    for (int64_t i = 0; i < shown; i++) {
        if (spec->dtype == GR_I64) {
            printf(i > 0 ? ", %" PRId64 : "%" PRId64, ((const int64_t *)data)[i]);
        } else {
            printf(is_float ? (i > 0 ? ", %.9g" : "%.9g") : (i > 0 ? ", %.0f" : "%.0f"), first[i]);
        }
    }
    printf("%s]\n", spec->count > shown ? ", ..." : "");
}

static int command_info(const gr_program *program) {
    for (int32_t f = 0; f < gr_program_function_count(program); f++) {
        const gr_function *fn = gr_program_function(program, f);
        char type[256];
        printf("@%s (arena %" PRId64 " bytes)%s\n", fn->name, fn->arena_bytes, fn == gr_program_step_function(program) ? "  [step function]" : "");
        for (int32_t i = 0; i < fn->param_count; i++) {
            gr_value_spec_type(&fn->params[i], type, sizeof type);
            printf("  %%%s: %s %s\n", fn->params[i].name, type, gr_role_name(fn->params[i].role));
        }
        for (int32_t r = 0; r < fn->result_count; r++) {
            const gr_value_spec *spec = &fn->results[r];
            gr_value_spec_type(spec, type, sizeof type);
            printf("  -> %s: %s", spec->name, type);
            if (spec->writes >= 0) printf(" writes %%%s%s", fn->params[spec->writes].name, spec->in_place ? " (in place)" : "");
            printf("\n");
        }
    }
    return EXIT_OK;
}

/* Whether paths[i] names the same file as an earlier path (a file given twice is read once). */
static bool same_file_given_before(const char *const *paths, int i) {
    struct stat info;
    if (stat(paths[i], &info) != 0) return false;
    for (int j = 0; j < i; j++) {
        struct stat other;
        if (stat(paths[j], &other) == 0 && other.st_dev == info.st_dev && other.st_ino == info.st_ino) return true;
    }
    return false;
}

/* Opens the files (each once; files[] must hold MAX_INPUTS NULLs) and binds fn to them, with the
 * results the manifest marks in_place in their parameters' buffers (an AdamW step then updates
 * its own copy of the trainable parameters and moments instead of allocating a second one), and
 * unless `resident`, mapped parameters released between distant reads. */
static gr_binding *open_and_bind(const gr_function *fn, const char *const *paths, int path_count, bool resident, gr_safetensors **files,
                                 gr_error *err) {
    int file_count = 0;
    for (int i = 0; i < path_count; i++) {
        if (same_file_given_before(paths, i)) continue; /* e.g. --weights W --batch W */
        files[file_count] = gr_safetensors_open(paths[i], 0, err);
        if (files[file_count] == NULL) return NULL;
        file_count++;
    }
    return gr_binding_create(fn, files, (size_t)file_count, GR_BIND_RESULTS_IN_PLACE | (resident ? 0 : GR_BIND_RELEASE_MAPPED), err);
}

/* Whether the function's first result is a float scalar (the loss of a step function). */
static bool has_loss(const gr_function *fn) {
    const gr_value_spec *first = fn->result_count > 0 ? &fn->results[0] : NULL;
    return first != NULL && first->count == 1 && first->rank == 0 && (first->dtype == GR_F32 || first->dtype == GR_F64);
}

/* The first result of a function with has_loss. */
static double loss_value(const gr_function *fn, const gr_binding *binding) {
    const void *loss = gr_binding_result(binding, 0);
    return fn->results[0].dtype == GR_F32 ? (double)*(const float *)loss : *(const double *)loss;
}

/* Opens the files, binds and calls the function, writes the results. */
static int execute(const gr_function *fn, const char *const *paths, int path_count, const options *o, bool print_loss) {
    gr_error err;
    gr_safetensors *files[MAX_INPUTS] = {0};
    gr_runtime *rt = NULL;
    gr_binding *binding = NULL;
    int status = EXIT_ERROR;
    /* Where the results go is checked before the call, not after it (a step can take minutes).
     * The output may replace an input (run --inputs S --out S updates a state file): the inputs
     * stay mapped from the old file, and the new one is renamed into place. */
    if (check_output_path("--out", o->out, NULL, NULL, 0, &err) != 0) goto done;
    binding = open_and_bind(fn, paths, path_count, o->resident_weights, files, &err);
    if (binding == NULL) goto done;
    rt = gr_runtime_create_checked(o->threads, &err);
    if (rt == NULL) goto done;
    if (gr_binding_call(rt, binding, &err) != 0) goto done;
    if (gr_binding_write_results(binding, o->out, &err) != 0) goto done;
    if (print_loss) {
        if (has_loss(fn)) printf("loss: %.9g\n", loss_value(fn, binding));
    } else {
        for (int32_t r = 0; r < fn->result_count; r++) print_summary(&fn->results[r], gr_binding_result(binding, r));
    }
    printf("wrote %" PRId32 " result%s to %s\n", fn->result_count, fn->result_count == 1 ? "" : "s", o->out);
    status = EXIT_OK;
done:
    if (status != EXIT_OK) fail(&err);
    gr_runtime_destroy(rt);
    gr_binding_free(binding);
    for (int i = 0; i < MAX_INPUTS; i++) gr_safetensors_close(files[i]);
    return status;
}

/* ---- bench ---- */

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* CPU time (user + system, every thread) of this process so far, in milliseconds. */
static double cpu_ms(void) {
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) return NAN;
    return (double)usage.ru_utime.tv_sec * 1e3 + (double)usage.ru_utime.tv_usec / 1e3 + (double)usage.ru_stime.tv_sec * 1e3 +
           (double)usage.ru_stime.tv_usec / 1e3;
}

/* The median of `values` (n >= 1), sorted in place. */
static double median_of(double *values, int n) {
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/* A JSON number, or null for NaN and infinities (JSON has neither). */
static void print_json_number(const char *format, double value) {
    if (isfinite(value)) {
        printf(format, value);
    } else {
        printf("null");
    }
}

/* A JSON string with the characters JSON requires escaped. */
static void print_json_string(const char *text) {
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            printf("\\%c", *c);
        } else if (*c < 0x20) {
            printf("\\u%04x", *c);
        } else {
            putchar(*c);
        }
    }
    putchar('"');
}

/* The profiled steps of fn's program that ran, by time, with the GEMM / kernel split. */
static void print_profile(const gr_function *fn, const gr_runtime *rt, int calls, int rows, FILE *out) {
    const gr_program *program = fn->program;
    int32_t count = gr_program_profile_count(program);
    int32_t *order = malloc(sizeof *order * (size_t)(count + 1));
    if (order == NULL) return;
    int32_t used = 0;
    double total = 0, gemm = 0;
    for (int32_t i = 0; i < count; i++) {
        double seconds = gr_runtime_profile_seconds(rt, i);
        if (gr_runtime_profile_calls(rt, i) == 0) continue;
        order[used++] = i;
        total += seconds;
        if (strstr(gr_program_profile_step(program, i), ": gemm ") != NULL) gemm += seconds;
    }
    for (int32_t a = 1; a < used; a++) { /* insertion sort by time, longest first */
        int32_t step = order[a], b = a;
        while (b > 0 && gr_runtime_profile_seconds(rt, order[b - 1]) < gr_runtime_profile_seconds(rt, step)) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = step;
    }
    fprintf(out, "profile of @%s: %d timed call%s, %d steps ran, %.3f ms per call: GEMMs %.1f%%, kernels %.1f%%\n", fn->name, calls,
            calls == 1 ? "" : "s", (int)used, 1e3 * total / calls, total > 0 ? 100 * gemm / total : 0,
            total > 0 ? 100 * (total - gemm) / total : 0);
    fprintf(out, "   share    ms/call  step\n");
    int32_t shown = rows == 0 || used < rows ? used : rows;
    double rest = total;
    for (int32_t k = 0; k < shown; k++) {
        double seconds = gr_runtime_profile_seconds(rt, order[k]);
        rest -= seconds;
        fprintf(out, "  %5.1f%%  %9.3f  %s\n", total > 0 ? 100 * seconds / total : 0, 1e3 * seconds / calls,
                gr_program_profile_step(program, order[k]));
    }
    if (used > shown) fprintf(out, "  %5.1f%%  %9.3f  (%d more steps)\n", total > 0 ? 100 * rest / total : 0, 1e3 * rest / calls, (int)(used - shown));
    free(order);
}

/* Binds fn once, calls it o->warmup times untimed and o->steps times timed (the monotonic clock
 * around the entry call only; the results are zero-filled before each call, as the ABI promises,
 * outside the timed region, except those in place: a training step's parameters and moments are
 * updated from call to call, as in `train`) and prints the statistics, with the median process
 * CPU time of a timed call (user + system, all threads: on a shared machine it tells contention
 * from work), and the loss of the first call (the bound state's, as bench/torch_step.py reports). */
static int bench(const gr_function *fn, const options *o) {
    gr_error err;
    gr_safetensors *files[MAX_INPUTS] = {0};
    gr_runtime *rt = NULL;
    gr_binding *binding = NULL;
    double *times = NULL, *cpu = NULL;
    int status = EXIT_ERROR;
    const char *paths[2] = {o->weights, o->batch};
    binding = open_and_bind(fn, paths, 2, o->resident_weights, files, &err);
    if (binding == NULL) goto done;
    rt = gr_runtime_create_checked(o->threads, &err);
    if (rt == NULL) goto done;
    /* wall times, CPU times, start times, sorted wall times */
    times = malloc(sizeof *times * (size_t)o->steps * 4);
    if (times == NULL) {
        snprintf(err.message, sizeof err.message, "out of memory for %d timings", o->steps);
        goto done;
    }
    cpu = times + o->steps;
    double *starts = times + 2 * o->steps;
    int32_t profile_steps = gr_program_profile_count(fn->program);
    if (o->profile && profile_steps == 0) {
        snprintf(err.message, sizeof err.message, "--profile: this program was compiled without profiling (granule compile --profile)");
        goto done;
    }
    double first_loss = NAN;
    for (int i = 0; i < o->warmup + o->steps; i++) {
        if (o->profile && i == o->warmup && gr_runtime_profile_enable(rt, profile_steps, &err) != 0) goto done;
        gr_binding_clear_results(binding);
        double cpu_start = cpu_ms();
        double start = now_ms();
        int failed = gr_binding_call(rt, binding, &err);
        double elapsed = now_ms() - start;
        double cpu_elapsed = cpu_ms() - cpu_start;
        if (failed != 0) goto done;
        if (i == 0) first_loss = has_loss(fn) ? loss_value(fn, binding) : NAN;
        if (i >= o->warmup) {
            times[i - o->warmup] = elapsed;
            cpu[i - o->warmup] = cpu_elapsed;
            starts[i - o->warmup] = start;
        }
    }
    int n = o->steps;
    double mean = 0;
    for (int i = 0; i < n; i++) mean += times[i] / n;
    double *sorted = times + 3 * n;
    memcpy(sorted, times, sizeof *sorted * (size_t)n);
    double median = median_of(sorted, n);
    double min = sorted[0], max = sorted[n - 1];
    double cpu_median = median_of(cpu, n);
    double rss = peak_rss_mib();
    double loss = first_loss; /* of the bound state: a training step updates it from call to call */
    int threads = gr_runtime_threads(rt);
    if (o->json) {
        printf("{\"function\": ");
        print_json_string(fn->name);
        printf(", \"resident_weights\": %s", o->resident_weights ? "true" : "false");
        printf(", \"threads\": %d, \"warmup\": %d, \"steps\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, "
               "\"mean_ms\": %.3f, \"cpu_ms\": %.3f, \"times_ms\": [",
               threads, o->warmup, o->steps, median, min, max, mean, cpu_median);
        for (int i = 0; i < n; i++) printf(i > 0 ? ", %.3f" : "%.3f", times[i]);
        printf("], \"starts_ms\": [");
        for (int i = 0; i < n; i++) printf(i > 0 ? ", %.3f" : "%.3f", starts[i]);
        printf("], \"peak_rss_mb\": ");
        print_json_number("%.1f", rss);
        printf(", \"loss\": ");
        print_json_number("%.9g", loss);
        printf("}\n");
    } else {
        int32_t released = 0;
        int64_t released_bytes = 0;
        for (int32_t i = 0; i < fn->param_count; i++) {
            if (fn->params[i].released) released++, released_bytes += fn->params[i].bytes;
        }
        char mode[128];
        if (o->resident_weights) {
            snprintf(mode, sizeof mode, ", weights resident");
        } else if (released == 0) {
            snprintf(mode, sizeof mode, ", no parameter of 64 KiB or more to release");
        } else {
            snprintf(mode, sizeof mode, ", %" PRId32 " parameter%s (%.1f MiB) released after their reads when mapped", released,
                     released == 1 ? "" : "s", (double)released_bytes / (1024.0 * 1024.0));
        }
        printf("bench @%s: %d timed call%s after %d warm-up call%s, %d thread%s%s\n", fn->name, n, n == 1 ? "" : "s", o->warmup,
               o->warmup == 1 ? "" : "s", threads, threads == 1 ? "" : "s", mode);
        printf("median %.3f ms, min %.3f ms, max %.3f ms (mean %.3f ms; CPU time median %.3f ms)\n", median, min, max, mean, cpu_median);
        printf("peak RSS %.1f MiB\n", rss);
        if (has_loss(fn)) printf("loss: %.9g\n", loss);
    }
    if (o->profile) print_profile(fn, rt, n, o->profile_rows < 0 ? PROFILE_ROWS : o->profile_rows, o->json ? stderr : stdout);
    status = EXIT_OK;
done:
    if (status != EXIT_OK) fail(&err);
    free(times);
    gr_runtime_destroy(rt);
    gr_binding_free(binding);
    for (int i = 0; i < MAX_INPUTS; i++) gr_safetensors_close(files[i]);
    return status;
}

int main(int argc, char **argv) {
    const char *program_name = argc > 0 && argv[0] != NULL ? argv[0] : "model";
    if (argc < 2) {
        print_help(stderr, program_name);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
        print_help(stdout, program_name);
        return EXIT_OK;
    }
    bool is_generate = strcmp(command, "generate") == 0, is_eval = strcmp(command, "eval") == 0;
    if (strcmp(command, "train") == 0 || is_generate || is_eval) {
        gr_error err;
        gr_program *program = gr_program_load(granule_manifest, granule_entries, &err);
        if (program == NULL) return fail(&err);
        int status = is_generate || is_eval ? generate_command(program, program_name, is_eval, argc - 2, argv + 2, stdout, stderr)
                                            : train_command(program, program_name, argc - 2, argv + 2, stdout, stderr);
        gr_program_free(program);
        if (fflush(stdout) != 0 && status == EXIT_OK) {
            fprintf(stderr, "error: cannot write to standard output\n");
            status = EXIT_ERROR;
        }
        return status;
    }
    bool is_info = strcmp(command, "info") == 0;
    bool is_bench = strcmp(command, "bench") == 0;
    if (!is_info && !is_bench && strcmp(command, "run") != 0 && strcmp(command, "step") != 0) {
        return command_usage_error(stderr, program_name, NULL, "unknown command '%s' (commands: run, step, bench, train, generate, eval, info)", command);
    }
    options o = {.steps = -1, .warmup = -1, .profile_rows = -1};
    if (is_info) {
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                print_help(stdout, program_name);
                return EXIT_OK;
            }
            return command_usage_error(stderr, program_name, NULL, "info takes no arguments, got '%s'", argv[i]);
        }
    } else {
        int parsed = parse_options(program_name, command, argc - 2, argv + 2, &o);
        if (parsed < 0) {
            print_help(stdout, program_name);
            return EXIT_OK;
        }
        if (parsed != EXIT_OK) return parsed;
    }

    gr_error err;
    gr_program *program = gr_program_load(granule_manifest, granule_entries, &err);
    if (program == NULL) return fail(&err);
    int status;
    if (is_info) {
        status = command_info(program);
    } else if (strcmp(command, "run") == 0 || (is_bench && o.function != NULL)) {
        const gr_function *fn = gr_program_find(program, o.function);
        if (fn == NULL) {
            char names[1024] = "";
            size_t used = 0;
            for (int32_t f = 0; f < gr_program_function_count(program) && used < sizeof names; f++) {
                int n = snprintf(names + used, sizeof names - used, "%s%s", f > 0 ? ", " : "", gr_program_function(program, f)->name);
                if (n > 0) used += (size_t)n;
            }
            fprintf(stderr, "error: the program has no function '%s' (functions: %s)\n", o.function, names);
            status = EXIT_ERROR;
        } else if (is_bench) {
            status = bench(fn, &o);
        } else {
            status = execute(fn, o.inputs, o.input_count, &o, false);
        }
    } else {
        const gr_function *fn = gr_program_step_function(program);
        if (fn == NULL) {
            fprintf(stderr, "error: the program has no step function (its manifest names none)%s\n",
                    is_bench ? "; name one with --function NAME" : "");
            status = EXIT_ERROR;
        } else if (is_bench) {
            status = bench(fn, &o);
        } else {
            const char *paths[2] = {o.weights, o.batch};
            status = execute(fn, paths, 2, &o, true);
        }
    }
    gr_program_free(program);
    if (fflush(stdout) != 0 && status == EXIT_OK) {
        fprintf(stderr, "error: cannot write to standard output\n");
        status = EXIT_ERROR;
    }
    return status;
}
