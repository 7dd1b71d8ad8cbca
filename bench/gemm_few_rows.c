/*
 * gemm_few_rows.c: one core, C = A·Bᵀ for the few-row GEMM shapes of BART-base, timed with
 * OpenBLAS's cblas_sgemm and with the runtime's gr_sgemm_nt. Built and run by
 * bench/gemm_few_rows.py, which adds PyTorch's figures from the same run.
 *
 * Usage: gemm_few_rows M K N [M K N ...]   prints one JSON line per shape:
 *   {"m":40,"k":768,"n":384,"openblas_gflops":..,"granule_gflops":..,"max_abs_diff":..}
 * Each figure is the best of 5 rounds of enough calls for ~0.3 GFLOP per round.
 */
#define _POSIX_C_SOURCE 200809L
#include "granule_runtime.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *random_matrix(long count, unsigned *seed) {
    float *m = malloc((size_t)count * sizeof *m);
    for (long i = 0; i < count; i++) m[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
    return m;
}

int main(int argc, char **argv) {
    if (argc < 4 || (argc - 1) % 3 != 0) {
        fprintf(stderr, "usage: %s M K N [M K N ...]\n", argv[0]);
        return 2;
    }
    openblas_set_num_threads(1);
    unsigned seed = 1;
    for (int s = 1; s + 2 < argc; s += 3) {
        long m = atol(argv[s]), k = atol(argv[s + 1]), n = atol(argv[s + 2]);
        if (m <= 0 || k <= 0 || n <= 0) {
            fprintf(stderr, "error: shape %s %s %s: expected three positive integers\n", argv[s], argv[s + 1], argv[s + 2]);
            return 2;
        }
        float *a = random_matrix(m * k, &seed), *b = random_matrix(n * k, &seed);
        float *c_blas = malloc((size_t)(m * n) * sizeof(float)), *c_granule = malloc((size_t)(m * n) * sizeof(float));
        double flops = 2.0 * (double)m * (double)k * (double)n;
        int calls = (int)(3e8 / flops) + 2;
        double best_blas = 1e30, best_granule = 1e30;
        for (int round = 0; round < 5; round++) {
            double t = now();
            for (int i = 0; i < calls; i++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, a, (int)k, b, (int)k, 0.0f,
                            c_blas, (int)n);
            t = (now() - t) / calls;
            best_blas = t < best_blas ? t : best_blas;
            t = now();
            for (int i = 0; i < calls; i++) gr_sgemm_nt(m, n, k, a, k, b, k, 0.0f, c_granule, n);
            t = (now() - t) / calls;
            best_granule = t < best_granule ? t : best_granule;
        }
        double diff = 0;
        for (long i = 0; i < m * n; i++) diff = fmax(diff, fabs((double)c_blas[i] - c_granule[i]));
        printf("{\"m\":%ld,\"k\":%ld,\"n\":%ld,\"openblas_gflops\":%.2f,\"granule_gflops\":%.2f,\"max_abs_diff\":%.3g}\n", m, k,
               n, flops / best_blas * 1e-9, flops / best_granule * 1e-9, diff);
        fflush(stdout);
        free(a), free(b), free(c_blas), free(c_granule);
    }
    return 0;
}
