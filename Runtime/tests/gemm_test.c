/* gemm_test.c: gr_sgemm_nt against a double-precision reference, and its split invariance. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every shape class the kernel distinguishes: m % 3 (rows one at a time), n % 4 (the right edge),
 * k % 8 (the masked tail), k > 1024 (several k blocks), k = 0; padded leading dimensions; beta 0
 * over NaNs (C must only be written) and beta 1 (added to C). */
static void test_matches_a_double_reference(void) {
    const int64_t ms[] = {1, 2, 3, 4, 5, 7, 40};
    const int64_t ns[] = {1, 2, 3, 4, 5, 9, 33};
    const int64_t ks[] = {0, 1, 7, 8, 9, 63, 1024, 1025, 2100};
    uint64_t state = 0x9E3779B97F4A7C15u;
    test_product_check check = {0};
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (int beta = 0; beta <= 1; beta++) {
                    int64_t m = ms[mi], n = ns[ni], k = ks[ki];
                    int64_t lda = k + 3, ldb = k + 5, ldc = n + 2;
                    float *a = test_random_matrix(m, lda, &state), *b = test_random_matrix(n, ldb, &state);
                    float *c = test_random_matrix(m, ldc, &state);
                    float *before = malloc((size_t)(m * ldc + 1) * sizeof *before);
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++)
                            if (!beta) c[i * ldc + j] = NAN;
                    memcpy(before, c, (size_t)(m * ldc + 1) * sizeof *c);
                    gr_sgemm_nt(m, n, k, a, lda, b, ldb, (float)beta, c, ldc);
                    test_check_product((test_matrix){a, lda, false}, (test_matrix){b, ldb, true}, m, n, k, c, before, ldc,
                                       beta, &check);
                    free(a), free(b), free(c), free(before);
                }
    printf("       %" PRId64 " cases, worst error %.2g of the sum of |products|\n", check.cases, check.worst);
    CHECK_EQ(check.bad, 0);
    CHECK_EQ(check.padding_touched, 0);
}

/* Rows and columns computed in separate calls (as threads split a GEMM) equal the whole call,
 * bit for bit, for every cut. */
static void test_any_split_gives_identical_bits(void) {
    int64_t m = 11, n = 23, k = 1100; /* a partial group of rows, a partial group of columns, two k blocks */
    uint64_t state = 12345;
    float *a = test_random_matrix(m, k, &state), *b = test_random_matrix(n, k, &state);
    float *bias = test_random_matrix(m, n, &state);
    float *whole = malloc((size_t)(m * n) * sizeof *whole), *parts = malloc((size_t)(m * n) * sizeof *parts);
    int64_t differing = 0;
    for (int beta = 0; beta <= 1; beta++) {
        memcpy(whole, bias, (size_t)(m * n) * sizeof *whole);
        gr_sgemm_nt(m, n, k, a, k, b, k, (float)beta, whole, n);
        for (int64_t cut = 1; cut < n; cut++) {
            memcpy(parts, bias, (size_t)(m * n) * sizeof *parts);
            gr_sgemm_nt(m, cut, k, a, k, b, k, (float)beta, parts, n);
            gr_sgemm_nt(m, n - cut, k, a, k, b + cut * k, k, (float)beta, parts + cut, n);
            differing += memcmp(parts, whole, (size_t)(m * n) * sizeof *parts) != 0;
        }
        for (int64_t cut = 1; cut < m; cut++) {
            memcpy(parts, bias, (size_t)(m * n) * sizeof *parts);
            gr_sgemm_nt(cut, n, k, a, k, b, k, (float)beta, parts, n);
            gr_sgemm_nt(m - cut, n, k, a + cut * k, k, b, k, (float)beta, parts + cut * n, n);
            differing += memcmp(parts, whole, (size_t)(m * n) * sizeof *parts) != 0;
        }
    }
    CHECK_EQ(differing, 0);
    free(a), free(b), free(bias), free(whole), free(parts);
}

static void test_empty_shapes_write_nothing(void) {
    float c[4] = {1, 2, 3, 4};
    const float a[4] = {1, 1, 1, 1};
    gr_sgemm_nt(0, 2, 2, a, 2, a, 2, 0.0f, c, 2);
    gr_sgemm_nt(2, 0, 2, a, 2, a, 2, 0.0f, c, 2);
    CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
    gr_sgemm_nt(2, 2, 0, a, 1, a, 1, 1.0f, c, 2); /* k = 0, beta 1: C unchanged */
    CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
    gr_sgemm_nt(1, 2, 0, a, 1, a, 1, 0.0f, c, 2); /* k = 0, beta 0: the first row zeroed */
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 3 && c[3] == 4);
}

void suite_gemm(void) {
    RUN(test_matches_a_double_reference);
    RUN(test_any_split_gives_identical_bits);
    RUN(test_empty_shapes_write_nothing);
}
