/*
 * options.h: splitting `--name=value` / `--name value` command-line options, shared by the
 * commands of compiled programs (main.c, train.c).
 */
#ifndef GRANULE_OPTIONS_H
#define GRANULE_OPTIONS_H

#include <stdio.h>
#include <string.h>

/* Copies the option name of `arg` (up to any '=') into `name`; returns the inline value after
 * '=' or NULL when the value is the next argument. */
static inline const char *gr_split_option(const char *arg, char *name, size_t capacity) {
    const char *equals = strchr(arg, '=');
    if (equals != NULL) {
        snprintf(name, capacity, "%.*s", (int)(equals - arg), arg);
        return equals + 1;
    }
    snprintf(name, capacity, "%s", arg);
    return NULL;
}

#endif
