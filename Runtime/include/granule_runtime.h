/*
 * granule_runtime.h: the C runtime linked into every program Granule compiles.
 *
 * A compiled program is the object file the code generator emits (the manifest and one entry
 * point per IR function, see "ABI with generated code") linked with this runtime, main.c (the
 * command line of every program) and -lopenblas -lz -lm -lpthread.
 *
 * Conventions
 *   - No global mutable state: everything hangs off a `gr_runtime *` context or an object the
 *     caller owns (gr_program, gr_safetensors, gr_binding).
 *   - A function that can fail takes `gr_error *err` (may be NULL) as its last argument, returns
 *     NULL or a nonzero int on failure and then holds one line in err->message naming the file,
 *     tensor or field (e.g. "w.safetensors: tensor 'w': data_offsets [0, 8] run past the end of
 *     the data buffer (4 bytes)"), without an "error:" prefix or a trailing newline.
 *   - Sizes are int64_t element counts or bytes; a tensor has at most 2^40 elements (as in the IR).
 *   - Little-endian hosts only (safetensors is little-endian; the runtime maps it as is).
 */
#ifndef GRANULE_RUNTIME_H
#define GRANULE_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================ */
/* Errors                                                                                       */
/* ============================================================================================ */

/** Capacity of an error message, including its terminating NUL; longer messages are cut. */
#define GR_ERROR_CAPACITY 4096

/** One error message, filled by the function that failed. */
typedef struct gr_error {
    char message[GR_ERROR_CAPACITY];
} gr_error;

/* ============================================================================================ */
/* Runtime context                                                                              */
/* ============================================================================================ */

/** The context of a running program: its thread pool and its run-time error. Opaque. */
typedef struct gr_runtime gr_runtime;
/** A loaded program (manifest + entry points). Opaque; see "Programs" below. */
typedef struct gr_program gr_program;

/** The largest thread count a runtime accepts. */
#define GR_MAX_THREADS 1024

/**
 * A runtime with `threads` threads in all (the calling thread plus `threads - 1` pool workers).
 * threads <= 0 picks the environment variable GRANULE_THREADS when it is set, else the number of
 * online CPUs. Returns NULL when GRANULE_THREADS is not an integer in [1, GR_MAX_THREADS], when
 * threads > GR_MAX_THREADS, or when memory or threads run out; gr_runtime_create_checked says why.
 */
gr_runtime *gr_runtime_create(int threads);
gr_runtime *gr_runtime_create_checked(int threads, gr_error *err);

/** Stops and joins the workers and frees the context. NULL is ignored. */
void gr_runtime_destroy(gr_runtime *rt);

/** The number of threads gr_parallel_for uses (the caller's included). */
int gr_runtime_threads(const gr_runtime *rt);

/**
 * gr_parallel_for calls the kernel directly, on the calling thread, when count is at most this
 * threshold (default 1: every count >= 2 is split when there are workers). Generated code knows
 * the cost of one work item and should call a kernel directly when its work is too small to be
 * worth waking the pool (a dispatch costs a few microseconds).
 */
void gr_runtime_set_parallel_threshold(gr_runtime *rt, int64_t count);
int64_t gr_runtime_parallel_threshold(const gr_runtime *rt);

/**
 * The current run-time error as one line, or "" when there is none. A gr_raise error is formatted
 * with the attached program's op description: "model.tir:12:3: gather: index 70 is out of range
 * [0, 64)" (without a program, or for an op id the manifest does not list: "op #7: ...").
 * The string lives in `rt` until the next call of gr_error_message or gr_runtime_reset_error.
 * Call it once no kernel is running (after the entry returned).
 */
const char *gr_error_message(gr_runtime *rt);

/** Clears the run-time error (gr_binding_call does it before each call). */
void gr_runtime_reset_error(gr_runtime *rt);

/** Makes gr_error_message describe op ids with `program`'s manifest (which must outlive the
 *  attachment; gr_binding_call attaches its function's program); NULL detaches. */
void gr_runtime_attach_program(gr_runtime *rt, const gr_program *program);

/* ============================================================================================ */
/* ABI with generated code                                                                      */
/* ============================================================================================ */
/*
 * The generated object exports
 *
 *     extern const char granule_manifest[];        NUL-terminated JSON (see "Programs")
 *     extern gr_entry_fn const granule_entries[];  one entry per manifest function, same order
 *
 * and calls gr_parallel_for, gr_raise, gr_failed, gr_philox_word, gr_sgemm_nt, gr_sgemm_small and
 * gr_release_param.
 *
 * Entry calling convention: `args` holds one pointer per IR parameter (in order), then one per
 * result. Results are caller-allocated, 64-byte aligned, sized by the manifest and zero-filled,
 * except that a result the manifest marks `in_place` may be given its parameter's own (writable)
 * buffer, holding the parameter's value: the entry's reads of the parameter all come before, or
 * element by element just before, its writes of that result. Parameters may point into a
 * read-only memory-mapped file: an entry must never write through a parameter pointer, and may rely only on the alignment of the element type (4 bytes for f32)
 * for them. `arena` is a 64-byte aligned block of the function's `arena_bytes` (NULL when 0); its
 * contents are unspecified on entry. An entry returns 0 on success, nonzero after gr_raise.
 * Element layouts: f32 float, f64 double, i32 int32_t, i64 int64_t, i1 uint8_t (0 or 1);
 * row-major and dense. A zero-element tensor still gets a valid, non-NULL pointer.
 */

/** A compiled function: see the calling convention above. */
typedef int32_t (*gr_entry_fn)(void *const *args, void *arena, gr_runtime *rt);

/** A kernel: processes work items [begin, end) with the captured pointers `ctx`. */
typedef void (*gr_kernel_fn)(int64_t begin, int64_t end, void *const *ctx);

/**
 * Runs fn over [0, count) split into contiguous chunks, one per thread at most, on the pool; the
 * calling thread takes chunks too. Returns when every chunk is done. The chunk boundaries depend
 * only on count and the thread count, never on timing. Calls fn(0, count, ctx) directly when
 * count <= the parallel threshold, when the runtime has 1 thread, or when called from inside a
 * kernel or while another thread's gr_parallel_for is running (no nesting, no deadlock).
 * count <= 0 calls nothing. Between jobs the workers spin for up to 0.2 ms (never when the pool
 * has more threads than there are CPUs online), then sleep on a condition variable.
 */
void gr_parallel_for(gr_runtime *rt, gr_kernel_fn fn, int64_t count, void *const *ctx);

/**
 * C = A·Bᵀ + beta·C for row-major f32 matrices: A is m×k (leading dimension lda), B is n×k (ldb), C
 * is m×n (ldc); beta is 0 (C is only written, never read) or 1. For GEMMs with few rows (the
 * decoder at small batches, the LM head, generation steps), where OpenBLAS spends more time packing
 * B than multiplying: B is read in place, four rows at a time, and every element of C is a dot
 * product summed in the same order wherever it lies in C, so results do not depend on how a GEMM
 * is split over threads. Uses AVX2 and FMA when the CPU has them, else cblas_sgemm.
 */
void gr_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                 float beta, float *c, int64_t ldc);

/**
 * C = op(A)·B + beta·C for row-major f32 matrices with a small B (attention's per-head products):
 * op(A) is m×k, stored as m×k (transpose_a 0) or k×m (transpose_a 1) with leading dimension lda;
 * B is k×n (ldb); C is m×n (ldc); beta is 0 (C is only written, never read) or 1. Both operands are
 * read in place (B stays in L1), and every element of C is one FMA sum over k in order, so results
 * do not depend on how a GEMM is split over threads. Uses AVX2 and FMA when the CPU has them, else
 * cblas_sgemm.
 */
void gr_sgemm_small(int32_t transpose_a, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                    int64_t ldb, float beta, float *c, int64_t ldc);

/** Kinds of run-time errors raised by generated code. */
enum {
    GR_RAISE_INDEX = 1,    /**< index `value` out of range [0, bound) (gather, scatter_add) */
    GR_RAISE_LABEL = 2,    /**< label `value` out of range [0, bound) (cross_entropy) */
    GR_RAISE_DIV_ZERO = 3, /**< integer division by zero; value and bound unused */
    GR_RAISE_CAST = 4      /**< float → int cast of NaN or an out-of-range value; value, bound unused */
};

/**
 * Records a run-time error of op `op` (an index into the manifest's "ops"). Thread-safe from any
 * kernel: the first error wins, later ones are ignored. Generated code should stop its work soon
 * after (e.g. check gr_failed between kernels) and return nonzero.
 */
void gr_raise(gr_runtime *rt, int32_t op, int32_t kind, int64_t value, int64_t bound);

/** Nonzero once an error was raised (cheap: one atomic load). */
int32_t gr_failed(gr_runtime *rt);

/**
 * Word `index % 4` of Philox4x32-10 at counter (lo32(b), hi32(b), lo32(offset), hi32(offset)) with
 * b = index / 4 and key (lo32(seed), hi32(seed)), index, offset and seed taken as unsigned 64-bit.
 * Dropout keeps element `index` iff (double)(word >> 8) >= rate * 16777216.0. Bit-identical to
 * Philox.swift's dropoutKeep.
 */
uint32_t gr_philox_word(int64_t seed, int64_t offset, int64_t index);

/**
 * Called by an entry after a read of parameter `param` whose next read is far away (or that is its
 * last): drops the parameter's whole pages from the process if the binding being called maps it
 * from a file and was asked to (gr_binding_release_between_uses); does nothing otherwise, and
 * nothing when rt is not inside gr_binding_call. The next read maps the pages again from the page
 * cache, so a training step's peak holds only the weights of the layers in use.
 */
void gr_release_param(gr_runtime *rt, int32_t param);

/*
 * Profiling. A program compiled with `granule compile --profile` calls gr_profile_step(rt, i)
 * from its entry (the calling thread, never from a kernel) before step i of a function — a kernel
 * launch or a GEMM, described by the manifest's "profile" list (gr_program_profile_step) — and
 * gr_profile_step(rt, -1) when the function ends: the wall time from one call to the next is
 * charged to the step. Nothing is recorded until gr_runtime_profile_enable; programs compiled
 * without --profile never call it.
 */
void gr_profile_step(gr_runtime *rt, int32_t step);
/** Starts collecting (again) for `steps` steps, counters zeroed. */
int gr_runtime_profile_enable(gr_runtime *rt, int32_t steps, gr_error *err);
/** Seconds and calls charged to step i so far (0 when not collecting or out of range). */
double gr_runtime_profile_seconds(const gr_runtime *rt, int32_t step);
int64_t gr_runtime_profile_calls(const gr_runtime *rt, int32_t step);

/* ============================================================================================ */
/* Philox4x32-10                                                                                */
/* ============================================================================================ */

/** Philox4x32-10 (Random123 constants) of `counter` under `key`. */
void gr_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/** Whether dropout with `rate` keeps element `index` (the rule of gr_philox_word). */
int gr_dropout_keep(int64_t seed, int64_t offset, int64_t index, double rate);

/* ============================================================================================ */
/* Memory                                                                                       */
/* ============================================================================================ */

/** Alignment of results, arenas and converted parameters, in bytes. */
#define GR_ALIGNMENT 64

/** `bytes` bytes aligned to GR_ALIGNMENT (a valid block even for 0), or NULL. Not zeroed. */
void *gr_aligned_alloc(size_t bytes);
/** Frees a block of gr_aligned_alloc; NULL is ignored. */
void gr_aligned_free(void *block);

/**
 * A function's scratch memory: one block of `bytes`, page-aligned, mapped lazily (pages that are
 * never touched cost nothing) and released with gr_arena_release. data is NULL when bytes is 0.
 */
typedef struct gr_arena {
    void *data;
    int64_t bytes;
} gr_arena;

/** Maps `bytes` bytes; fails with a message giving the size when the memory is not there. */
int gr_arena_init(gr_arena *arena, int64_t bytes, gr_error *err);
void gr_arena_release(gr_arena *arena);

/* ============================================================================================ */
/* CRC-32                                                                                       */
/* ============================================================================================ */

/** zlib's CRC-32 of `bytes` continuing from `crc` (start with 0). Any length. */
uint32_t gr_crc32(uint32_t crc, const void *bytes, size_t length);

/* ============================================================================================ */
/* Safetensors                                                                                  */
/* ============================================================================================ */
/*
 * [8 bytes: N, little-endian u64][N bytes: JSON header][data buffer]. The header maps tensor names
 * to {"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__" object of
 * strings. The reader checks exactly what Sources/GranuleInterpreter/Safetensors.swift checks,
 * with the same messages: header length, JSON, dtypes, shapes (at most 2^40 elements), byte sizes,
 * offsets in range, the tensors tiling the data buffer (no overlap, no hole), unique names, BOOL
 * bytes 0 or 1. Beyond Swift it rejects tensor names containing NUL (C strings cannot hold them).
 *
 * Granule's own checkpoints carry "__metadata__": {"granule_crc32": "<8 lowercase hex digits>"},
 * the CRC-32 of the data buffer; the reader verifies it when present ("checkpoint is corrupt:
 * CRC mismatch ...").
 */

/** Element types of safetensors files. F16 and BF16 are read as f32. */
typedef enum gr_st_dtype {
    GR_ST_F32 = 0,
    GR_ST_F64 = 1,
    GR_ST_I32 = 2,
    GR_ST_I64 = 3,
    GR_ST_BOOL = 4,
    GR_ST_F16 = 5,
    GR_ST_BF16 = 6
} gr_st_dtype;

/** "F32", "F64", "I32", "I64", "BOOL", "F16", "BF16" ("?" for other values). */
const char *gr_st_dtype_name(gr_st_dtype dtype);
/** Bytes per element (0 for other values). */
size_t gr_st_dtype_size(gr_st_dtype dtype);

/** One tensor of an opened file. `data` points into the read-only mapping and is aligned only as
 *  the file happens to place it (use gr_st_tensor_read_f32 or memcpy for an aligned copy). */
typedef struct gr_st_tensor {
    const char *name;
    gr_st_dtype dtype;
    int32_t rank;
    const int64_t *shape;
    int64_t count;      /**< elements */
    int64_t bytes;      /**< count * element size */
    const void *data;   /**< non-NULL even when bytes is 0 */
} gr_st_tensor;

/** An opened, validated safetensors file. Opaque. */
typedef struct gr_safetensors gr_safetensors;

/** Open flags. */
enum {
    GR_ST_SKIP_CRC = 1 /**< do not verify granule_crc32 (it still must be well-formed) */
};

/** Maps the file at `path` read-only and validates it; NULL with err on any problem. */
gr_safetensors *gr_safetensors_open(const char *path, int flags, gr_error *err);
/** Unmaps the file; NULL is ignored. Tensor pointers die with it. */
void gr_safetensors_close(gr_safetensors *file);

const char *gr_safetensors_path(const gr_safetensors *file);
/** Number of tensors. */
int64_t gr_safetensors_count(const gr_safetensors *file);
/** Tensor `i` in the order of the data offsets (as Safetensors.swift returns them), or NULL. */
const gr_st_tensor *gr_safetensors_tensor(const gr_safetensors *file, int64_t i);
/** The tensor called `name`, or NULL. */
const gr_st_tensor *gr_safetensors_find(const gr_safetensors *file, const char *name);
/** Number of "__metadata__" entries, entry `i` (file order) and lookup by key (NULL if absent). */
int64_t gr_safetensors_metadata_count(const gr_safetensors *file);
int gr_safetensors_metadata(const gr_safetensors *file, int64_t i, const char **key, const char **value);
const char *gr_safetensors_metadata_find(const gr_safetensors *file, const char *key);

/**
 * Copies tensor `t` of `file` to `out` (room for t->count floats, any alignment of float),
 * widening F16/BF16 exactly (as HalfPrecision.swift: a NaN half becomes the canonical quiet NaN).
 * Fails, naming the file and tensor, for dtypes other than F32, F16 and BF16.
 */
int gr_st_tensor_read_f32(const gr_safetensors *file, const gr_st_tensor *t, float *out, gr_error *err);

/** One tensor to write. */
typedef struct gr_st_write_tensor {
    const char *name;
    gr_st_dtype dtype;    /**< any file dtype; BOOL bytes are written as 0 or 1 */
    int32_t rank;
    const int64_t *shape; /**< may be NULL when rank is 0 */
    const void *data;     /**< count * element size bytes, any alignment; may be NULL if empty */
} gr_st_write_tensor;

/** One "__metadata__" entry to write. */
typedef struct gr_st_metadata {
    const char *key;
    const char *value;
} gr_st_metadata;

/**
 * Writes `tensors` (header entries and data in the given order) and `metadata` plus
 * "granule_crc32" (a reserved key) to `path` atomically: a temporary file in the same directory,
 * written, fsynced, then renamed over `path`; on any failure the temporary file is removed and
 * `path` keeps its old contents. Metadata keys are written sorted, the header padded with spaces
 * so the data buffer starts 8-byte aligned (the layout of Safetensors.swift's writer).
 */
int gr_safetensors_write(const char *path, const gr_st_write_tensor *tensors, size_t count,
                         const gr_st_metadata *metadata, size_t metadata_count, gr_error *err);

/* ============================================================================================ */
/* Programs                                                                                     */
/* ============================================================================================ */
/*
 * The manifest the generated object carries (strict: unknown or missing fields are errors):
 *
 *   {"version": 1,
 *    "functions": [{"name": "loss_grad", "arena_bytes": 123456,
 *        "params":  [{"name": "input_ids", "dtype": "i64", "shape": [2, 6], "role": "input"}, ...],
 *        "results": [{"name": "loss", "dtype": "f32", "shape": [], "writes": -1}, ...]}, ...],
 *    "ops": ["model.tir:12:3: gather", ...],
 *    "step_function": "loss_grad",
 *    "generation": {...},                          optional: see gr_generation_config
 *    "profile": ["loss_grad: gemm ...", ...]}      optional: see gr_profile_step
 *
 * dtype: f32 f64 i32 i64 i1; role: input frozen trainable state; writes: -1 or the index of a
 * trainable or state parameter of the same dtype and shape, each written at most once;
 * step_function: a function name, or null / absent when the program has none. Names are unique
 * among a function's params and among its results; function names are unique.
 */

/** IR element types. */
typedef enum gr_dtype { GR_F32 = 0, GR_F64 = 1, GR_I32 = 2, GR_I64 = 3, GR_I1 = 4 } gr_dtype;
/** "f32", "f64", "i32", "i64", "i1" ("?" for other values). */
const char *gr_dtype_name(gr_dtype dtype);
/** Bytes per element: 4, 8, 4, 8, 1 (0 for other values). */
size_t gr_dtype_size(gr_dtype dtype);

/** Parameter roles; results have GR_ROLE_RESULT. */
typedef enum gr_role {
    GR_ROLE_INPUT = 0,
    GR_ROLE_FROZEN = 1,
    GR_ROLE_TRAINABLE = 2,
    GR_ROLE_STATE = 3,
    GR_ROLE_RESULT = 4
} gr_role;
/** "input", "frozen", "trainable", "state", "result". */
const char *gr_role_name(gr_role role);

/** A parameter or result of a function. */
typedef struct gr_value_spec {
    const char *name;
    gr_dtype dtype;
    gr_role role;
    int32_t rank;
    const int64_t *shape;
    int64_t count;  /**< elements */
    int64_t bytes;  /**< count * element size */
    int32_t writes; /**< results: index of the parameter it replaces, or -1; params: -1 */
    bool in_place;  /**< results: may share the buffer of parameter `writes` (the code generator
                         proved every read of the parameter precedes or is the write of each
                         element); see GR_BIND_RESULTS_IN_PLACE */
    bool released;  /**< params: the entry calls gr_release_param for it (a read-only parameter of
                         64 KiB or more: after its last read, and after reads far from the
                         next); what `bench` reports. Under GR_BIND_RELEASE_MAPPED the others'
                         pages are dropped once, at binding */
} gr_value_spec;

/** A function of a program. */
typedef struct gr_function {
    const char *name;
    int32_t index;          /**< position in the manifest and in granule_entries */
    int64_t arena_bytes;
    int32_t param_count;
    int32_t result_count;
    const gr_value_spec *params;
    const gr_value_spec *results;
    gr_entry_fn entry;      /**< NULL when the program was loaded without entries */
    const gr_program *program;
} gr_function;

/**
 * Parses and checks `manifest` (NUL-terminated JSON); errors start with "manifest: " and name the
 * field ("manifest: functions[0].params[2].dtype: expected one of f32, f64, i32, i64, i1, got
 * \"f16\""). `entries` holds one entry per function in manifest order, or is NULL (the functions
 * can be described but not called).
 */
gr_program *gr_program_load(const char *manifest, gr_entry_fn const *entries, gr_error *err);
void gr_program_free(gr_program *program);

int32_t gr_program_function_count(const gr_program *program);
/** Function `i` in manifest order, or NULL. */
const gr_function *gr_program_function(const gr_program *program, int32_t i);
/** The function called `name`, or NULL. */
const gr_function *gr_program_find(const gr_program *program, const char *name);
/** The manifest's step_function, or NULL when it has none. */
const gr_function *gr_program_step_function(const gr_program *program);
/**
 * What the model's config says about generation (the manifest's optional "generation" object,
 * written by `granule compile` for model specs): token ids are -1 when the model has none.
 *
 *   "generation": {"family": "bart", "vocab_size": 50465, "decoder_start_token_id": 2,
 *                  "eos_token_id": 2, "pad_token_id": 1, "bos_token_id": 0, "forced_eos_token_id": 2,
 *                  "no_repeat_ngram_size": 3, "early_stopping": true}
 */
typedef struct gr_generation_config {
    const char *family; /**< "bart" or "t5" */
    int64_t vocab_size;
    int64_t decoder_start_token_id;
    int64_t eos_token_id;
    int64_t pad_token_id;
    int64_t bos_token_id;        /**< -1: none */
    int64_t forced_eos_token_id; /**< -1: none */
    int64_t no_repeat_ngram_size; /**< 0: off */
    int early_stopping;
} gr_generation_config;

/** The program's generation config, or NULL when the manifest has none. */
const gr_generation_config *gr_program_generation(const gr_program *program);

/** Number of profiled steps (the manifest's optional "profile" list of descriptions, e.g.
 *  "loss_grad: gemm %t = 1 × [224×768]·[768×768]"; 0 without --profile) and description i. */
int32_t gr_program_profile_count(const gr_program *program);
const char *gr_program_profile_step(const gr_program *program, int32_t i);

/** Number of op descriptions and description `op` (NULL when out of range). */
int32_t gr_program_op_count(const gr_program *program);
const char *gr_program_op(const gr_program *program, int32_t op);

/** Writes `spec`'s type in IR form, e.g. "f32[2,3]", to buffer (always NUL-terminated). */
void gr_value_spec_type(const gr_value_spec *spec, char *buffer, size_t size);

/* ---- Binding: parameters from files, results and arena allocated, one call ---------------- */

/** A function with every argument in place, ready to call (possibly many times). Opaque. */
typedef struct gr_binding gr_binding;

/** Binding flags. */
enum {
    GR_BIND_ALLOW_MISSING = 1, /**< leave parameters found in no file unbound (set them with
                                    gr_binding_set_param before calling) instead of failing */
    GR_BIND_RESULTS_IN_PLACE = 2, /**< results marked in_place share their parameter's buffer: a
                                      call updates the parameter (an optimizer step needs no
                                      copy back, and no second copy of the parameters and
                                      moments). Such parameters are bound as owned, writable
                                      copies, and gr_binding_set_param must give them writable
                                      memory. These results are not zero-filled. */
    GR_BIND_RELEASE_MAPPED = 4 /**< parameters pointing straight into a file's mapping are
                                    released between uses (gr_binding_release_between_uses) */
};

/**
 * Binds `function`: finds every parameter by name in `files` (a name in two files is an error),
 * checks its dtype and shape (f32 accepts F16 and BF16, converted to an aligned f32 copy; other
 * parameters point straight into the mapping, or into an aligned copy when the file's data is not
 * aligned for the element type), allocates the results (zeroed) and the arena. Errors name the
 * parameter, the files searched, and expected vs. got:
 *   "function 'loss_grad': parameter 'w' (f32[4,4], frozen) is in none of: a.safetensors, b.safetensors"
 *   "b.safetensors: tensor 'w': parameter of function 'loss_grad' needs f32[4,4], got F32 [4, 3]"
 * The files must stay open while the binding lives.
 */
gr_binding *gr_binding_create(const gr_function *function, gr_safetensors *const *files,
                              size_t file_count, int flags, gr_error *err);
void gr_binding_free(gr_binding *binding);

/** Points parameter `i` at caller-owned memory (of the parameter's type; it is not copied). */
int gr_binding_set_param(gr_binding *binding, int32_t i, const void *data, gr_error *err);

/**
 * Lets calls of the binding drop parameter `i`'s pages between its reads (gr_release_param), when
 * the parameter points at tensor `tensor` of `file` itself (mapped read-only, not a copy), and
 * drops them at once: the pages are mapped again from the file when next read. Returns 1 if the
 * parameter will be released, 0 if it is not bound to that tensor's mapped data (then nothing
 * changes). The file must stay open while the binding lives; gr_binding_set_param on `i` ends the
 * release.
 */
int gr_binding_release_between_uses(gr_binding *binding, int32_t i, const gr_safetensors *file, const gr_st_tensor *tensor);

/**
 * Attaches the function's program to rt, clears rt's error and calls the entry. Returns 0 on
 * success; otherwise err holds rt's error message (e.g. "model.tir:12:3: gather: index 70 is
 * out of range [0, 64)") or says which parameter is unbound.
 */
int gr_binding_call(gr_runtime *rt, gr_binding *binding, gr_error *err);

const gr_function *gr_binding_function(const gr_binding *binding);
/** Parameter `i`'s data (NULL if unbound or out of range). */
const void *gr_binding_param(const gr_binding *binding, int32_t i);
/** Result `i`'s buffer (NULL if out of range); valid until gr_binding_free. */
void *gr_binding_result(const gr_binding *binding, int32_t i);
/** Whether result `i` shares its parameter's buffer in this binding (GR_BIND_RESULTS_IN_PLACE). */
bool gr_binding_result_in_place(const gr_binding *binding, int32_t i);
/** Zero-fills every result that is not in place (the state the calling convention promises). */
void gr_binding_clear_results(gr_binding *binding);

/** Writes every result under its name (F32 F64 I32 I64 BOOL) with gr_safetensors_write. */
int gr_binding_write_results(const gr_binding *binding, const char *path, gr_error *err);

#ifdef __cplusplus
}
#endif

#endif /* GRANULE_RUNTIME_H */
