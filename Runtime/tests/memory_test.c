/* memory_test.c: CRC-32 and aligned memory. */
#include "test.h"

#include <string.h>

static void test_crc32_check_value(void) {
    CHECK_EQ(gr_crc32(0, "123456789", 9), 0xcbf43926u);
    CHECK_EQ(gr_crc32(0, "", 0), 0);
    /* Incremental equals whole. */
    uint32_t crc = gr_crc32(0, "12345", 5);
    CHECK_EQ(gr_crc32(crc, "6789", 4), 0xcbf43926u);
    char text[9];
    gr_crc32_format(0x0badf00du, text);
    CHECK_STR_EQ(text, "0badf00d");
    uint32_t parsed = 0;
    CHECK(gr_crc32_parse("0badf00d", 8, &parsed) && parsed == 0x0badf00du);
    CHECK(!gr_crc32_parse("0BADF00D", 8, &parsed));
    CHECK(!gr_crc32_parse("badf00d", 7, &parsed));
    CHECK(!gr_crc32_parse("0badf00x", 8, &parsed));
}

static void test_aligned_blocks(void) {
    const size_t sizes[] = {0, 1, 63, 64, 65, 4096, 1000001};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *block = gr_aligned_alloc(sizes[i]);
        CHECK(block != NULL);
        CHECK_EQ((uintptr_t)block % GR_ALIGNMENT, 0);
        if (sizes[i] > 0) memset(block, 0xAB, sizes[i]);
        gr_aligned_free(block);
    }
    CHECK(gr_aligned_alloc(SIZE_MAX - 10) == NULL);
    gr_aligned_free(NULL);
}

static void test_arena(void) {
    gr_arena arena;
    gr_error err;
    CHECK_EQ(gr_arena_init(&arena, 0, &err), 0);
    CHECK(arena.data == NULL && arena.bytes == 0);
    gr_arena_release(&arena);
    CHECK_EQ(gr_arena_init(&arena, 10 << 20, &err), 0);
    CHECK(arena.data != NULL && (uintptr_t)arena.data % GR_ALIGNMENT == 0);
    memset(arena.data, 1, 10 << 20);
    gr_arena_release(&arena);
    CHECK(arena.data == NULL);
    CHECK(gr_arena_init(&arena, (int64_t)1 << 62, &err) != 0);
    CHECK_CONTAINS(err.message, "cannot allocate the arena of 4611686018427387904 bytes");
    CHECK(gr_arena_init(&arena, -5, &err) != 0);
    CHECK_CONTAINS(err.message, "negative");
}

void suite_crc_and_memory(void) {
    RUN(test_crc32_check_value);
    RUN(test_aligned_blocks);
    RUN(test_arena);
}
