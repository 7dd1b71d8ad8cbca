/*
 * gemm.c: gr_sgemm_nt, C = A·Bᵀ + beta·C for GEMMs with few rows.
 *
 * OpenBLAS packs B into panels before it multiplies. With a few rows of A (the decoder at batch 4
 * has 40, a generation step 4 or 32) each packed element of B is used only 2m times, and packing
 * dominates: 10-75 GFLOP/s on one core here for m = 4..40 against ~88 at m = 1792. This kernel
 * reads B in place instead. Bᵀ's columns are B's rows, contiguous in k, so C[i][j] is a dot product
 * of two contiguous rows:
 *
 *   for each block of k (KC floats, so four rows of B stay in L1):
 *     for each group of four rows of B (four columns of C):
 *       for each group of three rows of A: 12 dot products in 12 AVX registers, 8 lanes of k at a
 *       time (3 + 4 loads per 12 FMAs), then summed across lanes four at a time.
 *
 * B is streamed from memory once per k block; A (m·KC floats) stays in L2.
 *
 * Every element of C gets the same arithmetic wherever it lies: its k block's eight lane sums are
 * accumulated in k order (a masked load covers k's tail), summed across lanes in one fixed order,
 * and added to C block after block. Rows of A after the last group of three go one at a time
 * (group1x4, the same arithmetic per element), and a group at the right edge (fewer than four
 * rows of B left) repeats its last row and drops those results: a GEMM split over threads by rows
 * or columns gives bit-identical results for any split.
 *
 * Not done: other layouts (A·B with B row-major reads B with a stride here and is slower than
 * OpenBLAS, measured), and large m (OpenBLAS's packed kernel is at par at m = 128 and faster at
 * 224; the code generator chooses). Without AVX2 and FMA it calls cblas_sgemm.
 */
#include "granule_runtime.h"

#include <cblas.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define GR_GEMM_AVX2 1
#include <immintrin.h>
#define GR_AVX2 __attribute__((target("avx2,fma")))
#endif

#ifdef GR_GEMM_AVX2

/* Floats of k per block: four rows of B (16 KiB) stay in L1, m rows of A in L2. */
enum { KC = 1024 };

/* The eight lanes of each of four vectors summed, in one fixed order, as four floats. */
GR_AVX2 static inline __m128 sum_lanes(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    __m256 pairs = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    return _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
}

/* Writes the first `columns` of `sums` to c (adding to what is there when `accumulate`). */
GR_AVX2 static inline void store_row(float *c, __m128 sums, int columns, int accumulate) {
    if (columns == 4) {
        if (accumulate) sums = _mm_add_ps(sums, _mm_loadu_ps(c));
        _mm_storeu_ps(c, sums);
        return;
    }
    float lanes[4];
    _mm_storeu_ps(lanes, sums);
    for (int q = 0; q < columns; q++) c[q] = accumulate ? lanes[q] + c[q] : lanes[q];
}

/* Asks for the cache line at p (the rows of B the next group reads, while this one computes: B
 * streams from memory once, and without it the kernel waits on it; measured 58 → 69 GFLOP/s at
 * m = 40, n = 25232). */
#define GR_PREFETCH_ROWS(next, k)                                                                          \
    do {                                                                                                   \
        for (int q = 0; q < 4; q++) _mm_prefetch((const char *)((next)[q] + (k)), _MM_HINT_T0);            \
    } while (0)

#define GR_LOAD_FULL(p) _mm256_loadu_ps(p)
#define GR_LOAD_TAIL(p) _mm256_maskload_ps((p), tail)

/* A group's walk over its k block: STEP(LOAD, k) handles floats [k, k + 8) of each row. While
 * `next` is set, two steps at a time with one prefetched 64-byte line of each of its rows; then
 * the remaining whole steps; then the masked tail. */
#define GR_K_LOOP(STEP)                                                                                    \
    do {                                                                                                   \
        int64_t k = 0;                                                                                     \
        if (next != NULL)                                                                                  \
            for (; k + 16 <= kc; k += 16) {                                                                \
                GR_PREFETCH_ROWS(next, k);                                                                 \
                STEP(GR_LOAD_FULL, k);                                                                     \
                STEP(GR_LOAD_FULL, k + 8);                                                                 \
            }                                                                                              \
        for (; k + 8 <= kc; k += 8) STEP(GR_LOAD_FULL, k);                                                 \
        if (k < kc) STEP(GR_LOAD_TAIL, k);                                                                 \
    } while (0)

/* One k block of a group: rows a[0..3) of A times rows b[0..4) of B, kc floats from each (the
 * last kc % 8 through `tail`), into the first `columns` of three rows of C. `next` (or NULL):
 * rows of B to prefetch. */
GR_AVX2 static void group3x4(const float *const a[3], const float *const b[4], const float *const *next, int64_t kc,
                             __m256i tail, int columns, float *c, int64_t ldc, int accumulate) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2];
    const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
#define GR_GROUP_STEP(LOAD, k)                                                                          \
    do {                                                                                                \
        __m256 x0 = LOAD(a0 + (k)), x1 = LOAD(a1 + (k)), x2 = LOAD(a2 + (k));                           \
        __m256 w = LOAD(b0 + (k));                                                                      \
        c00 = _mm256_fmadd_ps(x0, w, c00), c10 = _mm256_fmadd_ps(x1, w, c10), c20 = _mm256_fmadd_ps(x2, w, c20); \
        w = LOAD(b1 + (k));                                                                             \
        c01 = _mm256_fmadd_ps(x0, w, c01), c11 = _mm256_fmadd_ps(x1, w, c11), c21 = _mm256_fmadd_ps(x2, w, c21); \
        w = LOAD(b2 + (k));                                                                             \
        c02 = _mm256_fmadd_ps(x0, w, c02), c12 = _mm256_fmadd_ps(x1, w, c12), c22 = _mm256_fmadd_ps(x2, w, c22); \
        w = LOAD(b3 + (k));                                                                             \
        c03 = _mm256_fmadd_ps(x0, w, c03), c13 = _mm256_fmadd_ps(x1, w, c13), c23 = _mm256_fmadd_ps(x2, w, c23); \
    } while (0)
    GR_K_LOOP(GR_GROUP_STEP);
#undef GR_GROUP_STEP
    store_row(c, sum_lanes(c00, c01, c02, c03), columns, accumulate);
    store_row(c + ldc, sum_lanes(c10, c11, c12, c13), columns, accumulate);
    store_row(c + 2 * ldc, sum_lanes(c20, c21, c22, c23), columns, accumulate);
}

/* The same for one row of A (the 3-row group would triple its work), with the same arithmetic
 * per element as group3x4. */
GR_AVX2 static void group1x4(const float *a0, const float *const b[4], const float *const *next, int64_t kc,
                             __m256i tail, int columns, float *c, int accumulate) {
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
#define GR_ROW_STEP(LOAD, k)                                                                            \
    do {                                                                                                \
        __m256 x = LOAD(a0 + (k));                                                                      \
        c0 = _mm256_fmadd_ps(x, LOAD(b0 + (k)), c0), c1 = _mm256_fmadd_ps(x, LOAD(b1 + (k)), c1);       \
        c2 = _mm256_fmadd_ps(x, LOAD(b2 + (k)), c2), c3 = _mm256_fmadd_ps(x, LOAD(b3 + (k)), c3);       \
    } while (0)
    GR_K_LOOP(GR_ROW_STEP);
#undef GR_ROW_STEP
    store_row(c, sum_lanes(c0, c1, c2, c3), columns, accumulate);
}

GR_AVX2 static void sgemm_nt_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                                  int64_t ldb, int accumulate, float *c, int64_t ldc) {
    for (int64_t k0 = 0; k0 < k; k0 += KC) {
        int64_t kc = k - k0 < KC ? k - k0 : KC;
        /* Lanes [0, kc % 8) of the last, partial load. */
        __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(kc % 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        int add = accumulate || k0 > 0;
        for (int64_t j = 0; j < n; j += 4) {
            int columns = n - j < 4 ? (int)(n - j) : 4;
            const float *rows[4], *next[4];
            for (int q = 0; q < 4; q++) {
                rows[q] = b + (j + (q < columns ? q : columns - 1)) * ldb + k0;
                next[q] = j + 4 + q < n ? b + (j + 4 + q) * ldb + k0 : rows[q];
            }
            /* The first group of rows of A prefetches the next rows of B; the others find this
             * group's rows of B in L1. */
            int64_t i = 0;
            for (; i + 3 <= m; i += 3) {
                const float *arows[3] = {a + i * lda + k0, a + (i + 1) * lda + k0, a + (i + 2) * lda + k0};
                group3x4(arows, rows, i == 0 ? next : NULL, kc, tail, columns, c + i * ldc + j, ldc, add);
            }
            for (; i < m; i++) group1x4(a + i * lda + k0, rows, i == 0 ? next : NULL, kc, tail, columns, c + i * ldc + j, add);
        }
    }
}

#endif /* GR_GEMM_AVX2 */

void gr_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                 float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (beta == 0.0f)
            for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
#ifdef GR_GEMM_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        sgemm_nt_avx2(m, n, k, a, lda, b, ldb, beta != 0.0f, c, ldc);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k, 1.0f, a, (blasint)lda,
                b, (blasint)ldb, beta, c, (blasint)ldc);
}
