/*
 * philox.c: Philox4x32-10 (Salmon et al., SC'11, Random123 constants) and the dropout rule of
 * Sources/GranuleInterpreter/Philox.swift, bit for bit.
 *
 * One round maps (c0, c1, c2, c3) under key (k0, k1) to
 * (hi(M1·c2) ^ c1 ^ k0, lo(M1·c2), hi(M0·c0) ^ c3 ^ k1, lo(M0·c0)); the key is bumped by
 * (0x9E3779B9, 0xBB67AE85) between rounds. Ten rounds.
 */
#include "internal.h"

void gr_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    const uint64_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = m0 * c0;
        uint64_t p1 = m1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint32_t gr_philox_word(int64_t seed, int64_t offset, int64_t index) {
    uint64_t position = (uint64_t)index, offset_bits = (uint64_t)offset, seed_bits = (uint64_t)seed;
    uint64_t block = position / 4;
    const uint32_t counter[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)offset_bits,
                                 (uint32_t)(offset_bits >> 32)};
    const uint32_t key[2] = {(uint32_t)seed_bits, (uint32_t)(seed_bits >> 32)};
    uint32_t out[4];
    gr_philox4x32(counter, key, out);
    return out[position % 4];
}

int gr_dropout_keep(int64_t seed, int64_t offset, int64_t index, double rate) {
    return (double)(gr_philox_word(seed, offset, index) >> 8) >= rate * 16777216.0;
}
