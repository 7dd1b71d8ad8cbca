/*
 * gemm_few_rows.c: one core, the few-row and small GEMM shapes of BART-base, timed with OpenBLAS's
 * cblas_sgemm and with the runtime's kernel for the layout: gr_sgemm_nt for C = A·Bᵀ ("nt"),
 * gr_sgemm_small for C = A·B ("nn") and C = Aᵀ·B ("tn"). Built and run by bench/gemm_few_rows.py,
 * which adds PyTorch's figures from the same run.
 *
 * Usage: gemm_few_rows LAYOUT M K N [LAYOUT M K N ...]   prints one JSON line per shape:
 *   {"layout":"nt","m":40,"k":768,"n":384,"openblas_gflops":..,"granule_gflops":..,"max_abs_diff":..}
 * Each figure is the best of 5 rounds of enough calls for ~0.3 GFLOP per round.
 */
#define _POSIX_C_SOURCE 200809L
#include "granule_runtime.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* One call of the layout's kernel: Granule's (granule != 0) or OpenBLAS's. A is m×k (k×m for "tn"),
 * B is n×k for "nt" and k×n otherwise, both dense. */
static void multiply(const char *layout, int granule, long m, long k, long n, const float *a, const float *b, float *c) {
    int transpose_a = strcmp(layout, "tn") == 0, transpose_b = strcmp(layout, "nt") == 0;
    long lda = transpose_a ? m : k, ldb = transpose_b ? k : n;
    if (!granule)
        cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans, (int)m,
                    (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, 0.0f, c, (int)n);
    else if (transpose_b)
        gr_sgemm_nt(m, n, k, a, lda, b, ldb, 0.0f, c, n);
    else
        gr_sgemm_small(transpose_a, m, n, k, a, lda, b, ldb, 0.0f, c, n);
}

int main(int argc, char **argv) {
    if (argc < 5 || (argc - 1) % 4 != 0) {
        fprintf(stderr, "usage: %s LAYOUT M K N [LAYOUT M K N ...]   (LAYOUT: nt, nn or tn)\n", argv[0]);
        return 2;
    }
    openblas_set_num_threads(1);
    unsigned seed = 1;
    for (int s = 1; s + 3 < argc; s += 4) {
        const char *layout = argv[s];
        long m = atol(argv[s + 1]), k = atol(argv[s + 2]), n = atol(argv[s + 3]);
        if (strcmp(layout, "nt") != 0 && strcmp(layout, "nn") != 0 && strcmp(layout, "tn") != 0) {
            fprintf(stderr, "error: layout '%s': expected nt, nn or tn\n", layout);
            return 2;
        }
        if (m <= 0 || k <= 0 || n <= 0) {
            fprintf(stderr, "error: shape %s %s %s: expected three positive integers\n", argv[s + 1], argv[s + 2], argv[s + 3]);
            return 2;
        }
        float *a = random_matrix(m * k, &seed), *b = random_matrix(n * k, &seed);
        float *c_blas = malloc((size_t)(m * n) * sizeof(float)), *c_granule = malloc((size_t)(m * n) * sizeof(float));
        double flops = 2.0 * (double)m * (double)k * (double)n;
        int calls = (int)(3e8 / flops) + 2;
        double best[2] = {1e30, 1e30};
        float *outputs[2] = {c_blas, c_granule};
        for (int round = 0; round < 5; round++)
            for (int granule = 0; granule <= 1; granule++) {
                double t = now();
                for (int i = 0; i < calls; i++) multiply(layout, granule, m, k, n, a, b, outputs[granule]);
                t = (now() - t) / calls;
                best[granule] = t < best[granule] ? t : best[granule];
            }
        double diff = 0;
        for (long i = 0; i < m * n; i++) diff = fmax(diff, fabs((double)c_blas[i] - c_granule[i]));
        printf("{\"layout\":\"%s\",\"m\":%ld,\"k\":%ld,\"n\":%ld,\"openblas_gflops\":%.2f,\"granule_gflops\":%.2f,"
               "\"max_abs_diff\":%.3g}\n",
               layout, m, k, n, flops / best[0] * 1e-9, flops / best[1] * 1e-9, diff);
        fflush(stdout);
        free(a), free(b), free(c_blas), free(c_granule);
    }
    return 0;
}
