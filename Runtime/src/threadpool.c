/*
 * threadpool.c: gr_parallel_for over a fixed set of pthreads.
 *
 * 1. gr_parallel_for publishes a job (kernel, ctx, count, number of chunks) under the pool's lock,
 *    bumps the job generation and wakes the workers with a broadcast.
 * 2. Workers and the caller claim chunk indices with an atomic counter; chunk c covers
 *    [c·q + min(c, r), (c+1)·q + min(c+1, r)) with q, r = count / chunks, count % chunks, so the
 *    split depends only on count and the thread count, never on which thread runs what.
 * 3. The caller waits on `done` until every chunk is finished, closes the job and waits until every
 *    worker that joined it has left, so no worker can run a stale kernel on the next job's chunks.
 * 4. Between jobs workers sleep on the `wake` condition variable: nothing spins while OpenBLAS
 *    (with its own threads) runs a GEMM between two kernels.
 *
 * Not done: nesting. A gr_parallel_for issued from inside a kernel (or while another thread owns
 * the pool) runs its kernel directly on the calling thread, which is always correct.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void chunk_bounds(int64_t count, int64_t chunks, int64_t c, int64_t *begin, int64_t *end) {
    int64_t q = count / chunks, r = count % chunks;
    *begin = c * q + (c < r ? c : r);
    *end = *begin + q + (c < r ? 1 : 0);
}

/* Claims and runs chunks of the job until none is left; returns how many it ran. */
static int64_t run_chunks(gr_pool *pool, gr_kernel_fn fn, void *const *ctx, int64_t count, int64_t chunks) {
    int64_t ran = 0;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&pool->next_chunk, 1, memory_order_relaxed);
        if (c >= chunks) return ran;
        int64_t begin, end;
        chunk_bounds(count, chunks, c, &begin, &end);
        fn(begin, end, ctx);
        ran++;
    }
}

static void *worker_main(void *argument) {
    gr_pool *pool = argument;
    pthread_mutex_lock(&pool->lock);
    uint64_t seen = 0; /* the generation before the first job: a worker that starts late joins it */
    for (;;) {
        while (!pool->stopping && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stopping) break;
        seen = pool->generation;
        if (!pool->open) continue; /* woke after the job had ended */
        pool->active++;
        gr_kernel_fn fn = pool->fn;
        void *const *ctx = pool->ctx;
        int64_t count = pool->count, chunks = pool->chunks;
        pthread_mutex_unlock(&pool->lock);

        int64_t ran = run_chunks(pool, fn, ctx, count, chunks);

        pthread_mutex_lock(&pool->lock);
        pool->active--;
        pool->finished += ran;
        pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int gr_pool_start(gr_pool *pool, int workers, gr_error *err) {
    memset(pool, 0, sizeof *pool);
    atomic_init(&pool->next_chunk, 0);
    if (pthread_mutex_init(&pool->lock, NULL) != 0) return gr_fail(err, "cannot create the thread pool's mutex");
    if (pthread_cond_init(&pool->wake, NULL) != 0) {
        pthread_mutex_destroy(&pool->lock);
        return gr_fail(err, "cannot create the thread pool's condition variable");
    }
    if (pthread_cond_init(&pool->done, NULL) != 0) {
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->lock);
        return gr_fail(err, "cannot create the thread pool's condition variable");
    }
    if (workers <= 0) return 0;
    pool->workers = calloc((size_t)workers, sizeof *pool->workers);
    if (pool->workers == NULL) {
        gr_pool_stop(pool);
        return gr_fail(err, "out of memory creating %d worker threads", workers);
    }
    /* Workers block every signal: SIGINT and SIGTERM go to the main thread. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int failure = 0;
    for (int i = 0; i < workers; i++) {
        failure = pthread_create(&pool->workers[i], NULL, worker_main, pool);
        if (failure != 0) break;
        pool->worker_count++;
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (failure != 0) {
        int started = pool->worker_count;
        gr_pool_stop(pool);
        return gr_fail(err, "cannot start worker thread %d of %d: %s", started + 1, workers, strerror(failure));
    }
    return 0;
}

void gr_pool_stop(gr_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->worker_count; i++) pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pool->workers = NULL;
    pool->worker_count = 0;
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
}

void gr_parallel_for(gr_runtime *rt, gr_kernel_fn fn, int64_t count, void *const *ctx) {
    if (count <= 0) return;
    gr_pool *pool = &rt->pool;
    if (count <= rt->parallel_threshold || pool->worker_count == 0) {
        fn(0, count, ctx);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    if (pool->busy) { /* nested or concurrent: run here */
        pthread_mutex_unlock(&pool->lock);
        fn(0, count, ctx);
        return;
    }
    int64_t threads = (int64_t)pool->worker_count + 1;
    int64_t chunks = count < threads ? count : threads;
    pool->busy = true;
    pool->open = true;
    pool->fn = fn;
    pool->ctx = ctx;
    pool->count = count;
    pool->chunks = chunks;
    pool->finished = 0;
    atomic_store_explicit(&pool->next_chunk, 0, memory_order_relaxed);
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    int64_t ran = run_chunks(pool, fn, ctx, count, chunks);

    pthread_mutex_lock(&pool->lock);
    pool->finished += ran;
    while (pool->finished < pool->chunks) pthread_cond_wait(&pool->done, &pool->lock);
    pool->open = false;
    while (pool->active > 0) pthread_cond_wait(&pool->done, &pool->lock);
    pool->busy = false;
    pthread_mutex_unlock(&pool->lock);
}
