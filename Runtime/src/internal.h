/*
 * internal.h: declarations shared by the runtime's source files and its tests, not part of the
 * public API (granule_runtime.h).
 */
#ifndef GRANULE_RUNTIME_INTERNAL_H
#define GRANULE_RUNTIME_INTERNAL_H

#include "granule_runtime.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Granule runtime supports little-endian hosts only"
#endif

#if defined(__GNUC__)
#define GR_PRINTF(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define GR_PRINTF(format_index, first_arg)
#endif

/* ---- errors.c ------------------------------------------------------------------------------ */

/** Sets err->message (if err is not NULL) from a printf format; returns -1 for `return gr_fail(...)`. */
int gr_fail(gr_error *err, const char *format, ...) GR_PRINTF(2, 3);
/** Prepends printf-formatted text to err->message (if err is not NULL). */
void gr_error_prefix(gr_error *err, const char *format, ...) GR_PRINTF(2, 3);

/** Appends formatted text to a fixed buffer, keeping it NUL-terminated (cuts what does not fit). */
typedef struct gr_text {
    char *data;
    size_t size;   /**< capacity including the NUL */
    size_t length; /**< characters written so far (capped at size - 1) */
} gr_text;
void gr_text_init(gr_text *text, char *buffer, size_t size);
void gr_text_append(gr_text *text, const char *format, ...) GR_PRINTF(2, 3);
/** Appends `length` bytes of `s` quoted for messages ('\n' → "\\n", other controls as \xNN). */
void gr_text_append_escaped(gr_text *text, const char *s, size_t length);
/** Appends a shape as Swift prints an array: "[2, 3]" ("[]" for a scalar). */
void gr_text_append_shape(gr_text *text, const int64_t *shape, int32_t rank);

/* ---- runtime.c / threadpool.c ---------------------------------------------------------------- */

typedef struct gr_pool {
    pthread_mutex_t lock;     /**< only for sleeping and waking */
    pthread_cond_t wake;      /**< sleeping workers wait here for a job */
    pthread_cond_t done;      /**< a sleeping caller waits here for the job's end */
    pthread_t *workers;
    int worker_count;
    int64_t spin_ns;          /**< how long a waiting thread spins before it sleeps (0: never) */
    atomic_bool stopping;
    atomic_flag busy;         /**< a gr_parallel_for owns the pool */
    _Atomic uint64_t generation; /**< bumped to publish each job */
    _Atomic uint64_t closed;     /**< the generation of the last job closed to new workers */
    atomic_int active;        /**< workers inside (or checking) the current job */
    atomic_int sleepers;      /**< workers sleeping on `wake` */
    atomic_bool caller_sleeping; /**< the caller sleeps on `done` */
    /* The current job (written before `generation` is bumped, stable while it is open). */
    gr_kernel_fn fn;
    void *const *ctx;
    int64_t count;
    int64_t chunks;
    atomic_int_fast64_t next_chunk; /**< next chunk index to claim */
    atomic_int_fast64_t finished;   /**< chunks done */
} gr_pool;

/** What gr_raise records. `state`: 0 none, 1 being written, 2 complete. */
typedef struct gr_raised {
    atomic_int state;
    int32_t op;
    int32_t kind;
    int64_t value;
    int64_t bound;
} gr_raised;

struct gr_runtime {
    int threads;
    int64_t parallel_threshold;
    gr_pool pool;
    gr_raised raised;
    const gr_program *program;
    const struct gr_binding *binding; /* the binding gr_binding_call is running (gr_release_param) */
    char message[GR_ERROR_CAPACITY];
    /* Profiling (gr_profile_step): per-step totals, the step being timed and since when. */
    double *profile_seconds;
    int64_t *profile_calls;
    int32_t profile_steps;
    int32_t profile_current;
    double profile_start;
};

int gr_pool_start(gr_pool *pool, int workers, gr_error *err);
void gr_pool_stop(gr_pool *pool);

/* ---- json.c ------------------------------------------------------------------------------------ */

typedef enum gr_json_kind {
    GR_JSON_NULL,
    GR_JSON_BOOL,
    GR_JSON_NUMBER,
    GR_JSON_STRING,
    GR_JSON_ARRAY,
    GR_JSON_OBJECT
} gr_json_kind;

typedef struct gr_json gr_json;
typedef struct gr_json_member gr_json_member;

/** A parsed JSON value. Strings are NUL-terminated copies that may also contain NULs (\u0000):
 *  `length` is authoritative. Numbers keep their literal text (validated against the grammar). */
struct gr_json {
    gr_json_kind kind;
    size_t offset; /**< byte offset of the value in the parsed text */
    union {
        bool boolean;
        struct {
            char *text;
            size_t length;
        } string; /**< GR_JSON_STRING and GR_JSON_NUMBER */
        struct {
            gr_json *items;
            size_t count;
        } array;
        struct {
            gr_json_member *members; /**< in text order, duplicates kept */
            size_t count;
        } object;
    } as;
};

struct gr_json_member {
    char *key;
    size_t key_length;
    gr_json value;
};

/** Deep nesting is never needed by a header or manifest and would otherwise risk the stack. */
#define GR_JSON_MAX_DEPTH 64

typedef struct gr_json_error {
    char message[160];
    size_t offset; /**< byte offset in the parsed text */
} gr_json_error;

/**
 * Parses one JSON value (RFC 8259, strict: UTF-8 checked, no trailing commas, no comments)
 * followed only by whitespace; the messages are those of GranuleSupport/JSON.swift.
 * Returns a heap value to free with gr_json_free, or NULL with `error` set.
 */
gr_json *gr_json_parse(const char *text, size_t length, gr_json_error *error);
void gr_json_free(gr_json *value);

/** Whether bytes are well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF). */
bool gr_utf8_valid(const unsigned char *bytes, size_t length);
/** "an object", "an array", "a string", "a number", "a boolean", "null". */
const char *gr_json_kind_name(gr_json_kind kind);
/** JSON.swift's integerValue: true for a number that is an exact integer in range (3, 3.0, 3e2,
 *  |x| < 9e18 for non-integer literals), false otherwise. */
bool gr_json_integer(const gr_json *value, int64_t *out);
/** The value of a number (correctly rounded by strtod), false if not a number. */
bool gr_json_double(const gr_json *value, double *out);
/** The first member called `key` and how many members have that key (0 → NULL). */
const gr_json *gr_json_member_find(const gr_json *object, const char *key, int *occurrences);
/** Whether a string value equals the C string `s` (no embedded NULs). */
bool gr_json_string_is(const gr_json *value, const char *s);
/** Appends `value` as compact JSON text (JSON.swift's `text`), e.g. "1.5", "\"2\"", "[1,2]". */
void gr_json_append_text(gr_text *text, const gr_json *value);
/** Appends `s` as a JSON string literal with JSON.swift's escapes. */
void gr_json_append_string(gr_text *text, const char *s, size_t length);

/* ---- safetensors.c ----------------------------------------------------------------------------- */

/** Widening of binary16 / bfloat16 to float (exact; as HalfPrecision.swift). */
float gr_f16_to_f32(uint16_t bits);
float gr_bf16_to_f32(uint16_t bits);

/* ---- program.c ---------------------------------------------------------------------------------- */

/**
 * Where an output at `path` is written (into `target`, `size` bytes): `path` itself when it is a
 * regular file or does not exist, the file a symbolic link (chain) names; a directory, device,
 * FIFO or socket is refused, since writing through a temporary file and a rename would replace
 * it ("ck.safetensors: is a directory; give a file name").
 */
int gr_output_target(const char *path, char *target, size_t size, gr_error *err);
/**
 * Drops this process's resident pages of tensor t's data (the whole pages inside it; neighbours'
 * shared pages stay) once a copy of it exists. The mapping is private and read-only, so a later
 * read simply faults the file's bytes back in: correctness never depends on it, peak RSS does.
 */
void gr_safetensors_release(const gr_safetensors *file, const gr_st_tensor *t);
/* Whether t's data lies in the file's read-only mapping (not in memory read from the file). */
bool gr_safetensors_maps(const gr_safetensors *file, const gr_st_tensor *t);
/** Whether a file tensor of dtype `got` can feed an IR dtype `want` (f32 also takes F16 and BF16). */
bool gr_st_dtype_feeds(gr_dtype want, gr_st_dtype got);
/** The file dtype that holds an IR dtype exactly. */
gr_st_dtype gr_st_dtype_of(gr_dtype dtype);
/**
 * The data parameter `spec` reads from tensor t of f (dtype and shape already checked): the
 * mapping itself when `may_map` and the dtype and alignment fit, else an aligned copy (F16/BF16
 * widened) that is also stored in *owned for the caller to gr_aligned_free. After a copy the
 * tensor's mapped pages are released (gr_safetensors_release), so the process holds it once.
 */
int gr_param_data(const gr_value_spec *spec, const gr_safetensors *f, const gr_st_tensor *t, bool may_map, void **data, void **owned,
                  gr_error *err);

/* ---- crc.c --------------------------------------------------------------------------------------- */

/** Writes crc as 8 lowercase hex digits and a NUL. */
void gr_crc32_format(uint32_t crc, char out[9]);
/** Parses exactly 8 lowercase hex digits. */
bool gr_crc32_parse(const char *text, size_t length, uint32_t *crc);

#endif
