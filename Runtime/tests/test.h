/*
 * test.h: a tiny assert framework for the runtime's tests.
 *
 *   static void test_something(void) { CHECK(1 + 1 == 2); CHECK_STR_EQ(got, "want"); }
 *   void suite_things(void) { RUN(test_something); }
 *
 * A failed check prints file:line, the expression and the values, and the test goes on; the
 * runner exits 1 when any check failed.
 */
#ifndef GRANULE_RUNTIME_TEST_H
#define GRANULE_RUNTIME_TEST_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "../src/internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void test_check(bool ok, const char *expression, const char *file, int line);
void test_check_i64(int64_t got, int64_t want, const char *expression, const char *file, int line);
void test_check_str(const char *got, const char *want, const char *expression, const char *file, int line);
void test_check_contains(const char *haystack, const char *needle, const char *expression, const char *file, int line);
void test_run(const char *name, void (*test)(void));
/** The current test's name, for messages. */
const char *test_name(void);
/** Monotonic seconds. */
double test_now(void);
/** Prints the totals since `start`; returns the exit status (0 when every check passed). */
int test_report(double start);

#define CHECK(condition) test_check((condition), #condition, __FILE__, __LINE__)
#define CHECK_EQ(got, want) test_check_i64((int64_t)(got), (int64_t)(want), #got " == " #want, __FILE__, __LINE__)
#define CHECK_STR_EQ(got, want) test_check_str((got), (want), #got, __FILE__, __LINE__)
#define CHECK_CONTAINS(haystack, needle) test_check_contains((haystack), (needle), #haystack, __FILE__, __LINE__)
#define RUN(test) test_run(#test, test)

/* ---- helpers shared by the suites (test_main.c) ---- */

/** A fresh empty directory under $TMPDIR (or /tmp); the caller removes it with remove_tree. */
void make_temp_dir(char *out, size_t size);
/** Removes a directory tree (files and subdirectories). */
void remove_tree(const char *path);
/** Writes bytes to path (not atomically; for building test inputs). */
void write_bytes(const char *path, const void *bytes, size_t length);
/** Reads a whole file into a malloc'd buffer; NULL if it cannot. */
unsigned char *read_bytes(const char *path, size_t *length);
/** Number of entries of a directory, other than . and .. */
int count_entries(const char *path);
/** Writes "[8-byte length][header][data]" to path: a safetensors file with a verbatim header. */
void write_safetensors_raw(const char *path, const char *header, const void *data, size_t data_length);

/** xorshift64: the next pseudo-random word of *state (nonzero). */
uint64_t test_next_random(uint64_t *state);
/** Uniform in [-1, 1). */
float test_random_float(uint64_t *state);
/** rows·stride + 1 floats from test_random_float (the extra one catches reads past the end). */
float *test_random_matrix(int64_t rows, int64_t stride, uint64_t *state);

/** A matrix read by element: (i, j) at data[i·ld + j], or at data[j·ld + i] when transposed. */
typedef struct {
    const float *data;
    int64_t ld;
    bool transposed;
} test_matrix;

/** What test_check_product found over its calls. */
typedef struct {
    int64_t cases, bad, padding_touched;
    double worst; /* the largest error relative to the sum of |products| */
} test_product_check;

/** Checks C = A·B (+ before, when beta) for an m×n C with leading dimension ldc against a double
 *  reference: an element is bad when it is off by more than 1e-6 of its sum of |products| (or is
 *  not 0 where that sum is 0); C's columns past n and the float after its last row must still
 *  equal `before`'s. */
void test_check_product(test_matrix a, test_matrix b, int64_t m, int64_t n, int64_t k, const float *c,
                        const float *before, int64_t ldc, int beta, test_product_check *check);

/* Suites. */
void suite_json(void);
void suite_crc_and_memory(void);
void suite_philox(void);
void suite_threadpool(void);
void suite_errors(void);
void suite_safetensors(void);
void suite_program(void);
void suite_search(void);
void suite_metrics(void);
void suite_tokenizer(void);
void suite_gemm(void);
void suite_gemm_small(void);

#endif
