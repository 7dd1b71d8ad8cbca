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
#include <stdio.h>
#include <string.h>

const gr_st_dtype param_file_dtype[] = {GR_ST_F32, GR_ST_F64, GR_ST_I32, GR_ST_I64, GR_ST_BOOL};

bool param_dtype_feeds(gr_dtype want, gr_st_dtype got) {
    switch (want) {
    case GR_F32: return got == GR_ST_F32 || got == GR_ST_F16 || got == GR_ST_BF16;
    case GR_F64: return got == GR_ST_F64;
    case GR_I32: return got == GR_ST_I32;
    case GR_I64: return got == GR_ST_I64;
    case GR_I1: return got == GR_ST_BOOL;
    }
    return false;
}

void param_format_shape(char *out, size_t size, const int64_t *shape, int32_t rank) {
    size_t used = 0;
    used += (size_t)snprintf(out, size, "[");
    for (int32_t i = 0; i < rank && used < size; i++) {
        used += (size_t)snprintf(out + used, size - used, "%s%" PRId64, i > 0 ? ", " : "", shape[i]);
    }
    if (used < size) snprintf(out + used, size - used, "]");
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
    if (!param_dtype_feeds(spec->dtype, tensor->dtype) || !shape_ok) {
        char got[256];
        param_format_shape(got, sizeof got, tensor->shape, tensor->rank);
        return gr_fail(err, "%s: tensor '%s': the %s parameter of '%s' needs %s, got %s %s", gr_safetensors_path(file), spec->name,
                    role_text, fn->name, type, gr_st_dtype_name(tensor->dtype), got);
    }
    bool exact = tensor->dtype == param_file_dtype[spec->dtype];
    if (mapped && exact && (uintptr_t)tensor->data % gr_dtype_size(spec->dtype) == 0) {
        *buffer = (void *)(uintptr_t)tensor->data;
        return 0;
    }
    void *block = gr_aligned_alloc((size_t)spec->bytes);
    if (block == NULL) {
        return gr_fail(err, "%s: tensor '%s': out of memory (%" PRId64 " bytes)", gr_safetensors_path(file), spec->name, spec->bytes);
    }
    *owned = *buffer = block;
    if (exact) {
        if (spec->bytes > 0) memcpy(block, tensor->data, (size_t)spec->bytes);
        return 0;
    }
    return gr_st_tensor_read_f32(file, tensor, block, err);
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
