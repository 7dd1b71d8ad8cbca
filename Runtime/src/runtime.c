/*
 * runtime.c: the gr_runtime context. It owns the thread pool and the run-time error; nothing in
 * the runtime lives outside it.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Parses GRANULE_THREADS strictly: decimal digits only, in [1, GR_MAX_THREADS]. */
static int threads_from_environment(int *threads, gr_error *err) {
    const char *text = getenv("GRANULE_THREADS");
    if (text == NULL || text[0] == '\0') return 0;
    long value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9' || value > GR_MAX_THREADS) {
            return gr_fail(err, "GRANULE_THREADS must be an integer in [1, %d], got '%s'", GR_MAX_THREADS, text);
        }
        value = value * 10 + (*c - '0');
    }
    if (value < 1 || value > GR_MAX_THREADS) {
        return gr_fail(err, "GRANULE_THREADS must be an integer in [1, %d], got '%s'", GR_MAX_THREADS, text);
    }
    *threads = (int)value;
    return 0;
}

gr_runtime *gr_runtime_create_checked(int threads, gr_error *err) {
    if (threads > GR_MAX_THREADS) {
        gr_fail(err, "thread count %d is more than %d", threads, GR_MAX_THREADS);
        return NULL;
    }
    if (threads <= 0) {
        threads = 0;
        if (threads_from_environment(&threads, err) != 0) return NULL;
        if (threads == 0) {
            long online = sysconf(_SC_NPROCESSORS_ONLN);
            threads = online < 1 ? 1 : online > GR_MAX_THREADS ? GR_MAX_THREADS : (int)online;
        }
    }
    gr_runtime *rt = calloc(1, sizeof *rt);
    if (rt == NULL) {
        gr_fail(err, "out of memory creating the runtime");
        return NULL;
    }
    rt->threads = threads;
    rt->parallel_threshold = 1;
    atomic_init(&rt->raised.state, 0);
    if (gr_pool_start(&rt->pool, threads - 1, err) != 0) {
        free(rt);
        return NULL;
    }
    return rt;
}

gr_runtime *gr_runtime_create(int threads) {
    return gr_runtime_create_checked(threads, NULL);
}

void gr_runtime_destroy(gr_runtime *rt) {
    if (rt == NULL) return;
    gr_pool_stop(&rt->pool);
    free(rt->profile_seconds);
    free(rt->profile_calls);
    free(rt);
}

/* ---- profiling ------------------------------------------------------------------------------------ */

static double monotonic_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int gr_runtime_profile_enable(gr_runtime *rt, int32_t steps, gr_error *err) {
    free(rt->profile_seconds);
    free(rt->profile_calls);
    rt->profile_seconds = calloc((size_t)steps + 1, sizeof *rt->profile_seconds);
    rt->profile_calls = calloc((size_t)steps + 1, sizeof *rt->profile_calls);
    rt->profile_steps = steps;
    rt->profile_current = -1;
    if (steps < 0 || rt->profile_seconds == NULL || rt->profile_calls == NULL) {
        free(rt->profile_seconds);
        free(rt->profile_calls);
        rt->profile_seconds = NULL;
        rt->profile_calls = NULL;
        rt->profile_steps = 0;
        return gr_fail(err, "profile: out of memory for %d steps", (int)steps);
    }
    return 0;
}

void gr_profile_step(gr_runtime *rt, int32_t step) {
    if (rt->profile_seconds == NULL) return;
    double now = monotonic_seconds();
    if (rt->profile_current >= 0 && rt->profile_current < rt->profile_steps) {
        rt->profile_seconds[rt->profile_current] += now - rt->profile_start;
        rt->profile_calls[rt->profile_current]++;
    }
    rt->profile_current = step;
    rt->profile_start = now;
}

double gr_runtime_profile_seconds(const gr_runtime *rt, int32_t step) {
    return rt->profile_seconds != NULL && step >= 0 && step < rt->profile_steps ? rt->profile_seconds[step] : 0;
}

int64_t gr_runtime_profile_calls(const gr_runtime *rt, int32_t step) {
    return rt->profile_calls != NULL && step >= 0 && step < rt->profile_steps ? rt->profile_calls[step] : 0;
}

int gr_runtime_threads(const gr_runtime *rt) {
    return rt->threads;
}

void gr_runtime_set_parallel_threshold(gr_runtime *rt, int64_t count) {
    rt->parallel_threshold = count < 1 ? 1 : count;
}

int64_t gr_runtime_parallel_threshold(const gr_runtime *rt) {
    return rt->parallel_threshold;
}
