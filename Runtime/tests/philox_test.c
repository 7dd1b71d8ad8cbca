/* philox_test.c: Philox4x32-10 known answers and the dropout rule of Philox.swift. */
#include "test.h"

#include <math.h>

static void test_random123_known_answers(void) {
    /* Random123's kat_vectors, the three philox4x32 10 lines (as in PhiloxTests.swift). */
    const uint32_t cases[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        gr_philox4x32(&cases[i][0], &cases[i][4], out);
        for (int k = 0; k < 4; k++) CHECK_EQ(out[k], cases[i][6 + k]);
    }
}

static void test_word_follows_the_dropout_counter_layout(void) {
    /* Elements 0..3 of seed 0, offset 0 are the words of counter 0, key 0. */
    const uint32_t zero[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
    for (int i = 0; i < 4; i++) CHECK_EQ(gr_philox_word(0, 0, i), zero[i]);
    /* PhiloxTests.dropoutKeepFollowsItsDefinition: index 4·2^32 + 6 → block 2^32 + 1 (both counter
     * halves), lane 2; offset 5·2^32 + 3 and seed -2 split into halves. */
    const uint32_t counter[4] = {1, 1, 3, 5}, key[2] = {0xfffffffe, 0xffffffff};
    uint32_t out[4];
    gr_philox4x32(counter, key, out);
    int64_t index = ((int64_t)1 << 34) + 6, offset = ((int64_t)5 << 32) + 3;
    CHECK_EQ(gr_philox_word(-2, offset, index), out[2]);
    CHECK_EQ(gr_philox_word(-2, offset, index), 0xbd9605e5u);
    /* Reference values printed by Philox.swift's own functions (compiled with swiftc) and by an
     * independent Python port of the same formula; both agree. */
    const struct {
        int64_t seed, offset, index;
        uint32_t word;
        int keep_half;
    } reference[] = {
        {77, 9, 0, 0x5cedaae6, 0},
        {77, 9, 1, 0xc51ab20a, 1},
        {77, 9, 5, 0x84c58762, 1},
        {77, 9, 36, 0x55b6fa3e, 0},
        {1234, 0, 99999, 0xb6e0b2ea, 1},
        {-1, (int64_t)1 << 40, ((int64_t)1 << 33) + 3, 0x8e47e7be, 1},
        {42, 3, 7, 0x3faa46e6, 0},
    };
    for (size_t i = 0; i < sizeof reference / sizeof reference[0]; i++) {
        CHECK_EQ(gr_philox_word(reference[i].seed, reference[i].offset, reference[i].index), reference[i].word);
        CHECK_EQ(gr_dropout_keep(reference[i].seed, reference[i].offset, reference[i].index, 0.5), reference[i].keep_half);
    }
}

static void test_keep_threshold_is_exact(void) {
    /* PhiloxTests.keepThresholdIsExact: a rate of exactly (r >> 8)/2^24 keeps, one ulp more drops. */
    uint32_t bits = gr_philox_word(0, 0, 0) >> 8;
    double rate = (double)bits / 16777216.0;
    CHECK(gr_dropout_keep(0, 0, 0, rate));
    CHECK(!gr_dropout_keep(0, 0, 0, nextafter(rate, 2.0)));
    for (int64_t i = 0; i < 100; i++) CHECK(gr_dropout_keep(5, 1, i, 0.0));
}

static void test_keep_fraction_matches_the_rate(void) {
    int64_t kept = 0, n = 100000;
    for (int64_t i = 0; i < n; i++) kept += gr_dropout_keep(1234, 0, i, 0.1);
    CHECK(fabs((double)kept / (double)n - 0.9) < 0.01);
    /* Different offsets give different masks. */
    int64_t agree = 0;
    for (int64_t i = 0; i < 1000; i++) agree += gr_dropout_keep(42, 3, i, 0.5) == gr_dropout_keep(42, 4, i, 0.5);
    CHECK(agree > 400 && agree < 600);
}

void suite_philox(void) {
    RUN(test_random123_known_answers);
    RUN(test_word_follows_the_dropout_counter_layout);
    RUN(test_keep_threshold_is_exact);
    RUN(test_keep_fraction_matches_the_rate);
}
