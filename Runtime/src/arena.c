/*
 * arena.c: aligned memory. gr_aligned_alloc serves results and converted parameters; gr_arena
 * maps the one scratch block the memory plan sizes per function, with anonymous mmap so that an
 * arena larger than the memory in use costs nothing until touched and a too-large one fails
 * cleanly instead of being half-allocated.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#endif

#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *gr_aligned_alloc(size_t bytes) {
    size_t rounded = bytes == 0 ? GR_ALIGNMENT : bytes;
    if (rounded > SIZE_MAX - (GR_ALIGNMENT - 1)) return NULL;
    rounded = (rounded + GR_ALIGNMENT - 1) / GR_ALIGNMENT * GR_ALIGNMENT;
    return aligned_alloc(GR_ALIGNMENT, rounded);
}

void gr_aligned_free(void *block) {
    free(block);
}

int gr_arena_init(gr_arena *arena, int64_t bytes, gr_error *err) {
    arena->data = NULL;
    arena->bytes = 0;
    if (bytes < 0) return gr_fail(err, "arena size %" PRId64 " is negative", bytes);
    if (bytes == 0) return 0;
    if ((uint64_t)bytes > (uint64_t)SIZE_MAX) return gr_fail(err, "arena of %" PRId64 " bytes is too large", bytes);
    void *data = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
        return gr_fail(err, "cannot allocate the arena of %" PRId64 " bytes: %s", bytes, strerror(errno));
    }
#ifdef MADV_HUGEPAGE
    /* Large arenas are walked by every kernel: fewer TLB misses with huge pages (best effort). */
    if (bytes >= (int64_t)1 << 22) (void)madvise(data, (size_t)bytes, MADV_HUGEPAGE);
#endif
    arena->data = data;
    arena->bytes = bytes;
    return 0;
}

void gr_arena_release(gr_arena *arena) {
    if (arena->data != NULL) munmap(arena->data, (size_t)arena->bytes);
    arena->data = NULL;
    arena->bytes = 0;
}
