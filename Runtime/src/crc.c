/*
 * crc.c: CRC-32 (zlib's, the checksum of Granule's checkpoints) and its 8-hex-digit text form.
 */
#include "internal.h"

#include <stdio.h>
#include <zlib.h>

uint32_t gr_crc32(uint32_t crc, const void *bytes, size_t length) {
    if (length == 0) return crc;
    return (uint32_t)crc32_z((uLong)crc, (const Bytef *)bytes, length);
}

void gr_crc32_format(uint32_t crc, char out[9]) {
    snprintf(out, 9, "%08x", (unsigned)crc);
}

bool gr_crc32_parse(const char *text, size_t length, uint32_t *crc) {
    if (length != 8) return false;
    uint32_t value = 0;
    for (size_t i = 0; i < 8; i++) {
        char c = text[i];
        uint32_t digit;
        if (c >= '0' && c <= '9') {
            digit = (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            digit = (uint32_t)(c - 'a' + 10);
        } else {
            return false;
        }
        value = value << 4 | digit;
    }
    *crc = value;
    return true;
}
