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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
    return gr_param_data(spec, file, tensor, mapped, buffer, owned, err);
}

/* Writes `length` bytes to `path` through a temporary file in the same directory (fsynced, then
 * renamed over `path`); on failure the temporary file is removed and `path` is untouched. */
int write_file_atomically(const char *path, const char *bytes, size_t length, gr_error *err) {
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
