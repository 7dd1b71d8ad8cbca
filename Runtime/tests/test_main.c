/*
 * test_main.c: the runner of the runtime's unit tests.
 * Usage: runtime_tests [SUITE...]   (no argument: every suite)
 */
#include "test.h"

#include <stdio.h>
#include <string.h>

/* ---- main ------------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(void);
} suites[] = {
    {"json", suite_json},           {"crc_and_memory", suite_crc_and_memory}, {"philox", suite_philox},
    {"threadpool", suite_threadpool}, {"errors", suite_errors},               {"safetensors", suite_safetensors},
    {"program", suite_program},     {"search", suite_search},                 {"metrics", suite_metrics},
    {"tokenizer", suite_tokenizer}, {"gemm", suite_gemm},
    {"gemm_small", suite_gemm_small},
};

int main(int argc, char **argv) {
    double start = test_now();
    size_t count = sizeof suites / sizeof suites[0];
    for (size_t i = 0; i < count; i++) {
        bool chosen = argc < 2;
        for (int a = 1; a < argc; a++) chosen |= strcmp(argv[a], suites[i].name) == 0;
        if (!chosen) continue;
        printf("suite %s\n", suites[i].name);
        suites[i].run();
    }
    return test_report(start);
}
