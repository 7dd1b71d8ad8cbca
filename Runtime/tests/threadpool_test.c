/* threadpool_test.c: gr_parallel_for and the runtime's creation. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sum_kernel(int64_t begin, int64_t end, void *const *ctx) {
    const int64_t *values = ctx[0];
    _Atomic int64_t *total = ctx[1];
    int64_t sum = 0;
    for (int64_t i = begin; i < end; i++) sum += values[i];
    atomic_fetch_add(total, sum);
}

static void test_sums_over_ten_million_equal_serial(void) {
    int64_t n = 10 * 1000 * 1000;
    int64_t *values = malloc((size_t)n * sizeof *values);
    uint64_t state = 88172645463325252u;
    int64_t serial = 0;
    for (int64_t i = 0; i < n; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        values[i] = (int64_t)(state % 2000001) - 1000000;
        serial += values[i];
    }
    const int threads[] = {1, 2, 3, 4, 8};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        gr_runtime *rt = gr_runtime_create(threads[t]);
        CHECK(rt != NULL && gr_runtime_threads(rt) == threads[t]);
        _Atomic int64_t total = 0;
        void *ctx[2] = {values, (void *)&total};
        gr_parallel_for(rt, sum_kernel, n, ctx);
        CHECK_EQ(atomic_load(&total), serial);
        gr_runtime_destroy(rt);
    }
    free(values);
}

/* Records every chunk: marks its items and counts them. */
typedef struct coverage {
    _Atomic int *visits;
    _Atomic int chunks;
    int64_t begins[64], ends[64];
} coverage;

static void coverage_kernel(int64_t begin, int64_t end, void *const *ctx) {
    coverage *c = ctx[0];
    int k = atomic_fetch_add(&c->chunks, 1);
    if (k < 64) {
        c->begins[k] = begin;
        c->ends[k] = end;
    }
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&c->visits[i], 1);
}

static void test_every_item_once_in_contiguous_chunks(void) {
    const int64_t counts[] = {0, 1, 2, 3, 5, 7, 8, 9, 1000, 100003};
    const int threads[] = {1, 2, 3, 4, 8};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        gr_runtime *rt = gr_runtime_create(threads[t]);
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            int64_t n = counts[c];
            coverage cov;
            memset(&cov, 0, sizeof cov);
            cov.visits = calloc((size_t)n + 1, sizeof *cov.visits);
            void *ctx[1] = {&cov};
            gr_parallel_for(rt, coverage_kernel, n, ctx);
            int64_t wrong = 0;
            for (int64_t i = 0; i < n; i++) wrong += atomic_load(&cov.visits[i]) != 1;
            CHECK_EQ(wrong, 0);
            int chunks = atomic_load(&cov.chunks);
            int64_t expected = n == 0 ? 0 : n == 1 ? 1 : (n < threads[t] ? n : threads[t]);
            CHECK_EQ(chunks, expected);
            /* Chunk sizes differ by at most one (the split depends only on count and threads). */
            int64_t smallest = INT64_MAX, largest = 0;
            for (int k = 0; k < chunks && k < 64; k++) {
                int64_t size = cov.ends[k] - cov.begins[k];
                smallest = size < smallest ? size : smallest;
                largest = size > largest ? size : largest;
            }
            if (chunks > 0) CHECK(largest - smallest <= 1);
            free(cov.visits);
        }
        gr_runtime_destroy(rt);
    }
}

/* Sleeps 50 ms per chunk and records which thread ran it. */
static void sleepy_kernel(int64_t begin, int64_t end, void *const *ctx) {
    pthread_t *threads = ctx[0];
    for (int64_t i = begin; i < end; i++) threads[i] = pthread_self();
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

static void test_chunks_run_concurrently(void) {
    gr_runtime *rt = gr_runtime_create(4);
    pthread_t threads[4];
    void *ctx[1] = {threads};
    double start = test_now();
    gr_parallel_for(rt, sleepy_kernel, 4, ctx);
    double elapsed = test_now() - start;
    printf("       4 chunks of 50 ms on 4 threads: %.0f ms\n", elapsed * 1e3);
    CHECK(elapsed < 0.15); /* one after another would take 200 ms */
    int distinct = 0;
    for (int i = 0; i < 4; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= pthread_equal(threads[i], threads[j]) != 0;
        distinct += !seen;
    }
    CHECK_EQ(distinct, 4);
    gr_runtime_destroy(rt);
}

static void count_kernel(int64_t begin, int64_t end, void *const *ctx) {
    atomic_fetch_add((_Atomic int64_t *)ctx[0], end - begin);
}

static void test_many_small_jobs(void) {
    /* 2 threads spin between jobs on a machine with 2 or more CPUs; 4 or more sleep on this one. */
    const int threads[] = {2, 4, 8};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        gr_runtime *rt = gr_runtime_create(threads[t]);
        _Atomic int64_t total = 0;
        void *ctx[1] = {(void *)&total};
        int64_t expected = 0;
        double start = test_now();
        int jobs = 100000;
        for (int j = 0; j < jobs; j++) {
            int64_t n = 2 + j % 7;
            gr_parallel_for(rt, count_kernel, n, ctx);
            expected += n;
        }
        double seconds = test_now() - start;
        CHECK_EQ(atomic_load(&total), expected);
        printf("       %d jobs on %d threads: %.2f us per job\n", jobs, threads[t], seconds / jobs * 1e6);
        gr_runtime_destroy(rt);
    }
}

/* Marks its rows, each exactly once, in a per-job array. */
static void mark_kernel(int64_t begin, int64_t end, void *const *ctx) {
    _Atomic int *marks = ctx[0];
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&marks[i], 1);
}

static void test_jobs_after_spinning_and_after_sleeping(void) {
    /* Gaps shorter and longer than the spin: every job is run once, whole, whether the workers
     * caught it spinning or had to be woken, and no worker runs a stale job's kernel. */
    gr_runtime *rt = gr_runtime_create(2);
    enum { rows = 64 };
    int64_t wrong = 0;
    for (int j = 0; j < 400; j++) {
        _Atomic int marks[rows];
        for (int i = 0; i < rows; i++) atomic_init(&marks[i], 0);
        void *ctx[1] = {marks};
        gr_parallel_for(rt, mark_kernel, 1 + j % rows, ctx);
        for (int i = 0; i < rows; i++) wrong += atomic_load(&marks[i]) != (i < 1 + j % rows);
        if (j % 50 == 49) {
            struct timespec pause = {0, 2 * 1000 * 1000}; /* 2 ms: every worker is asleep */
            nanosleep(&pause, NULL);
        } else if (j % 7 == 0) {
            struct timespec pause = {0, 20 * 1000}; /* within the spin */
            nanosleep(&pause, NULL);
        }
    }
    CHECK_EQ(wrong, 0);
    gr_runtime_destroy(rt);
}

static void record_thread(int64_t begin, int64_t end, void *const *ctx) {
    pthread_t *where = ctx[0];
    int64_t *calls = ctx[1];
    *where = pthread_self();
    calls[0]++;
    calls[1] = begin;
    calls[2] = end;
}

static void test_small_counts_run_directly(void) {
    gr_runtime *rt = gr_runtime_create(4);
    pthread_t where;
    int64_t calls[3] = {0, -1, -1};
    void *ctx[2] = {&where, calls};
    gr_parallel_for(rt, record_thread, 0, ctx);
    CHECK_EQ(calls[0], 0);
    gr_parallel_for(rt, record_thread, -3, ctx);
    CHECK_EQ(calls[0], 0);
    gr_parallel_for(rt, record_thread, 1, ctx);
    CHECK_EQ(calls[0], 1);
    CHECK(calls[1] == 0 && calls[2] == 1);
    CHECK(pthread_equal(where, pthread_self()));
    gr_runtime_set_parallel_threshold(rt, 100);
    CHECK_EQ(gr_runtime_parallel_threshold(rt), 100);
    gr_parallel_for(rt, record_thread, 100, ctx);
    CHECK_EQ(calls[0], 2);
    CHECK(calls[1] == 0 && calls[2] == 100);
    CHECK(pthread_equal(where, pthread_self()));
    gr_runtime_destroy(rt);
}

static void inner_kernel(int64_t begin, int64_t end, void *const *ctx) {
    atomic_fetch_add((_Atomic int64_t *)ctx[0], end - begin);
}

static void outer_kernel(int64_t begin, int64_t end, void *const *ctx) {
    gr_runtime *rt = ctx[1];
    for (int64_t i = begin; i < end; i++) gr_parallel_for(rt, inner_kernel, 10, ctx);
}

static void test_nested_calls_run_inline(void) {
    gr_runtime *rt = gr_runtime_create(3);
    _Atomic int64_t total = 0;
    void *ctx[2] = {(void *)&total, rt};
    gr_parallel_for(rt, outer_kernel, 50, ctx);
    CHECK_EQ(atomic_load(&total), 500);
    gr_runtime_destroy(rt);
}

static void test_idle_workers_sleep(void) {
    gr_runtime *rt = gr_runtime_create(4);
    _Atomic int64_t total = 0;
    void *ctx[1] = {(void *)&total};
    gr_parallel_for(rt, count_kernel, 1000, ctx); /* wake them once */
    clock_t before = clock();
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    double cpu = (double)(clock() - before) / CLOCKS_PER_SEC;
    printf("       CPU time of the process over 0.3 s idle with 3 workers: %.4f s\n", cpu);
    CHECK(cpu < 0.05);
    gr_runtime_destroy(rt);
}

static void test_thread_count_sources(void) {
    gr_error err;
    setenv("GRANULE_THREADS", "3", 1);
    gr_runtime *rt = gr_runtime_create_checked(0, &err);
    CHECK(rt != NULL && gr_runtime_threads(rt) == 3);
    gr_runtime_destroy(rt);
    rt = gr_runtime_create_checked(2, &err); /* an explicit count wins */
    CHECK(rt != NULL && gr_runtime_threads(rt) == 2);
    gr_runtime_destroy(rt);
    setenv("GRANULE_THREADS", "two", 1);
    CHECK(gr_runtime_create_checked(0, &err) == NULL);
    CHECK_STR_EQ(err.message, "GRANULE_THREADS must be an integer in [1, 1024], got 'two'");
    setenv("GRANULE_THREADS", "0", 1);
    CHECK(gr_runtime_create(0) == NULL);
    setenv("GRANULE_THREADS", "99999999999999999999", 1);
    CHECK(gr_runtime_create(0) == NULL);
    unsetenv("GRANULE_THREADS");
    rt = gr_runtime_create(0);
    CHECK(rt != NULL && gr_runtime_threads(rt) >= 1);
    gr_runtime_destroy(rt);
    CHECK(gr_runtime_create_checked(5000, &err) == NULL);
    CHECK_STR_EQ(err.message, "thread count 5000 is more than 1024");
    gr_runtime_destroy(NULL);
}

void suite_threadpool(void) {
    RUN(test_sums_over_ten_million_equal_serial);
    RUN(test_every_item_once_in_contiguous_chunks);
    RUN(test_chunks_run_concurrently);
    RUN(test_many_small_jobs);
    RUN(test_jobs_after_spinning_and_after_sleeping);
    RUN(test_small_counts_run_directly);
    RUN(test_nested_calls_run_inline);
    RUN(test_idle_workers_sleep);
    RUN(test_thread_count_sources);
}
