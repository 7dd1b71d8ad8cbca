/*
 * params.h: what the commands of compiled programs (train.c, generate.c) share: loading a
 * function's parameters from safetensors files, and writing files atomically.
 */
#ifndef GRANULE_PARAMS_H
#define GRANULE_PARAMS_H

#include "granule_runtime.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The file dtype that holds an IR dtype exactly, indexed by gr_dtype. */
extern const gr_st_dtype param_file_dtype[];

/** Whether a file tensor of dtype `got` can feed a parameter of dtype `want` (f32 also takes
 *  F16 and BF16, widened). */
bool param_dtype_feeds(gr_dtype want, gr_st_dtype got);

/** "[2, 3]" (always NUL-terminated). */
void param_format_shape(char *out, size_t size, const int64_t *shape, int32_t rank);

/**
 * Points parameter `i` of `fn` at its tensor (same name) in `file`: *buffer is the file's mapped
 * data when `mapped` allows it and the dtype and alignment fit, else an aligned copy (F16/BF16
 * widened) that is also stored in *owned for the caller to gr_aligned_free. Errors name the file,
 * the tensor, the role text ("frozen", "trainable", ...) and expected vs. got.
 */
int param_load(const gr_function *fn, int32_t i, gr_safetensors *file, const char *role_text, bool mapped, void **buffer, void **owned,
               gr_error *err);

/** Writes `length` bytes to `path` through a temporary file in the same directory (fsynced,
 *  then renamed over `path`); on failure the temporary file is removed and `path` is untouched. */
int write_file_atomically(const char *path, const char *bytes, size_t length, gr_error *err);

#ifdef __cplusplus
}
#endif

#endif
