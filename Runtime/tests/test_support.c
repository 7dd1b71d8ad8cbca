/*
 * test_support.c: the assert framework of test.h and the helpers the tests share.
 */
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The runner's own bookkeeping (test code, not runtime state). */
static int failures;
static int checks;
static const char *current_test = "";

const char *test_name(void) {
    return current_test;
}

void test_check(bool ok, const char *expression, const char *file, int line) {
    checks++;
    if (ok) return;
    failures++;
    fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", file, line, current_test, expression);
}

void test_check_i64(int64_t got, int64_t want, const char *expression, const char *file, int line) {
    checks++;
    if (got == want) return;
    failures++;
    fprintf(stderr, "%s:%d: %s: CHECK failed: %s (got %" PRId64 ", want %" PRId64 ")\n", file, line, current_test, expression, got,
            want);
}

void test_check_str(const char *got, const char *want, const char *expression, const char *file, int line) {
    checks++;
    if (got != NULL && strcmp(got, want) == 0) return;
    failures++;
    fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n    got:  %s\n    want: %s\n", file, line, current_test, expression,
            got != NULL ? got : "(null)", want);
}

void test_check_contains(const char *haystack, const char *needle, const char *expression, const char *file, int line) {
    checks++;
    if (haystack != NULL && strstr(haystack, needle) != NULL) return;
    failures++;
    fprintf(stderr, "%s:%d: %s: CHECK failed: %s contains \"%s\"\n    got: %s\n", file, line, current_test, expression, needle,
            haystack != NULL ? haystack : "(null)");
}

double test_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void test_run(const char *name, void (*test)(void)) {
    current_test = name;
    int before = failures;
    double start = test_now();
    test();
    double elapsed = test_now() - start;
    printf("  %-4s %-52s %8.3f s\n", failures == before ? "ok" : "FAIL", name, elapsed);
    fflush(stdout);
    current_test = "";
}

/* ---- helpers ---------------------------------------------------------------------------------------- */

void make_temp_dir(char *out, size_t size) {
    const char *base = getenv("TMPDIR");
    snprintf(out, size, "%s/granule-runtime-test-XXXXXX", base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(out) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

void remove_tree(const char *path) {
    DIR *dir = opendir(path);
    if (dir != NULL) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            struct stat info;
            if (lstat(child, &info) == 0 && S_ISDIR(info.st_mode)) {
                remove_tree(child);
            } else {
                unlink(child);
            }
        }
        closedir(dir);
    }
    rmdir(path);
}

void write_bytes(const char *path, const void *bytes, size_t length) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || (length > 0 && fwrite(bytes, 1, length, f) != length) || fclose(f) != 0) {
        fprintf(stderr, "cannot write test file %s\n", path);
        exit(1);
    }
}

unsigned char *read_bytes(const char *path, size_t *length) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t capacity = 4096, n = 0;
    unsigned char *data = malloc(capacity);
    for (;;) {
        if (n == capacity) data = realloc(data, capacity *= 2);
        size_t got = fread(data + n, 1, capacity - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    *length = n;
    return data;
}

int count_entries(const char *path) {
    DIR *dir = opendir(path);
    if (dir == NULL) return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) count++;
    }
    closedir(dir);
    return count;
}

void write_safetensors_raw(const char *path, const char *header, const void *data, size_t data_length) {
    size_t header_length = strlen(header);
    size_t total = 8 + header_length + data_length;
    unsigned char *bytes = malloc(total + 1);
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)((uint64_t)header_length >> (8 * i));
    memcpy(bytes + 8, header, header_length);
    if (data_length > 0) memcpy(bytes + 8 + header_length, data, data_length);
    write_bytes(path, bytes, total);
    free(bytes);
}

int test_report(double start) {
    printf("%d checks, %d failed, %.2f s\n", checks, failures, test_now() - start);
    return failures == 0 ? 0 : 1;
}

uint64_t test_next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

float test_random_float(uint64_t *state) {
    return (float)((double)(test_next_random(state) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

float *test_random_matrix(int64_t rows, int64_t stride, uint64_t *state) {
    float *m = malloc((size_t)(rows * stride + 1) * sizeof *m);
    for (int64_t i = 0; i < rows * stride + 1; i++) m[i] = test_random_float(state);
    return m;
}

static float matrix_at(test_matrix x, int64_t i, int64_t j) {
    return x.transposed ? x.data[j * x.ld + i] : x.data[i * x.ld + j];
}

void test_check_product(test_matrix a, test_matrix b, int64_t m, int64_t n, int64_t k, const float *c,
                        const float *before, int64_t ldc, int beta, test_product_check *check) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= n) {
                check->padding_touched += memcmp(&c[i * ldc + j], &before[i * ldc + j], sizeof *c) != 0;
                continue;
            }
            double want = beta ? before[i * ldc + j] : 0, scale = beta ? fabs(want) : 0;
            for (int64_t p = 0; p < k; p++) {
                double product = (double)matrix_at(a, i, p) * matrix_at(b, p, j);
                want += product;
                scale += fabs(product);
            }
            double error = fabs(c[i * ldc + j] - want) / (scale + 1e-30);
            if (!(error <= 1e-6) && !(scale == 0 && c[i * ldc + j] == 0)) check->bad++;
            if (scale > 0 && error > check->worst) check->worst = error;
        }
    }
    check->padding_touched += memcmp(&c[m * ldc], &before[m * ldc], sizeof *c) != 0;
    check->cases++;
}
