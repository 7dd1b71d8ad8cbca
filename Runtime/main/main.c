/*
 * main.c: the command line of every program Granule compiles.
 *
 *   MODEL run --function NAME --inputs A.safetensors [--inputs B.safetensors ...] --out OUT.safetensors [--threads N]
 *   MODEL step --weights W.safetensors --batch B.safetensors --out G.safetensors [--threads N]
 *   MODEL info
 *
 * Exit status: 0 on success, 1 on any error (one line "error: ..." on stderr naming the file,
 * tensor or field), 2 on a usage error.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* stat */
#endif

#include "granule_runtime.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Exported by the generated object. */
extern const char granule_manifest[];
extern gr_entry_fn const granule_entries[];

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

#define MAX_INPUTS 64

static void print_help(FILE *out, const char *program) {
    fprintf(out,
            "usage:\n"
            "  %s run --function NAME --inputs A.safetensors [--inputs B.safetensors ...] --out OUT.safetensors [--threads N]\n"
            "  %s step --weights W.safetensors --batch B.safetensors --out G.safetensors [--threads N]\n"
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
            "  info    list the functions with their parameters and results\n"
            "\n"
            "options:\n"
            "  --threads N   threads for the kernels (default: $GRANULE_THREADS, else every online CPU)\n"
            "  --help        this text\n"
            "  Options take their value as `--name VALUE` or `--name=VALUE`.\n"
            "\n"
            "exit status: 0 success, 1 error (one line `error: ...` on stderr), 2 usage error\n",
            program, program, program);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int usage_error(const char *program, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "error: ");
    vfprintf(stderr, format, args);
    fprintf(stderr, " (see %s --help)\n", program);
    va_end(args);
    return EXIT_USAGE;
}

/* Parsed options of run and step. */
typedef struct options {
    const char *function;
    const char *inputs[MAX_INPUTS];
    int input_count;
    const char *weights;
    const char *batch;
    const char *out;
    int threads;
} options;

/* Parses `--threads` strictly: an integer in [1, GR_MAX_THREADS]. */
static int parse_threads(const char *text, int *threads) {
    if (text[0] == '\0' || strlen(text) > 5) return -1;
    int value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') return -1;
        value = value * 10 + (*c - '0');
    }
    if (value < 1 || value > GR_MAX_THREADS) return -1;
    *threads = value;
    return 0;
}

/* Parses the options after a command; returns EXIT_OK, EXIT_USAGE, or -1 for --help. */
static int parse_options(const char *program, const char *command, int argc, char **argv, options *o) {
    int is_run = strcmp(command, "run") == 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
        if (strncmp(arg, "--", 2) != 0) return usage_error(program, "unexpected argument '%s'", arg);
        char name[64];
        const char *value = NULL;
        const char *equals = strchr(arg, '=');
        if (equals != NULL) {
            snprintf(name, sizeof name, "%.*s", (int)(equals - arg), arg);
            value = equals + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        const char *const known_run[] = {"--function", "--inputs", "--out", "--threads", NULL};
        const char *const known_step[] = {"--weights", "--batch", "--out", "--threads", NULL};
        int known = 0;
        for (const char *const *k = is_run ? known_run : known_step; *k != NULL; k++) known |= strcmp(name, *k) == 0;
        if (!known) return usage_error(program, "%s: unknown option '%s'", command, name);
        if (value == NULL) {
            if (i + 1 >= argc) return usage_error(program, "option '%s' needs a value", name);
            value = argv[++i];
        }
        if (strcmp(name, "--inputs") == 0) {
            if (o->input_count == MAX_INPUTS) return usage_error(program, "too many --inputs (at most %d)", MAX_INPUTS);
            o->inputs[o->input_count++] = value;
            continue;
        }
        const char **slot = strcmp(name, "--function") == 0 ? &o->function
                            : strcmp(name, "--weights") == 0 ? &o->weights
                            : strcmp(name, "--batch") == 0   ? &o->batch
                            : strcmp(name, "--out") == 0     ? &o->out
                                                             : NULL;
        if (slot == NULL) { /* --threads */
            if (parse_threads(value, &o->threads) != 0) {
                return usage_error(program, "--threads must be an integer in [1, %d], got '%s'", GR_MAX_THREADS, value);
            }
            continue;
        }
        if (*slot != NULL) return usage_error(program, "option '%s' is given more than once", name);
        *slot = value;
    }
    if (is_run) {
        if (o->function == NULL) return usage_error(program, "run needs --function NAME");
        if (o->input_count == 0) return usage_error(program, "run needs --inputs FILE");
    } else {
        if (o->weights == NULL) return usage_error(program, "step needs --weights FILE");
        if (o->batch == NULL) return usage_error(program, "step needs --batch FILE");
    }
    if (o->out == NULL) return usage_error(program, "%s needs --out FILE", command);
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
            if (spec->writes >= 0) printf(" writes %%%s", fn->params[spec->writes].name);
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

/* Opens the files, binds and calls the function, writes the results. */
static int execute(const gr_function *fn, const char *const *paths, int path_count, const char *out, int threads, bool print_loss) {
    gr_error err;
    gr_safetensors *files[MAX_INPUTS] = {0};
    gr_runtime *rt = NULL;
    gr_binding *binding = NULL;
    int status = EXIT_ERROR;
    int file_count = 0;
    for (int i = 0; i < path_count; i++) {
        if (same_file_given_before(paths, i)) continue; /* e.g. --weights W --batch W */
        files[file_count] = gr_safetensors_open(paths[i], 0, &err);
        if (files[file_count] == NULL) goto done;
        file_count++;
    }
    binding = gr_binding_create(fn, files, (size_t)file_count, 0, &err);
    if (binding == NULL) goto done;
    rt = gr_runtime_create_checked(threads, &err);
    if (rt == NULL) goto done;
    if (gr_binding_call(rt, binding, &err) != 0) goto done;
    if (gr_binding_write_results(binding, out, &err) != 0) goto done;
    if (print_loss) {
        const gr_value_spec *first = fn->result_count > 0 ? &fn->results[0] : NULL;
        if (first != NULL && first->count == 1 && first->rank == 0 && (first->dtype == GR_F32 || first->dtype == GR_F64)) {
            const void *loss = gr_binding_result(binding, 0);
            printf("loss: %.9g\n", first->dtype == GR_F32 ? (double)*(const float *)loss : *(const double *)loss);
        }
    } else {
        for (int32_t r = 0; r < fn->result_count; r++) print_summary(&fn->results[r], gr_binding_result(binding, r));
    }
    printf("wrote %" PRId32 " result%s to %s\n", fn->result_count, fn->result_count == 1 ? "" : "s", out);
    status = EXIT_OK;
done:
    if (status != EXIT_OK) fail(&err);
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
    bool is_info = strcmp(command, "info") == 0;
    if (!is_info && strcmp(command, "run") != 0 && strcmp(command, "step") != 0) {
        return usage_error(program_name, "unknown command '%s' (commands: run, step, info)", command);
    }
    options o = {0};
    if (is_info) {
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                print_help(stdout, program_name);
                return EXIT_OK;
            }
            return usage_error(program_name, "info takes no arguments, got '%s'", argv[i]);
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
    } else if (strcmp(command, "run") == 0) {
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
        } else {
            status = execute(fn, o.inputs, o.input_count, o.out, o.threads, false);
        }
    } else {
        const gr_function *fn = gr_program_step_function(program);
        if (fn == NULL) {
            fprintf(stderr, "error: the program has no step function (its manifest names none)\n");
            status = EXIT_ERROR;
        } else {
            const char *paths[2] = {o.weights, o.batch};
            status = execute(fn, paths, 2, o.out, o.threads, true);
        }
    }
    gr_program_free(program);
    if (fflush(stdout) != 0 && status == EXIT_OK) {
        fprintf(stderr, "error: cannot write to standard output\n");
        status = EXIT_ERROR;
    }
    return status;
}
