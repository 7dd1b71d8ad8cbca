/*
 * safetensors.c: reading (mmap, validated) and atomic writing of .safetensors files.
 *
 *     [8 bytes: N, little-endian u64][N bytes: JSON header][data buffer]
 *
 * Reading, in the order of Sources/GranuleInterpreter/Safetensors.swift (same messages):
 *  1. map the file; check the header length against the file size;
 *  2. parse the header; for each member in order: reject a repeated name, decode "__metadata__"
 *     (an object of strings) or the tensor entry (dtype, shape, data_offsets, each field once,
 *     byte size = element count × dtype size, offsets inside the data buffer);
 *  3. sort the entries by (begin, end) and check that they tile the data buffer exactly;
 *  4. verify "granule_crc32" when present (Granule's checkpoints), then BOOL bytes (0 or 1).
 * Tensors then point straight into the read-only mapping: nothing is copied.
 *
 * Writing builds the header in the layout of Safetensors.swift's writer (metadata first with its
 * keys sorted, tensors in the given order, spaces up to an 8-byte aligned data buffer), computes
 * the CRC-32 of the data, and writes through a temporary file in the same directory that is
 * fsynced and renamed over the target; a failure removes the temporary file and leaves the target.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* madvise, MADV_DONTNEED */
#endif

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ELEMENTS ((int64_t)1 << 40)
#define CRC_KEY "granule_crc32"

static const char *const dtype_names[] = {"F32", "F64", "I32", "I64", "BOOL", "F16", "BF16"};
static const size_t dtype_sizes[] = {4, 8, 4, 8, 1, 2, 2};
#define DTYPE_COUNT 7

const char *gr_st_dtype_name(gr_st_dtype dtype) {
    return (unsigned)dtype < DTYPE_COUNT ? dtype_names[dtype] : "?";
}

size_t gr_st_dtype_size(gr_st_dtype dtype) {
    return (unsigned)dtype < DTYPE_COUNT ? dtype_sizes[dtype] : 0;
}

/* ---- half precision ---------------------------------------------------------------------------- */

static float float_from_bits(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

float gr_f16_to_f32(uint16_t bits) {
    uint32_t sign = (uint32_t)(bits & 0x8000) << 16;
    uint32_t exponent = (uint32_t)(bits >> 10) & 0x1F;
    uint32_t mantissa = bits & 0x03FF;
    if (exponent == 0) {
        /* Zero or subnormal: mantissa · 2^-24, exact in float. */
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign != 0 ? -magnitude : magnitude;
    }
    if (exponent == 0x1F) {
        if (mantissa != 0) return float_from_bits(0x7FC00000u); /* Swift's Float.nan */
        return float_from_bits(sign | 0x7F800000u);
    }
    return float_from_bits(sign | (exponent - 15 + 127) << 23 | mantissa << 13);
}

float gr_bf16_to_f32(uint16_t bits) {
    return float_from_bits((uint32_t)bits << 16);
}

/* ---- reader -------------------------------------------------------------------------------------- */

struct gr_safetensors {
    char *path;
    void *map;
    size_t map_size;
    gr_json *header;
    gr_st_tensor *tensors; /* offset order */
    int64_t count;
    int64_t *by_name;      /* tensor indices sorted by name */
    int64_t *dims;         /* every tensor's shape, concatenated */
    const gr_json_member **metadata;
    int64_t metadata_count;
};

/* An entry checked against the header but not yet against its neighbours. */
typedef struct entry {
    const char *name;
    gr_st_dtype dtype;
    int64_t begin, end;
    int64_t count;
    size_t member; /* position in the header, the tie-breaker of the offset sort */
    const gr_json *shape;
} entry;

/* A failure of file `path`: "<path>: <message>". */
static void *file_failure(gr_error *err, const char *path, const char *message) {
    gr_fail(err, "%s: %s", path, message);
    return NULL;
}

/* Appends "tensor '<name>'" with the name made printable. */
static void append_tensor(gr_text *t, const char *name, size_t length) {
    gr_text_append(t, "tensor '");
    gr_text_append_escaped(t, name, length);
    gr_text_append(t, "'");
}

/* Open-addressing set of strings (the header's names), for duplicate detection in member order. */
typedef struct name_set {
    const gr_json_member **slots;
    size_t capacity;
} name_set;

static uint64_t hash_bytes(const char *s, size_t length) {
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < length; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

/* Inserts m's key; false if it was there already. */
static bool name_set_insert(name_set *set, const gr_json_member *m) {
    size_t i = (size_t)hash_bytes(m->key, m->key_length) & (set->capacity - 1);
    while (set->slots[i] != NULL) {
        const gr_json_member *other = set->slots[i];
        if (other->key_length == m->key_length && memcmp(other->key, m->key, m->key_length) == 0) return false;
        i = (i + 1) & (set->capacity - 1);
    }
    set->slots[i] = m;
    return true;
}

/* One field of a tensor entry, present exactly once. */
static const gr_json *entry_field(const gr_json *fields, const char *key, gr_text *t, const gr_json_member *m) {
    int occurrences;
    const gr_json *value = gr_json_member_find(fields, key, &occurrences);
    if (occurrences > 1) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": field '%s' appears more than once", key);
        return NULL;
    }
    if (value == NULL) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": missing field '%s'", key);
        return NULL;
    }
    return value;
}

/* Appends a JSON shape array of checked integers as "[2, 3]". */
static void append_json_shape(gr_text *t, const gr_json *shape) {
    gr_text_append(t, "[");
    for (size_t i = 0; i < shape->as.array.count; i++) {
        int64_t dim = 0;
        gr_json_integer(&shape->as.array.items[i], &dim);
        gr_text_append(t, "%s%" PRId64, i > 0 ? ", " : "", dim);
    }
    gr_text_append(t, "]");
}

/* Decodes one tensor entry (Safetensors.swift's decodeEntry); false with the message in t. */
static bool decode_entry(const gr_json_member *m, int64_t buffer_size, entry *out, gr_text *t) {
    const gr_json *fields = &m->value;
    if (fields->kind != GR_JSON_OBJECT) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, " must be an object with dtype, shape and data_offsets, got %s", gr_json_kind_name(fields->kind));
        return false;
    }
    const gr_json *dtype = entry_field(fields, "dtype", t, m);
    if (dtype == NULL) return false;
    if (dtype->kind != GR_JSON_STRING) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": field 'dtype' must be a string");
        return false;
    }
    int which = -1;
    for (int i = 0; i < DTYPE_COUNT; i++) {
        if (gr_json_string_is(dtype, dtype_names[i])) which = i;
    }
    if (which < 0) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": unsupported dtype '");
        gr_text_append_escaped(t, dtype->as.string.text, dtype->as.string.length);
        gr_text_append(t, "' (supported: F32, F64, I32, I64, BOOL, F16, BF16)");
        return false;
    }

    const gr_json *shape = entry_field(fields, "shape", t, m);
    if (shape == NULL) return false;
    if (shape->kind != GR_JSON_ARRAY) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": field 'shape' must be an array of integers");
        return false;
    }
    for (size_t i = 0; i < shape->as.array.count; i++) {
        const gr_json *dim = &shape->as.array.items[i];
        int64_t size;
        if (!gr_json_integer(dim, &size)) {
            append_tensor(t, m->key, m->key_length);
            gr_text_append(t, ": field 'shape' must be an array of integers, found %s ", gr_json_kind_name(dim->kind));
            gr_json_append_text(t, dim);
            return false;
        }
        if (size < 0) {
            append_tensor(t, m->key, m->key_length);
            gr_text_append(t, ": shape has a negative dimension %" PRId64, size);
            return false;
        }
    }
    /* TensorType.checkedElementCount: the product of the nonzero dimensions stays <= 2^40. */
    int64_t bounded = 1;
    bool zero = false;
    for (size_t i = 0; i < shape->as.array.count; i++) {
        int64_t dim = 0;
        gr_json_integer(&shape->as.array.items[i], &dim);
        if (dim == 0) {
            zero = true;
            continue;
        }
        if (dim > MAX_ELEMENTS || bounded > MAX_ELEMENTS / dim) {
            append_tensor(t, m->key, m->key_length);
            gr_text_append(t, ": shape ");
            append_json_shape(t, shape);
            gr_text_append(t, " has more than 2^40 elements");
            return false;
        }
        bounded *= dim;
    }
    int64_t count = zero ? 0 : bounded;
    int64_t byte_size = count * (int64_t)dtype_sizes[which];

    const gr_json *offsets = entry_field(fields, "data_offsets", t, m);
    if (offsets == NULL) return false;
    int64_t begin = 0, end = 0;
    if (offsets->kind != GR_JSON_ARRAY || offsets->as.array.count != 2 ||
        !gr_json_integer(&offsets->as.array.items[0], &begin) || !gr_json_integer(&offsets->as.array.items[1], &end)) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": field 'data_offsets' must be an array of two integers [begin, end]");
        return false;
    }
    if (!(0 <= begin && begin <= end)) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": data_offsets [%" PRId64 ", %" PRId64 "] must satisfy 0 <= begin <= end", begin, end);
        return false;
    }
    if (end > buffer_size) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": data_offsets [%" PRId64 ", %" PRId64 "] run past the end of the data buffer (%" PRId64 " bytes)",
                       begin, end, buffer_size);
        return false;
    }
    if (end - begin != byte_size) {
        append_tensor(t, m->key, m->key_length);
        gr_text_append(t, ": data_offsets [%" PRId64 ", %" PRId64 "] hold %" PRId64 " bytes but %s ", begin, end, end - begin,
                       dtype_names[which]);
        append_json_shape(t, shape);
        gr_text_append(t, " needs %" PRId64, byte_size);
        return false;
    }
    out->name = m->key;
    out->dtype = (gr_st_dtype)which;
    out->begin = begin;
    out->end = end;
    out->count = count;
    out->shape = shape;
    return true;
}

/* Decodes "__metadata__" (Safetensors.swift's decodeMetadata). */
static bool decode_metadata(gr_safetensors *file, const gr_json *value, gr_text *t) {
    if (value->kind != GR_JSON_OBJECT) {
        gr_text_append(t, "'__metadata__' must be an object of strings, got %s", gr_json_kind_name(value->kind));
        return false;
    }
    size_t n = value->as.object.count;
    free(file->metadata);
    file->metadata = calloc(n == 0 ? 1 : n, sizeof *file->metadata);
    if (file->metadata == NULL) {
        gr_text_append(t, "out of memory");
        return false;
    }
    file->metadata_count = 0;
    for (size_t i = 0; i < n; i++) {
        const gr_json_member *m = &value->as.object.members[i];
        if (m->value.kind != GR_JSON_STRING) {
            gr_text_append(t, "'__metadata__' entry '");
            gr_text_append_escaped(t, m->key, m->key_length);
            gr_text_append(t, "' must be a string, got %s", gr_json_kind_name(m->value.kind));
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            const gr_json_member *other = &value->as.object.members[j];
            if (other->key_length == m->key_length && memcmp(other->key, m->key, m->key_length) == 0) {
                gr_text_append(t, "'__metadata__' entry '");
                gr_text_append_escaped(t, m->key, m->key_length);
                gr_text_append(t, "' appears more than once");
                return false;
            }
        }
        file->metadata[file->metadata_count++] = m;
    }
    return true;
}

static int compare_entries(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->member < y->member ? -1 : x->member > y->member;
}

/* The tensors sorted by name, for gr_safetensors_find. qsort's comparator cannot take a context,
 * so the sort runs over pointers to the tensors and is turned into indices after. */
static int compare_tensor_names(const void *a, const void *b) {
    const gr_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

void gr_safetensors_close(gr_safetensors *file) {
    if (file == NULL) return;
    if (file->map != NULL) munmap(file->map, file->map_size);
    gr_json_free(file->header);
    free(file->tensors);
    free(file->by_name);
    free(file->dims);
    free(file->metadata);
    free(file->path);
    free(file);
}

/* Checks what comes after the header: tiling, CRC, BOOL bytes; fills the tensors. */
static bool finish_tensors(gr_safetensors *file, entry *entries, int64_t n, const unsigned char *buffer,
                           int64_t buffer_size, int flags, gr_text *t) {
    qsort(entries, (size_t)n, sizeof *entries, compare_entries);
    int64_t cursor = 0;
    const char *previous = NULL;
    for (int64_t i = 0; i < n; i++) {
        const entry *e = &entries[i];
        if (e->begin < cursor && previous != NULL) {
            append_tensor(t, e->name, strlen(e->name));
            gr_text_append(t, ": data_offsets [%" PRId64 ", %" PRId64 "] overlap those of ", e->begin, e->end);
            append_tensor(t, previous, strlen(previous));
            gr_text_append(t, ", which end at %" PRId64, cursor);
            return false;
        }
        if (e->begin > cursor) {
            gr_text_append(t, "bytes [%" PRId64 ", %" PRId64 ") of the data buffer belong to no tensor (a hole before ", cursor,
                           e->begin);
            append_tensor(t, e->name, strlen(e->name));
            gr_text_append(t, ")");
            return false;
        }
        cursor = e->end;
        previous = e->name;
    }
    if (cursor != buffer_size) {
        gr_text_append(t, "bytes [%" PRId64 ", %" PRId64 ") at the end of the data buffer belong to no tensor", cursor, buffer_size);
        return false;
    }

    const char *crc_text = gr_safetensors_metadata_find(file, CRC_KEY);
    if (crc_text != NULL) {
        uint32_t expected;
        if (!gr_crc32_parse(crc_text, strlen(crc_text), &expected)) {
            gr_text_append(t, "checkpoint is corrupt: '__metadata__' entry '" CRC_KEY "' is '");
            gr_text_append_escaped(t, crc_text, strlen(crc_text));
            gr_text_append(t, "', not 8 lowercase hex digits");
            return false;
        }
        if (!(flags & GR_ST_SKIP_CRC)) {
            uint32_t actual = gr_crc32(0, buffer, (size_t)buffer_size);
            if (actual != expected) {
                char want[9], got[9];
                gr_crc32_format(expected, want);
                gr_crc32_format(actual, got);
                gr_text_append(t, "checkpoint is corrupt: CRC mismatch (the header says %s, the data gives %s)", want, got);
                return false;
            }
        }
    }

    int64_t total_rank = 0;
    for (int64_t i = 0; i < n; i++) total_rank += (int64_t)entries[i].shape->as.array.count;
    file->tensors = calloc(n == 0 ? 1 : (size_t)n, sizeof *file->tensors);
    file->by_name = calloc(n == 0 ? 1 : (size_t)n, sizeof *file->by_name);
    file->dims = calloc(total_rank == 0 ? 1 : (size_t)total_rank, sizeof *file->dims);
    const gr_st_tensor **sorted = calloc(n == 0 ? 1 : (size_t)n, sizeof *sorted);
    if (file->tensors == NULL || file->by_name == NULL || file->dims == NULL || sorted == NULL) {
        free(sorted);
        gr_text_append(t, "out of memory");
        return false;
    }
    int64_t *dims = file->dims;
    for (int64_t i = 0; i < n; i++) {
        const entry *e = &entries[i];
        gr_st_tensor *tensor = &file->tensors[i];
        tensor->name = e->name;
        tensor->dtype = e->dtype;
        tensor->rank = (int32_t)e->shape->as.array.count;
        tensor->shape = dims;
        for (int32_t d = 0; d < tensor->rank; d++) gr_json_integer(&e->shape->as.array.items[d], dims++);
        tensor->count = e->count;
        tensor->bytes = e->end - e->begin;
        tensor->data = buffer + e->begin;
        if (tensor->dtype == GR_ST_BOOL) {
            const unsigned char *bytes = tensor->data;
            for (int64_t k = 0; k < tensor->count; k++) {
                if (bytes[k] > 1) {
                    free(sorted);
                    append_tensor(t, e->name, strlen(e->name));
                    gr_text_append(t, ": BOOL element %" PRId64 " is %u, not 0 or 1", k, (unsigned)bytes[k]);
                    return false;
                }
            }
        }
        sorted[i] = tensor;
    }
    file->count = n;
    qsort(sorted, (size_t)n, sizeof *sorted, compare_tensor_names);
    for (int64_t i = 0; i < n; i++) file->by_name[i] = sorted[i] - file->tensors;
    free(sorted);
    return true;
}

/* Validates the mapped bytes (steps 1-4 of the file comment); false with the message in t. */
static bool decode(gr_safetensors *file, const unsigned char *bytes, int64_t size, int flags, gr_text *t) {
    if (size < 8) {
        gr_text_append(t, "file is %" PRId64 " bytes long, too short for the 8-byte header length", size);
        return false;
    }
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--) header_length = header_length << 8 | bytes[i];
    if (header_length > (uint64_t)(size - 8)) {
        gr_text_append(t, "header length %" PRIu64 " is larger than the file (%" PRId64 " bytes)", header_length, size);
        return false;
    }
    int64_t buffer_start = 8 + (int64_t)header_length;
    int64_t buffer_size = size - buffer_start;

    gr_json_error json_error;
    file->header = gr_json_parse((const char *)bytes + 8, (size_t)header_length, &json_error);
    if (file->header == NULL) {
        gr_text_append(t, "invalid JSON header at byte %zu: %s", 8 + json_error.offset, json_error.message);
        return false;
    }
    const gr_json *header = file->header;
    if (header->kind != GR_JSON_OBJECT) {
        gr_text_append(t, "header must be a JSON object, got %s", gr_json_kind_name(header->kind));
        return false;
    }

    size_t members = header->as.object.count;
    size_t capacity = 16;
    while (capacity < 2 * members) capacity *= 2;
    name_set seen = {calloc(capacity, sizeof(const gr_json_member *)), capacity};
    entry *entries = calloc(members == 0 ? 1 : members, sizeof *entries);
    bool ok = seen.slots != NULL && entries != NULL;
    if (!ok) gr_text_append(t, "out of memory");
    int64_t n = 0;
    for (size_t i = 0; ok && i < members; i++) {
        const gr_json_member *m = &header->as.object.members[i];
        if (!name_set_insert(&seen, m)) {
            gr_text_append(t, "tensor name '");
            gr_text_append_escaped(t, m->key, m->key_length);
            gr_text_append(t, "' appears more than once in the header");
            ok = false;
        } else if (m->key_length == strlen("__metadata__") && memcmp(m->key, "__metadata__", m->key_length) == 0) {
            ok = decode_metadata(file, &m->value, t);
        } else if (memchr(m->key, '\0', m->key_length) != NULL) {
            append_tensor(t, m->key, m->key_length);
            gr_text_append(t, ": the name contains a NUL character, which this reader does not support");
            ok = false;
        } else {
            entries[n].member = i;
            ok = decode_entry(m, buffer_size, &entries[n], t);
            n++;
        }
    }
    free(seen.slots);
    if (ok) ok = finish_tensors(file, entries, n, bytes + buffer_start, buffer_size, flags, t);
    free(entries);
    return ok;
}

gr_safetensors *gr_safetensors_open(const char *path, int flags, gr_error *err) {
    gr_safetensors *file = calloc(1, sizeof *file);
    if (file == NULL) return file_failure(err, path, "out of memory");
    file->path = strdup(path);
    if (file->path == NULL) {
        free(file);
        return file_failure(err, path, "out of memory");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        gr_fail(err, "%s: cannot open: %s", path, strerror(errno));
        gr_safetensors_close(file);
        return NULL;
    }
    struct stat info;
    if (fstat(fd, &info) != 0) {
        gr_fail(err, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        gr_safetensors_close(file);
        return NULL;
    }
    if (!S_ISREG(info.st_mode)) {
        gr_fail(err, "%s: cannot read: %s", path, S_ISDIR(info.st_mode) ? strerror(EISDIR) : "not a regular file");
        close(fd);
        gr_safetensors_close(file);
        return NULL;
    }
    int64_t size = (int64_t)info.st_size;
    const unsigned char *bytes = (const unsigned char *)"";
    if (size > 0) {
        if ((uint64_t)size > (uint64_t)SIZE_MAX) {
            close(fd);
            gr_safetensors_close(file);
            return file_failure(err, path, "cannot map: the file is too large");
        }
        void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            gr_fail(err, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            gr_safetensors_close(file);
            return NULL;
        }
        file->map = map;
        file->map_size = (size_t)size;
        bytes = map;
    }
    close(fd);

    char message[GR_ERROR_CAPACITY];
    gr_text t;
    gr_text_init(&t, message, sizeof message);
    if (!decode(file, bytes, size, flags, &t)) {
        gr_fail(err, "%s: %s", path, message);
        gr_safetensors_close(file);
        return NULL;
    }
    return file;
}

const char *gr_safetensors_path(const gr_safetensors *file) {
    return file->path;
}

int64_t gr_safetensors_count(const gr_safetensors *file) {
    return file->count;
}

const gr_st_tensor *gr_safetensors_tensor(const gr_safetensors *file, int64_t i) {
    return i >= 0 && i < file->count ? &file->tensors[i] : NULL;
}

bool gr_safetensors_maps(const gr_safetensors *file, const gr_st_tensor *t) {
    if (file == NULL || file->map == NULL || t == NULL || t->bytes < 0) return false;
    uintptr_t begin = (uintptr_t)file->map, data = (uintptr_t)t->data;
    return data >= begin && data - begin <= file->map_size && (uintptr_t)t->bytes <= file->map_size - (data - begin);
}

void gr_safetensors_release(const gr_safetensors *file, const gr_st_tensor *t) {
    if (file->map == NULL || t->bytes <= 0) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t begin = ((uintptr_t)t->data + page - 1) / page * page;
    uintptr_t end = ((uintptr_t)t->data + (uintptr_t)t->bytes) / page * page;
    if (end > begin) (void)madvise((void *)begin, end - begin, MADV_DONTNEED); /* best effort */
}

const gr_st_tensor *gr_safetensors_find(const gr_safetensors *file, const char *name) {
    int64_t low = 0, high = file->count;
    while (low < high) {
        int64_t middle = low + (high - low) / 2;
        const gr_st_tensor *t = &file->tensors[file->by_name[middle]];
        int order = strcmp(t->name, name);
        if (order == 0) return t;
        if (order < 0) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    return NULL;
}

int64_t gr_safetensors_metadata_count(const gr_safetensors *file) {
    return file->metadata_count;
}

int gr_safetensors_metadata(const gr_safetensors *file, int64_t i, const char **key, const char **value) {
    if (i < 0 || i >= file->metadata_count) return -1;
    *key = file->metadata[i]->key;
    *value = file->metadata[i]->value.as.string.text;
    return 0;
}

const char *gr_safetensors_metadata_find(const gr_safetensors *file, const char *key) {
    size_t length = strlen(key);
    for (int64_t i = 0; i < file->metadata_count; i++) {
        const gr_json_member *m = file->metadata[i];
        if (m->key_length == length && memcmp(m->key, key, length) == 0) return m->value.as.string.text;
    }
    return NULL;
}

int gr_st_tensor_read_f32(const gr_safetensors *file, const gr_st_tensor *t, float *out, gr_error *err) {
    const unsigned char *bytes = t->data;
    switch (t->dtype) {
    case GR_ST_F32:
        if (t->bytes > 0) memcpy(out, bytes, (size_t)t->bytes);
        return 0;
    case GR_ST_F16:
    case GR_ST_BF16:
        for (int64_t i = 0; i < t->count; i++) {
            uint16_t bits = (uint16_t)(bytes[2 * i] | bytes[2 * i + 1] << 8);
            out[i] = t->dtype == GR_ST_F16 ? gr_f16_to_f32(bits) : gr_bf16_to_f32(bits);
        }
        return 0;
    default:
        return gr_fail(err, "%s: tensor '%s' is %s, which cannot be read as f32", file->path, t->name, gr_st_dtype_name(t->dtype));
    }
}

/* ---- writer -------------------------------------------------------------------------------------- */

/* A growable byte buffer for the header. */
typedef struct buffer {
    char *data;
    size_t length, capacity;
    bool failed;
} buffer;

static void buffer_append(buffer *b, const char *bytes, size_t length) {
    if (b->failed) return;
    if (b->length + length + 1 > b->capacity) {
        size_t capacity = b->capacity == 0 ? 256 : b->capacity;
        while (b->length + length + 1 > capacity) capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, length);
    b->length += length;
    b->data[b->length] = '\0';
}

static void buffer_text(buffer *b, const char *s) {
    buffer_append(b, s, strlen(s));
}

/* A JSON string literal with JSON.swift's escapes. */
static void buffer_json_string(buffer *b, const char *s) {
    buffer_text(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        char escape[8];
        switch (*c) {
        case '"': buffer_text(b, "\\\""); break;
        case '\\': buffer_text(b, "\\\\"); break;
        case '\n': buffer_text(b, "\\n"); break;
        case '\r': buffer_text(b, "\\r"); break;
        case '\t': buffer_text(b, "\\t"); break;
        default:
            if (*c < 0x20) {
                snprintf(escape, sizeof escape, "\\u%04x", *c);
                buffer_text(b, escape);
            } else {
                buffer_append(b, (const char *)c, 1);
            }
        }
    }
    buffer_text(b, "\"");
}

static bool utf8_ok(const char *s) {
    return gr_utf8_valid((const unsigned char *)s, strlen(s));
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int compare_metadata(const void *a, const void *b) {
    return strcmp(((const gr_st_metadata *)a)->key, ((const gr_st_metadata *)b)->key);
}

/* Checks the tensors and metadata; sets each tensor's byte size. */
static int check_write_request(const gr_st_write_tensor *tensors, size_t count, const gr_st_metadata *metadata,
                               size_t metadata_count, int64_t *sizes, gr_error *err) {
    for (size_t i = 0; i < count; i++) {
        const gr_st_write_tensor *w = &tensors[i];
        if (w->name == NULL) return gr_fail(err, "tensor %zu has no name", i);
        if (strcmp(w->name, "__metadata__") == 0) return gr_fail(err, "'__metadata__' cannot be a tensor name");
        if (!utf8_ok(w->name)) return gr_fail(err, "tensor name '%s' is not valid UTF-8", w->name);
        if ((unsigned)w->dtype >= DTYPE_COUNT) return gr_fail(err, "tensor '%s' has an unknown dtype %d", w->name, (int)w->dtype);
        if (w->rank < 0 || (w->rank > 0 && w->shape == NULL)) return gr_fail(err, "tensor '%s' has a bad rank %" PRId32, w->name, w->rank);
        int64_t bounded = 1;
        bool zero = false;
        for (int32_t d = 0; d < w->rank; d++) {
            int64_t dim = w->shape[d];
            if (dim < 0) return gr_fail(err, "tensor '%s': shape has a negative dimension %" PRId64, w->name, dim);
            if (dim == 0) {
                zero = true;
                continue;
            }
            if (dim > MAX_ELEMENTS || bounded > MAX_ELEMENTS / dim) {
                return gr_fail(err, "tensor '%s': shape has more than 2^40 elements", w->name);
            }
            bounded *= dim;
        }
        sizes[i] = (zero ? 0 : bounded) * (int64_t)dtype_sizes[w->dtype];
        if (sizes[i] > 0 && w->data == NULL) return gr_fail(err, "tensor '%s' has no data", w->name);
    }
    if (count > 1) {
        const char **names = malloc(count * sizeof *names);
        if (names == NULL) return gr_fail(err, "out of memory");
        for (size_t i = 0; i < count; i++) names[i] = tensors[i].name;
        qsort(names, count, sizeof *names, compare_strings);
        for (size_t i = 1; i < count; i++) {
            if (strcmp(names[i - 1], names[i]) == 0) {
                gr_fail(err, "tensor name '%s' is given more than once", names[i]);
                free(names);
                return -1;
            }
        }
        free(names);
    }
    for (size_t i = 0; i < metadata_count; i++) {
        const gr_st_metadata *m = &metadata[i];
        if (m->key == NULL || m->value == NULL) return gr_fail(err, "metadata entry %zu has no key or value", i);
        if (strcmp(m->key, CRC_KEY) == 0) return gr_fail(err, "metadata key '" CRC_KEY "' is reserved for the writer");
        if (!utf8_ok(m->key) || !utf8_ok(m->value)) return gr_fail(err, "metadata entry '%s' is not valid UTF-8", m->key);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(metadata[j].key, m->key) == 0) return gr_fail(err, "metadata key '%s' is given more than once", m->key);
        }
    }
    return 0;
}

/* Writes all of bytes to fd; false with errno set on failure. */
static bool write_all(int fd, const void *bytes, size_t length) {
    const char *p = bytes;
    while (length > 0) {
        size_t piece = length < ((size_t)1 << 30) ? length : ((size_t)1 << 30);
        ssize_t n = write(fd, p, piece);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += n;
        length -= (size_t)n;
    }
    return true;
}

/* Streams a tensor's data (BOOL bytes normalized to 0/1) to fd, or only into the CRC when fd < 0. */
static bool emit_data(int fd, const gr_st_write_tensor *w, int64_t size, uint32_t *crc) {
    if (size == 0) return true;
    if (w->dtype != GR_ST_BOOL) {
        if (crc != NULL) *crc = gr_crc32(*crc, w->data, (size_t)size);
        return fd < 0 || write_all(fd, w->data, (size_t)size);
    }
    unsigned char chunk[1 << 14];
    const unsigned char *source = w->data;
    for (int64_t done = 0; done < size;) {
        size_t n = (size_t)(size - done < (int64_t)sizeof chunk ? size - done : (int64_t)sizeof chunk);
        for (size_t k = 0; k < n; k++) chunk[k] = source[done + (int64_t)k] != 0;
        if (crc != NULL) *crc = gr_crc32(*crc, chunk, n);
        if (fd >= 0 && !write_all(fd, chunk, n)) return false;
        done += (int64_t)n;
    }
    return true;
}

/* Makes the rename durable by flushing the containing directory (best effort). */
static void sync_directory(const char *path) {
    const char *slash = strrchr(path, '/');
    char directory[4096];
    if (slash == NULL) {
        snprintf(directory, sizeof directory, ".");
    } else if (slash == path) {
        snprintf(directory, sizeof directory, "/");
    } else {
        snprintf(directory, sizeof directory, "%.*s", (int)(slash - path), path);
    }
    int fd = open(directory, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Builds the header text (padded), given the data CRC. */
static bool build_header(buffer *h, const gr_st_write_tensor *tensors, size_t count, const int64_t *sizes,
                         const gr_st_metadata *metadata, size_t metadata_count, uint32_t crc) {
    gr_st_metadata *sorted = malloc((metadata_count + 1) * sizeof *sorted);
    if (sorted == NULL) return false;
    char crc_text[9];
    gr_crc32_format(crc, crc_text);
    for (size_t i = 0; i < metadata_count; i++) sorted[i] = metadata[i];
    sorted[metadata_count] = (gr_st_metadata){CRC_KEY, crc_text};
    qsort(sorted, metadata_count + 1, sizeof *sorted, compare_metadata);
    buffer_text(h, "{\"__metadata__\":{");
    for (size_t i = 0; i <= metadata_count; i++) {
        if (i > 0) buffer_text(h, ",");
        buffer_json_string(h, sorted[i].key);
        buffer_text(h, ":");
        buffer_json_string(h, sorted[i].value);
    }
    buffer_text(h, "}");
    free(sorted);
    int64_t offset = 0;
    char number[32];
    for (size_t i = 0; i < count; i++) {
        const gr_st_write_tensor *w = &tensors[i];
        buffer_text(h, ",");
        buffer_json_string(h, w->name);
        buffer_text(h, ":{\"dtype\":\"");
        buffer_text(h, dtype_names[w->dtype]);
        buffer_text(h, "\",\"shape\":[");
        for (int32_t d = 0; d < w->rank; d++) {
            snprintf(number, sizeof number, "%s%" PRId64, d > 0 ? "," : "", w->shape[d]);
            buffer_text(h, number);
        }
        snprintf(number, sizeof number, "%" PRId64, offset);
        buffer_text(h, "],\"data_offsets\":[");
        buffer_text(h, number);
        offset += sizes[i];
        snprintf(number, sizeof number, ",%" PRId64 "]}", offset);
        buffer_text(h, number);
    }
    buffer_text(h, "}");
    while ((8 + h->length) % 8 != 0) buffer_text(h, " ");
    return !h->failed;
}

int gr_output_target(const char *path, char *target, size_t size, gr_error *err) {
    if (strlen(path) >= size) return gr_fail(err, "%.100s...: the path is too long", path);
    snprintf(target, size, "%s", path);
    for (int depth = 0; depth < 40; depth++) {
        struct stat info;
        if (lstat(target, &info) != 0) {
            if (errno == ENOENT) return 0;
            return gr_fail(err, "%s: cannot inspect %s: %s", path, target, strerror(errno));
        }
        const char *subject = strcmp(target, path) == 0 ? "" : "the link names a file that ";
        if (S_ISREG(info.st_mode)) return 0;
        if (S_ISDIR(info.st_mode)) return gr_fail(err, "%s: %sis a directory; give a file name", path, subject);
        if (!S_ISLNK(info.st_mode)) {
            return gr_fail(err, "%s: %sis not a regular file (outputs are written to a temporary file and renamed into place)", path,
                           subject);
        }
        char link[4096];
        ssize_t n = readlink(target, link, sizeof link - 1);
        if (n < 0) return gr_fail(err, "%s: cannot read the link %s: %s", path, target, strerror(errno));
        link[n] = '\0';
        const char *slash = strrchr(target, '/');
        size_t keep = link[0] == '/' || slash == NULL ? 0 : (size_t)(slash - target) + 1; /* relative: from the link's directory */
        if (keep + (size_t)n >= size) return gr_fail(err, "%.100s...: the path is too long", path);
        memmove(target + keep, link, (size_t)n + 1);
    }
    return gr_fail(err, "%s: too many levels of symbolic links", path);
}

int gr_safetensors_write(const char *requested, const gr_st_write_tensor *tensors, size_t count,
                         const gr_st_metadata *metadata, size_t metadata_count, gr_error *err) {
    char path[4001];
    if (gr_output_target(requested, path, sizeof path, err) != 0) return -1;
    int64_t *sizes = calloc(count == 0 ? 1 : count, sizeof *sizes);
    if (sizes == NULL) return gr_fail(err, "%s: out of memory", path);
    if (check_write_request(tensors, count, metadata, metadata_count, sizes, err) != 0) {
        free(sizes);
        gr_error_prefix(err, "%s: ", path);
        return -1;
    }
    uint32_t crc = 0;
    for (size_t i = 0; i < count; i++) emit_data(-1, &tensors[i], sizes[i], &crc);
    buffer header = {0};
    if (!build_header(&header, tensors, count, sizes, metadata, metadata_count, crc)) {
        free(header.data);
        free(sizes);
        return gr_fail(err, "%s: out of memory building the header", path);
    }

    /* A fresh temporary name next to the target: O_EXCL makes concurrent writers safe. */
    char temporary[4096 + 64];
    int fd = -1;
    for (unsigned attempt = 0; attempt < 1000; attempt++) {
        snprintf(temporary, sizeof temporary, "%s.tmp-%ld-%u", path, (long)getpid(), attempt);
        fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) break;
    }
    if (fd < 0) {
        gr_fail(err, "%s: cannot create %s: %s", path, temporary, strerror(errno));
        free(header.data);
        free(sizes);
        return -1;
    }

    const char *failure = NULL;
    unsigned char length_bytes[8];
    for (int i = 0; i < 8; i++) length_bytes[i] = (unsigned char)((uint64_t)header.length >> (8 * i));
    if (!write_all(fd, length_bytes, 8) || !write_all(fd, header.data, header.length)) failure = "cannot write";
    for (size_t i = 0; failure == NULL && i < count; i++) {
        if (!emit_data(fd, &tensors[i], sizes[i], NULL)) failure = "cannot write";
    }
    if (failure == NULL && fsync(fd) != 0) failure = "cannot flush";
    int saved = errno;
    if (close(fd) != 0 && failure == NULL) {
        failure = "cannot close";
        saved = errno;
    }
    free(header.data);
    free(sizes);
    if (failure != NULL) {
        unlink(temporary);
        return gr_fail(err, "%s: %s %s: %s", path, failure, temporary, strerror(saved));
    }
    if (rename(temporary, path) != 0) {
        saved = errno;
        unlink(temporary);
        return gr_fail(err, "%s: cannot rename %s to %s: %s", path, temporary, path, strerror(saved));
    }
    sync_directory(path);
    return 0;
}
