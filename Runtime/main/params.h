/*
 * params.h: what the commands of compiled programs (main.c, train.c, generate.c) share: loading a
 * function's parameters from safetensors files, usage errors, and writing files atomically.
 */
#ifndef GRANULE_PARAMS_H
#define GRANULE_PARAMS_H

#include "granule_runtime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Points parameter `i` of `fn` at its tensor (same name) in `file`: *buffer is the file's mapped
 * data when `mapped` allows it and the dtype and alignment fit, else an aligned copy (F16/BF16
 * widened) that is also stored in *owned for the caller to gr_aligned_free. Errors name the file,
 * the tensor, the role text ("frozen", "trainable", ...) and expected vs. got; a float tensor with
 * a NaN or infinity is an error too (naming the first such element).
 */
int param_load(const gr_function *fn, int32_t i, gr_safetensors *file, const char *role_text, bool mapped, void **buffer, void **owned,
               gr_error *err);

/** Prints "error: <message> (see PROGRAM[ COMMAND] --help)" to `err` and returns 2 (a usage error);
 *  `command` may be NULL for the program's own options. */
int command_usage_error(FILE *err, const char *program, const char *command, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/** Writes `length` bytes to `path` through a temporary file in the same directory (fsynced,
 *  then renamed over `path`); on failure the temporary file is removed and `path` is untouched. */
int write_file_atomically(const char *path, const char *bytes, size_t length, gr_error *err);

/* The first element of a float tensor (`count` elements of f32 or f64 at `data`) that is NaN or
 * infinite, with its value in *value; -1 when there is none (or the dtype is not a float). */
int64_t first_nonfinite(gr_dtype dtype, const void *data, int64_t count, double *value);

/* Peak resident set size of this process so far, in MiB (NaN if unknown). */
double peak_rss_mib(void);

/* Checks, before any work, that `path` (the value of `option`) can be written: a regular file or
 * nothing yet (see gr_output_target), in an existing directory this process may write, and not the
 * same file as any of the `input_count` paths in `inputs` (each the value of option `input_options[i]`):
 * hours of training must not end in "cannot create ck.safetensors.tmp-...", nor a checkpoint
 * replace the weights it was trained from. NULL entries in `inputs` are skipped. */
int check_output_path(const char *option, const char *path, const char *const *input_options, const char *const *inputs,
                      int input_count, gr_error *err);

#ifdef __cplusplus
}
#endif

#endif
