/*
 * params.c: parameters of compiled functions from safetensors files (params.h).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* fsync */
#endif

#include "params.h"

#include "../src/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

int command_usage_error(FILE *err, const char *program, const char *command, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(err, "error: ");
    vfprintf(err, format, args);
    fprintf(err, " (see %s%s%s --help)\n", program, command != NULL ? " " : "", command != NULL ? command : "");
    va_end(args);
    return 2;
}

int param_load(const gr_function *fn, int32_t i, gr_safetensors *file, const char *role_text, bool mapped, void **buffer, void **owned,
               gr_error *err) {
    const gr_value_spec *spec = &fn->params[i];
    char type[256];
    gr_value_spec_type(spec, type, sizeof type);
    const gr_st_tensor *tensor = gr_safetensors_find(file, spec->name);
    if (tensor == NULL) {
        return gr_fail(err, "%s: no tensor '%s' (the %s parameter %s of '%s')", gr_safetensors_path(file), spec->name, role_text, type,
                    fn->name);
    }
    bool shape_ok = tensor->rank == spec->rank;
    for (int32_t d = 0; shape_ok && d < spec->rank; d++) shape_ok = tensor->shape[d] == spec->shape[d];
    if (!gr_st_dtype_feeds(spec->dtype, tensor->dtype) || !shape_ok) {
        char got[256];
        gr_text text;
        gr_text_init(&text, got, sizeof got);
        gr_text_append_shape(&text, tensor->shape, tensor->rank);
        return gr_fail(err, "%s: tensor '%s': the %s parameter of '%s' needs %s, got %s %s", gr_safetensors_path(file), spec->name,
                    role_text, fn->name, type, gr_st_dtype_name(tensor->dtype), got);
    }
    if (gr_param_data(spec, file, tensor, mapped, buffer, owned, err) != 0) return -1;
    /* A NaN or infinity among the weights makes every output NaN, which generation turns into the
     * same token everywhere and evaluation into a silent 0%: name it here instead. */
    double value = 0;
    int64_t bad = first_nonfinite(spec->dtype, *buffer, spec->count, &value);
    if (bad >= 0) {
        return gr_fail(err, "%s: tensor '%s' (the %s parameter of '%s') holds %s at element %" PRId64, gr_safetensors_path(file),
                       spec->name, role_text, fn->name, isnan(value) ? "NaN" : "an infinity", bad);
    }
    return 0;
}

double peak_rss_mib(void) {
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) return NAN;
    return (double)usage.ru_maxrss / 1024.0; /* Linux reports ru_maxrss in KiB */
}

int64_t first_nonfinite(gr_dtype dtype, const void *data, int64_t count, double *value) {
    if (dtype == GR_F32) {
        const float *x = data;
        for (int64_t e = 0; e < count; e++) {
            if (!isfinite(x[e])) return *value = x[e], e;
        }
    } else if (dtype == GR_F64) {
        const double *x = data;
        for (int64_t e = 0; e < count; e++) {
            if (!isfinite(x[e])) return *value = x[e], e;
        }
    }
    return -1;
}

int check_output_path(const char *option, const char *path, const char *const *input_options, const char *const *inputs,
                      int input_count, gr_error *err) {
    char target[4096];
    if (gr_output_target(path, target, sizeof target, err) != 0) {
        gr_error_prefix(err, "%s ", option);
        return -1;
    }
    char directory[4096];
    const char *slash = strrchr(target, '/');
    if (slash == NULL) {
        snprintf(directory, sizeof directory, ".");
    } else {
        snprintf(directory, sizeof directory, "%.*s", slash == target ? 1 : (int)(slash - target), target);
    }
    struct stat info;
    if (stat(directory, &info) != 0) {
        if (errno == ENOENT) return gr_fail(err, "%s %s: the directory %s does not exist", option, path, directory);
        return gr_fail(err, "%s %s: cannot reach the directory %s: %s", option, path, directory, strerror(errno));
    }
    if (!S_ISDIR(info.st_mode)) return gr_fail(err, "%s %s: %s is not a directory", option, path, directory);
    if (access(directory, W_OK | X_OK) != 0) {
        return gr_fail(err, "%s %s: cannot write in the directory %s: %s", option, path, directory, strerror(errno));
    }
    struct stat output;
    if (stat(target, &output) != 0) return 0; /* a new file */
    for (int i = 0; i < input_count; i++) {
        if (inputs[i] == NULL) continue;
        if (stat(inputs[i], &info) == 0 && info.st_dev == output.st_dev && info.st_ino == output.st_ino) {
            return gr_fail(err, "%s %s is the file given as %s: writing it would replace that input", option, path, input_options[i]);
        }
    }
    return 0;
}

/* Writes `length` bytes to `path` through a temporary file in the same directory (fsynced, then
 * renamed over `path`); on failure the temporary file is removed and `path` is untouched. */
int write_file_atomically(const char *requested, const char *bytes, size_t length, gr_error *err) {
    char path[4096];
    if (gr_output_target(requested, path, sizeof path, err) != 0) return -1;
    char temporary[4096 + 64];
    int fd = -1;
    for (unsigned attempt = 0; attempt < 1000; attempt++) {
        snprintf(temporary, sizeof temporary, "%s.tmp-%ld-%u", path, (long)getpid(), attempt);
        fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0 || errno != EEXIST) break;
    }
    if (fd < 0) return gr_fail(err, "%s: cannot create %s: %s", path, temporary, strerror(errno));
    const char *problem = NULL;
    size_t done = 0;
    while (problem == NULL && done < length) {
        ssize_t n = write(fd, bytes + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) problem = "cannot write";
        else done += (size_t)n;
    }
    if (problem == NULL && fsync(fd) != 0) problem = "cannot flush";
    int saved = errno;
    if (close(fd) != 0 && problem == NULL) {
        problem = "cannot close";
        saved = errno;
    }
    if (problem == NULL && rename(temporary, path) != 0) {
        problem = "cannot rename the temporary file";
        saved = errno;
    }
    if (problem != NULL) {
        unlink(temporary);
        return gr_fail(err, "%s: %s %s: %s", path, problem, temporary, strerror(saved));
    }
    return 0;
}
