/* errors_test.c: gr_raise (first error wins, from any thread) and the messages. */
#include "test.h"

#include <stdio.h>
#include <string.h>

static const char *manifest =
    "{\"version\": 1, \"functions\": [], \"ops\": [\"m.tir:12:3: gather\", \"m.tir:20:5: cross_entropy\"]}";

static void test_messages_of_each_kind(void) {
    gr_runtime *rt = gr_runtime_create(1);
    CHECK_STR_EQ(gr_error_message(rt), "");
    CHECK(!gr_failed(rt));
    gr_raise(rt, 0, GR_RAISE_INDEX, 70, 64);
    CHECK(gr_failed(rt));
    CHECK_STR_EQ(gr_error_message(rt), "op #0: index 70 is out of range [0, 64)");
    gr_error err;
    gr_program *program = gr_program_load(manifest, NULL, &err);
    CHECK(program != NULL);
    gr_runtime_attach_program(rt, program);
    CHECK_STR_EQ(gr_error_message(rt), "m.tir:12:3: gather: index 70 is out of range [0, 64)");
    gr_runtime_reset_error(rt);
    CHECK(!gr_failed(rt));
    CHECK_STR_EQ(gr_error_message(rt), "");
    gr_raise(rt, 1, GR_RAISE_LABEL, -3, 50265);
    CHECK_STR_EQ(gr_error_message(rt), "m.tir:20:5: cross_entropy: label -3 is out of range [0, 50265)");
    gr_runtime_reset_error(rt);
    gr_raise(rt, 7, GR_RAISE_DIV_ZERO, 12, 0);
    CHECK_STR_EQ(gr_error_message(rt), "op #7: integer division by zero");
    gr_runtime_reset_error(rt);
    gr_raise(rt, -1, GR_RAISE_CAST, 0, 0);
    CHECK_STR_EQ(gr_error_message(rt), "op #-1: invalid cast: a NaN or out-of-range float cannot become an integer");
    gr_runtime_reset_error(rt);
    gr_raise(rt, 1, 99, 5, 6);
    CHECK_STR_EQ(gr_error_message(rt), "m.tir:20:5: cross_entropy: run-time error of unknown kind 99 (value 5, bound 6)");
    gr_runtime_destroy(rt);
    gr_program_free(program);
}

static void test_first_error_wins_serially(void) {
    gr_runtime *rt = gr_runtime_create(1);
    gr_raise(rt, 0, GR_RAISE_INDEX, 1, 2);
    gr_raise(rt, 0, GR_RAISE_INDEX, 3, 4);
    CHECK_STR_EQ(gr_error_message(rt), "op #0: index 1 is out of range [0, 2)");
    gr_runtime_destroy(rt);
}

static void raising_kernel(int64_t begin, int64_t end, void *const *ctx) {
    gr_runtime *rt = ctx[0];
    for (int64_t i = begin; i < end; i++) {
        if (i % 3 == 0) gr_raise(rt, (int32_t)(i % 5), GR_RAISE_INDEX, i, i + 1000000);
    }
}

static void test_first_error_wins_across_threads(void) {
    gr_runtime *rt = gr_runtime_create(4);
    for (int round = 0; round < 200; round++) {
        gr_runtime_reset_error(rt);
        void *ctx[1] = {rt};
        gr_parallel_for(rt, raising_kernel, 4000, ctx);
        CHECK(gr_failed(rt));
        /* One raise, whole: the value, bound and op all come from the same call. */
        long long op = -1, value = -1, bound = -1;
        int fields = sscanf(gr_error_message(rt), "op #%lld: index %lld is out of range [0, %lld)", &op, &value, &bound);
        CHECK_EQ(fields, 3);
        CHECK_EQ(bound, value + 1000000);
        CHECK_EQ(value % 3, 0);
        CHECK_EQ(op, value % 5);
    }
    gr_runtime_destroy(rt);
}

static void test_error_helpers(void) {
    gr_error err;
    CHECK_EQ(gr_fail(&err, "a %d", 1), -1);
    CHECK_STR_EQ(err.message, "a 1");
    gr_error_prefix(&err, "%s: ", "file");
    CHECK_STR_EQ(err.message, "file: a 1");
    CHECK_EQ(gr_fail(NULL, "ignored"), -1);
    char long_name[6000];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    gr_fail(&err, "%s", long_name);
    CHECK_EQ(strlen(err.message), GR_ERROR_CAPACITY - 1);
    gr_error_prefix(&err, "p: ");
    CHECK_EQ(strlen(err.message), GR_ERROR_CAPACITY - 1);
}

void suite_errors(void) {
    RUN(test_messages_of_each_kind);
    RUN(test_first_error_wins_serially);
    RUN(test_first_error_wins_across_threads);
    RUN(test_error_helpers);
}
