/*
 * generate.h: the `generate` and `eval` commands of compiled programs (generate.c).
 */
#ifndef GRANULE_GENERATE_H
#define GRANULE_GENERATE_H

#include "granule_runtime.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * `MODEL generate ...` / `MODEL eval ...` (argv holds the options after the command word;
 * `evaluate` selects eval). Returns the exit status: 0 done, 1 error, 2 usage error. The summary
 * goes to `out`, progress and `error: ...` lines to `err`.
 */
int generate_command(const gr_program *program, const char *program_name, int evaluate, int argc, char **argv, FILE *out, FILE *err);

/** The usage lines of generate and eval for the program's --help. */
void generate_print_usage(FILE *out, const char *program_name);

#ifdef __cplusplus
}
#endif

#endif
