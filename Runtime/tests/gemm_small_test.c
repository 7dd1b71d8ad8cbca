/* gemm_small_test.c: gr_sgemm_small against a double-precision reference, and its split invariance. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every shape class the kernel distinguishes: m % 6 (the bottom group), n % 16 and n % 8 (the
 * masked right block and its halves), k = 0 and k = 1; A as stored and transposed; padded leading
 * dimensions; beta 0 over NaNs (C must only be written) and beta 1 (added to C). */
static void test_matches_a_double_reference(void) {
    const int64_t ms[] = {1, 2, 3, 5, 6, 7, 13, 56};
    const int64_t ns[] = {1, 3, 8, 9, 15, 16, 17, 64, 70};
    const int64_t ks[] = {0, 1, 2, 10, 56, 64, 257};
    uint64_t state = 0x2545F4914F6CDD1Du;
    test_product_check check = {0};
    for (int transpose_a = 0; transpose_a <= 1; transpose_a++)
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                    for (int beta = 0; beta <= 1; beta++) {
                        int64_t m = ms[mi], n = ns[ni], k = ks[ki];
                        int64_t lda = (transpose_a ? m : k) + 3, ldb = n + 5, ldc = n + 2;
                        float *a = test_random_matrix(transpose_a ? k : m, lda, &state);
                        float *b = test_random_matrix(k, ldb, &state), *c = test_random_matrix(m, ldc, &state);
                        float *before = malloc((size_t)(m * ldc + 1) * sizeof *before);
                        for (int64_t i = 0; i < m; i++)
                            for (int64_t j = 0; j < n; j++)
                                if (!beta) c[i * ldc + j] = NAN;
                        memcpy(before, c, (size_t)(m * ldc + 1) * sizeof *c);
                        gr_sgemm_small(transpose_a, m, n, k, a, lda, b, ldb, (float)beta, c, ldc);
                        test_check_product((test_matrix){a, lda, transpose_a}, (test_matrix){b, ldb, false}, m, n, k, c,
                                           before, ldc, beta, &check);
                        free(a), free(b), free(c), free(before);
                    }
    printf("       %" PRId64 " cases, worst error %.2g of the sum of |products|\n", check.cases, check.worst);
    CHECK_EQ(check.bad, 0);
    CHECK_EQ(check.padding_touched, 0);
}

/* Rows and columns computed in separate calls (as threads split a GEMM) equal the whole call,
 * bit for bit, for every cut, with A as stored and transposed. */
static void test_any_split_gives_identical_bits(void) {
    int64_t m = 13, n = 37, k = 59; /* a partial group of rows, a masked block in each half */
    uint64_t state = 777;
    float *b = test_random_matrix(k, n, &state), *bias = test_random_matrix(m, n, &state);
    float *whole = malloc((size_t)(m * n) * sizeof *whole), *parts = malloc((size_t)(m * n) * sizeof *parts);
    int64_t differing = 0;
    for (int transpose_a = 0; transpose_a <= 1; transpose_a++) {
        int64_t lda = transpose_a ? m : k;
        float *a = test_random_matrix(transpose_a ? k : m, lda, &state);
        for (int beta = 0; beta <= 1; beta++) {
            memcpy(whole, bias, (size_t)(m * n) * sizeof *whole);
            gr_sgemm_small(transpose_a, m, n, k, a, lda, b, n, (float)beta, whole, n);
            for (int64_t cut = 1; cut < n; cut++) {
                memcpy(parts, bias, (size_t)(m * n) * sizeof *parts);
                gr_sgemm_small(transpose_a, m, cut, k, a, lda, b, n, (float)beta, parts, n);
                gr_sgemm_small(transpose_a, m, n - cut, k, a, lda, b + cut, n, (float)beta, parts + cut, n);
                differing += memcmp(parts, whole, (size_t)(m * n) * sizeof *parts) != 0;
            }
            for (int64_t cut = 1; cut < m; cut++) {
                const float *rest = transpose_a ? a + cut : a + cut * lda;
                memcpy(parts, bias, (size_t)(m * n) * sizeof *parts);
                gr_sgemm_small(transpose_a, cut, n, k, a, lda, b, n, (float)beta, parts, n);
                gr_sgemm_small(transpose_a, m - cut, n, k, rest, lda, b, n, (float)beta, parts + cut * n, n);
                differing += memcmp(parts, whole, (size_t)(m * n) * sizeof *parts) != 0;
            }
        }
        free(a);
    }
    CHECK_EQ(differing, 0);
    free(b), free(bias), free(whole), free(parts);
}

static void test_empty_shapes_write_nothing(void) {
    float c[4] = {1, 2, 3, 4};
    const float a[4] = {1, 1, 1, 1};
    gr_sgemm_small(0, 0, 2, 2, a, 2, a, 2, 0.0f, c, 2);
    gr_sgemm_small(1, 2, 0, 2, a, 2, a, 2, 0.0f, c, 2);
    CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
    gr_sgemm_small(0, 2, 2, 0, a, 1, a, 2, 1.0f, c, 2); /* k = 0, beta 1: C unchanged */
    CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
    gr_sgemm_small(0, 1, 2, 0, a, 1, a, 2, 0.0f, c, 2); /* k = 0, beta 0: the first row zeroed */
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 3 && c[3] == 4);
}

void suite_gemm_small(void) {
    RUN(test_matches_a_double_reference);
    RUN(test_any_split_gives_identical_bits);
    RUN(test_empty_shapes_write_nothing);
}
