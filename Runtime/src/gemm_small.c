/*
 * gemm_small.c: gr_sgemm_small, C = op(A)·B + beta·C for small row-major B (attention's products).
 *
 * Attention multiplies many small matrices: per batch and head, P·V is [56×56]·[56×64] and the
 * backward pass's Pᵀ·dO, dS·K and dSᵀ·Q are alike. OpenBLAS packs both operands of each one and
 * reaches 7-60 GFLOP/s on one core on these shapes here (bench/gemm_few_rows.py; in a BART-base
 * training step at batch 32 they took 111 ms for 6 GFLOP on two cores). B is at most a few tens
 * of KiB, so it stays in L1 without packing, and this kernel reads both operands in place:
 *
 *   for each group of six rows of C (fewer at the bottom edge):
 *     for each block of 16 columns (a masked block at the right edge):
 *       12 AVX registers accumulate C's 6×16 block over k: per k, two loads of B's row and six
 *       broadcasts of A's column.
 *
 * Every element of C is one running FMA sum over k in order, started from zero (then added to C
 * when beta = 1), whatever the group or block it lies in: results do not depend on how a GEMM is
 * split over threads.
 *
 * Not done: Bᵀ (gr_sgemm_nt reads its rows as dot products) and large B (it would stream from
 * memory once per group of six rows; OpenBLAS's packing is then worth it, the code generator
 * chooses). Without AVX2 and FMA it calls cblas_sgemm.
 */
#include "granule_runtime.h"

#include <cblas.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define GR_GEMM_SMALL_AVX2 1
#include <immintrin.h>
#define GR_AVX2 __attribute__((target("avx2,fma")))
#endif

#ifdef GR_GEMM_SMALL_AVX2

enum { GROUP_ROWS = 6, BLOCK_COLUMNS = 16 };

/* Loads lanes of p where mask is set (zero elsewhere); full blocks use plain loads. */
#define GR_LOAD(p, mask, full) ((full) ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (mask)))

/* Row r's step p: its two accumulators += A(r, p) · B's row p. */
#define GR_ROW_STEP(r)                                                                                     \
    if (rows > (r)) {                                                                                      \
        __m256 ar = _mm256_broadcast_ss(acol + (r) * row_stride);                                          \
        c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);                                                        \
        c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);                                                        \
    }

/* Row r's accumulators written to C (added to it when accumulate). */
#define GR_ROW_STORE(r)                                                                                    \
    if (rows > (r)) store_row(c + (r) * ldc, c##r##0, c##r##1, mask0, mask1, full0, full1, second, accumulate);

GR_AVX2 __attribute__((always_inline)) static inline void store_row(float *crow, __m256 c0, __m256 c1, __m256i mask0,
                                                                    __m256i mask1, int full0, int full1, int second,
                                                                    int accumulate) {
    if (accumulate) {
        c0 = _mm256_add_ps(c0, GR_LOAD(crow, mask0, full0));
        if (second) c1 = _mm256_add_ps(c1, GR_LOAD(crow + 8, mask1, full1));
    }
    if (full0) _mm256_storeu_ps(crow, c0); else _mm256_maskstore_ps(crow, mask0, c0);
    if (second) {
        if (full1) _mm256_storeu_ps(crow + 8, c1); else _mm256_maskstore_ps(crow + 8, mask1, c1);
    }
}

/* C[rows × columns] block at c (rows ≤ 6, columns ≤ 16) = sum over k of A's column p (element r at
 * a[r·row_stride + p·k_stride]) times B's row p (at b + p·ldb), added to C when accumulate. Inlined
 * with a constant `rows`, so the unused accumulators and their tests fold away. */
GR_AVX2 __attribute__((always_inline)) static inline void block(int rows, int64_t columns, int64_t k, const float *a,
                                                                int64_t row_stride, int64_t k_stride, const float *b,
                                                                int64_t ldb, int accumulate, float *c, int64_t ldc) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(columns < 8 ? columns : 8)), lane);
    const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(columns > 8 ? columns - 8 : 0)), lane);
    const int full0 = columns >= 8, full1 = columns >= 16, second = columns > 8;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t p = 0; p < k; p++) {
        const float *brow = b + p * ldb;
        /* A masked load reads nothing past the row's end; a full block needs no mask. */
        __m256 b0 = full0 ? _mm256_loadu_ps(brow) : _mm256_maskload_ps(brow, mask0);
        __m256 b1 = full1 ? _mm256_loadu_ps(brow + 8) : _mm256_maskload_ps(brow + 8, mask1);
        const float *acol = a + p * k_stride;
        GR_ROW_STEP(0) GR_ROW_STEP(1) GR_ROW_STEP(2) GR_ROW_STEP(3) GR_ROW_STEP(4) GR_ROW_STEP(5)
    }
    GR_ROW_STORE(0) GR_ROW_STORE(1) GR_ROW_STORE(2) GR_ROW_STORE(3) GR_ROW_STORE(4) GR_ROW_STORE(5)
}

/* One group of `rows` rows of C over all its column blocks; instantiated per row count so that
 * block's row loop unrolls. */
#define GR_GROUP(ROWS)                                                                                     \
    GR_AVX2 static void group##ROWS(int64_t n, int64_t k, const float *a, int64_t row_stride, int64_t k_stride, \
                                    const float *b, int64_t ldb, int accumulate, float *c, int64_t ldc) {  \
        for (int64_t j = 0; j < n; j += BLOCK_COLUMNS) {                                                   \
            int64_t columns = n - j < BLOCK_COLUMNS ? n - j : BLOCK_COLUMNS;                               \
            block(ROWS, columns, k, a, row_stride, k_stride, b + j, ldb, accumulate, c + j, ldc);          \
        }                                                                                                  \
    }
GR_GROUP(1)
GR_GROUP(2)
GR_GROUP(3)
GR_GROUP(4)
GR_GROUP(5)
GR_GROUP(6)

GR_AVX2 static void sgemm_small_avx2(int transpose_a, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                                     const float *b, int64_t ldb, int accumulate, float *c, int64_t ldc) {
    /* A(i, p) is a[i·lda + p], or a[p·lda + i] when A is stored transposed. */
    const int64_t row_stride = transpose_a ? 1 : lda, k_stride = transpose_a ? lda : 1;
    typedef void (*group_fn)(int64_t, int64_t, const float *, int64_t, int64_t, const float *, int64_t, int, float *,
                             int64_t);
    static const group_fn groups[GROUP_ROWS + 1] = {NULL, group1, group2, group3, group4, group5, group6};
    for (int64_t i = 0; i < m; i += GROUP_ROWS) {
        int64_t rows = m - i < GROUP_ROWS ? m - i : GROUP_ROWS;
        groups[rows](n, k, a + i * row_stride, row_stride, k_stride, b, ldb, accumulate, c + i * ldc, ldc);
    }
}

#endif /* GR_GEMM_SMALL_AVX2 */

void gr_sgemm_small(int32_t transpose_a, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                    int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (beta == 0.0f)
            for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
#ifdef GR_GEMM_SMALL_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        sgemm_small_avx2(transpose_a != 0, m, n, k, a, lda, b, ldb, beta != 0.0f, c, ldc);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n,
                (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}
