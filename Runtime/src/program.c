/*
 * program.c: the manifest of a compiled program and the binding of its functions' arguments.
 *
 * Loading checks the manifest strictly (every field present once, no unknown field, types, shapes
 * of at most 2^40 elements, `writes` pointing at a trainable or state parameter of the same type)
 * and names the field of any problem: "manifest: functions[0].results[1].writes: ...".
 *
 * Binding a function:
 *  1. each parameter is looked up by name in every given file (found in none, or in two, is an
 *     error naming the files), its dtype and shape checked against the manifest;
 *  2. a tensor whose file dtype is the parameter's and whose data is aligned for it is used in
 *     place (zero-copy from the read-only mapping); F16/BF16 for f32, or misaligned data, get a
 *     64-byte aligned copy;
 *  3. results get zeroed 64-byte aligned buffers, the function its arena.
 * Calling attaches the program to the runtime (for op descriptions in errors), clears the error,
 * calls the entry and turns a raised error into the binding's error message.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMENTS ((int64_t)1 << 40)

/* ---- dtypes and roles ---------------------------------------------------------------------------- */

static const char *const ir_dtype_names[] = {"f32", "f64", "i32", "i64", "i1"};
static const size_t ir_dtype_sizes[] = {4, 8, 4, 8, 1};
static const char *const role_names[] = {"input", "frozen", "trainable", "state", "result"};

const char *gr_dtype_name(gr_dtype dtype) {
    return (unsigned)dtype < 5 ? ir_dtype_names[dtype] : "?";
}

size_t gr_dtype_size(gr_dtype dtype) {
    return (unsigned)dtype < 5 ? ir_dtype_sizes[dtype] : 0;
}

const char *gr_role_name(gr_role role) {
    return (unsigned)role < 5 ? role_names[role] : "?";
}

void gr_value_spec_type(const gr_value_spec *spec, char *out, size_t size) {
    gr_text t;
    gr_text_init(&t, out, size);
    gr_text_append(&t, "%s[", gr_dtype_name(spec->dtype));
    for (int32_t i = 0; i < spec->rank; i++) gr_text_append(&t, "%s%" PRId64, i > 0 ? "," : "", spec->shape[i]);
    gr_text_append(&t, "]");
}

/* ---- manifest ------------------------------------------------------------------------------------ */

struct gr_program {
    gr_json *json; /* owns every name */
    gr_function *functions;
    int32_t function_count;
    gr_value_spec *specs;
    int64_t *dims;
    const char **ops;
    int32_t op_count;
    int32_t step; /* -1: none */
    bool has_generation;
    gr_generation_config generation;
    const char **profile; /* the manifest's "profile" descriptions */
    int32_t profile_count;
};

/* Where in the manifest a problem is: "functions[0].params[2]". */
typedef struct place {
    char text[128];
} place;

static place place_at(const place *parent, const char *format, ...) GR_PRINTF(2, 3);
static place place_at(const place *parent, const char *format, ...) {
    place p;
    char tail[96];
    va_list args;
    va_start(args, format);
    vsnprintf(tail, sizeof tail, format, args);
    va_end(args);
    gr_text text;
    gr_text_init(&text, p.text, sizeof p.text);
    if (parent != NULL && parent->text[0] != '\0') gr_text_append(&text, "%s%s", parent->text, tail[0] == '[' ? "" : ".");
    gr_text_append(&text, "%s", tail);
    return p;
}

static int manifest_fail(gr_error *err, const place *where, const char *format, ...) GR_PRINTF(3, 4);
static int manifest_fail(gr_error *err, const place *where, const char *format, ...) {
    if (err == NULL) return -1;
    char message[GR_ERROR_CAPACITY];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (where->text[0] == '\0') return gr_fail(err, "manifest: %s", message);
    return gr_fail(err, "manifest: %s: %s", where->text, message);
}

/* Checks that `object` is an object whose keys are all in `allowed` (NULL-terminated), each once,
 * and that the first `required` of them are present. */
static int check_object(const gr_json *object, const place *where, const char *const *allowed, int required, gr_error *err) {
    if (object->kind != GR_JSON_OBJECT) return manifest_fail(err, where, "expected an object, got %s", gr_json_kind_name(object->kind));
    for (size_t i = 0; i < object->as.object.count; i++) {
        const gr_json_member *m = &object->as.object.members[i];
        bool known = false;
        for (const char *const *a = allowed; *a != NULL; a++) {
            if (m->key_length == strlen(*a) && memcmp(m->key, *a, m->key_length) == 0) known = true;
        }
        char key[64];
        gr_text t;
        gr_text_init(&t, key, sizeof key);
        gr_text_append_escaped(&t, m->key, m->key_length);
        if (!known) return manifest_fail(err, where, "unknown field '%s'", key);
        int occurrences;
        gr_json_member_find(object, m->key, &occurrences);
        if (occurrences > 1) return manifest_fail(err, where, "field '%s' appears more than once", key);
    }
    for (int i = 0; i < required; i++) {
        if (gr_json_member_find(object, allowed[i], NULL) == NULL) return manifest_fail(err, where, "missing field '%s'", allowed[i]);
    }
    return 0;
}

/* A string field without NULs (and non-empty when `nonempty`). */
static int get_string(const gr_json *value, const place *where, bool nonempty, const char **out, gr_error *err) {
    if (value->kind != GR_JSON_STRING) return manifest_fail(err, where, "expected a string, got %s", gr_json_kind_name(value->kind));
    if (memchr(value->as.string.text, '\0', value->as.string.length) != NULL) {
        return manifest_fail(err, where, "the string contains a NUL character");
    }
    if (nonempty && value->as.string.length == 0) return manifest_fail(err, where, "expected a non-empty string");
    *out = value->as.string.text;
    return 0;
}

static int get_integer(const gr_json *value, const place *where, int64_t *out, gr_error *err) {
    if (!gr_json_integer(value, out)) {
        char text[64];
        gr_text t;
        gr_text_init(&t, text, sizeof text);
        gr_json_append_text(&t, value);
        return manifest_fail(err, where, "expected an integer, got %s %s", gr_json_kind_name(value->kind), text);
    }
    return 0;
}

/* One of `names` (count of them); the message lists them. */
static int get_choice(const gr_json *value, const place *where, const char *const *names, int count, int *out, gr_error *err) {
    const char *s;
    if (get_string(value, where, false, &s, err) != 0) return -1;
    for (int i = 0; i < count; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    char list[128], got[96];
    gr_text t;
    gr_text_init(&t, list, sizeof list);
    for (int i = 0; i < count; i++) gr_text_append(&t, "%s%s", i > 0 ? ", " : "", names[i]);
    gr_text_init(&t, got, sizeof got);
    gr_json_append_text(&t, value);
    return manifest_fail(err, where, "expected one of %s, got %s", list, got);
}

/* Counts the dims of every param and result, to size the storage. */
static int64_t count_dims(const gr_json *functions) {
    int64_t total = 0;
    for (size_t f = 0; f < functions->as.array.count; f++) {
        const gr_json *fn = &functions->as.array.items[f];
        const char *lists[] = {"params", "results"};
        for (int l = 0; l < 2; l++) {
            const gr_json *list = gr_json_member_find(fn, lists[l], NULL);
            if (list == NULL || list->kind != GR_JSON_ARRAY) continue;
            for (size_t i = 0; i < list->as.array.count; i++) {
                const gr_json *shape = gr_json_member_find(&list->as.array.items[i], "shape", NULL);
                if (shape != NULL && shape->kind == GR_JSON_ARRAY) total += (int64_t)shape->as.array.count;
            }
        }
    }
    return total;
}

static int64_t count_specs(const gr_json *functions) {
    int64_t total = 0;
    for (size_t f = 0; f < functions->as.array.count; f++) {
        const gr_json *fn = &functions->as.array.items[f];
        const gr_json *params = gr_json_member_find(fn, "params", NULL);
        const gr_json *results = gr_json_member_find(fn, "results", NULL);
        if (params != NULL && params->kind == GR_JSON_ARRAY) total += (int64_t)params->as.array.count;
        if (results != NULL && results->kind == GR_JSON_ARRAY) total += (int64_t)results->as.array.count;
    }
    return total;
}

/* Parses a param or result into `spec`, taking dims from *dims. */
static int parse_value_spec(const gr_json *object, const place *where, bool is_result, gr_value_spec *spec, int64_t **dims,
                            gr_error *err) {
    static const char *const param_fields[] = {"name", "dtype", "shape", "role", "released", NULL};
    static const char *const result_fields[] = {"name", "dtype", "shape", "writes", "in_place", NULL};
    if (check_object(object, where, is_result ? result_fields : param_fields, 4, err) != 0) return -1;
    place p = place_at(where, "name");
    if (get_string(gr_json_member_find(object, "name", NULL), &p, true, &spec->name, err) != 0) return -1;
    int choice;
    p = place_at(where, "dtype");
    if (get_choice(gr_json_member_find(object, "dtype", NULL), &p, ir_dtype_names, 5, &choice, err) != 0) return -1;
    spec->dtype = (gr_dtype)choice;
    p = place_at(where, "shape");
    const gr_json *shape = gr_json_member_find(object, "shape", NULL);
    if (shape->kind != GR_JSON_ARRAY) return manifest_fail(err, &p, "expected an array of integers, got %s", gr_json_kind_name(shape->kind));
    spec->rank = (int32_t)shape->as.array.count;
    spec->shape = *dims;
    int64_t bounded = 1;
    bool zero = false;
    for (size_t i = 0; i < shape->as.array.count; i++) {
        place d = place_at(&p, "[%zu]", i);
        int64_t dim;
        if (get_integer(&shape->as.array.items[i], &d, &dim, err) != 0) return -1;
        if (dim < 0) return manifest_fail(err, &d, "negative dimension %" PRId64, dim);
        *(*dims)++ = dim;
        if (dim == 0) {
            zero = true;
        } else if (dim > MAX_ELEMENTS || bounded > MAX_ELEMENTS / dim) {
            return manifest_fail(err, &p, "more than 2^40 elements");
        } else {
            bounded *= dim;
        }
    }
    spec->count = zero ? 0 : bounded;
    spec->bytes = spec->count * (int64_t)ir_dtype_sizes[spec->dtype];
    spec->writes = -1;
    spec->in_place = false;
    spec->released = false;
    if (is_result) {
        spec->role = GR_ROLE_RESULT;
        p = place_at(where, "writes");
        int64_t writes;
        if (get_integer(gr_json_member_find(object, "writes", NULL), &p, &writes, err) != 0) return -1;
        if (writes < -1 || writes > INT32_MAX) return manifest_fail(err, &p, "expected -1 or a parameter index, got %" PRId64, writes);
        spec->writes = (int32_t)writes;
        const gr_json *in_place = gr_json_member_find(object, "in_place", NULL);
        if (in_place != NULL) {
            p = place_at(where, "in_place");
            if (in_place->kind != GR_JSON_BOOL) return manifest_fail(err, &p, "expected true or false, got %s", gr_json_kind_name(in_place->kind));
            if (in_place->as.boolean && writes < 0) return manifest_fail(err, &p, "a result that writes no parameter cannot be in place");
            spec->in_place = in_place->as.boolean;
        }
    } else {
        p = place_at(where, "role");
        if (get_choice(gr_json_member_find(object, "role", NULL), &p, role_names, 4, &choice, err) != 0) return -1;
        spec->role = (gr_role)choice;
        const gr_json *released = gr_json_member_find(object, "released", NULL);
        if (released != NULL) {
            p = place_at(where, "released");
            if (released->kind != GR_JSON_BOOL) return manifest_fail(err, &p, "expected true or false, got %s", gr_json_kind_name(released->kind));
            spec->released = released->as.boolean;
        }
    }
    return 0;
}

static bool same_type(const gr_value_spec *a, const gr_value_spec *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int32_t i = 0; i < a->rank; i++) {
        if (a->shape[i] != b->shape[i]) return false;
    }
    return true;
}

static int parse_function(const gr_json *object, const place *where, gr_function *fn, gr_value_spec **specs, int64_t **dims,
                          gr_error *err) {
    static const char *const fields[] = {"name", "arena_bytes", "params", "results", NULL};
    if (check_object(object, where, fields, 4, err) != 0) return -1;
    place p = place_at(where, "name");
    if (get_string(gr_json_member_find(object, "name", NULL), &p, true, &fn->name, err) != 0) return -1;
    p = place_at(where, "arena_bytes");
    if (get_integer(gr_json_member_find(object, "arena_bytes", NULL), &p, &fn->arena_bytes, err) != 0) return -1;
    if (fn->arena_bytes < 0) return manifest_fail(err, &p, "negative size %" PRId64, fn->arena_bytes);

    const char *lists[] = {"params", "results"};
    for (int l = 0; l < 2; l++) {
        place lp = place_at(where, "%s", lists[l]);
        const gr_json *list = gr_json_member_find(object, lists[l], NULL);
        if (list->kind != GR_JSON_ARRAY) return manifest_fail(err, &lp, "expected an array, got %s", gr_json_kind_name(list->kind));
        if (list->as.array.count > (size_t)INT32_MAX / 2) return manifest_fail(err, &lp, "too many entries");
        gr_value_spec *first = *specs;
        for (size_t i = 0; i < list->as.array.count; i++) {
            place ip = place_at(&lp, "[%zu]", i);
            if (parse_value_spec(&list->as.array.items[i], &ip, l == 1, *specs, dims, err) != 0) return -1;
            for (size_t j = 0; j < i; j++) {
                if (strcmp(first[j].name, (*specs)->name) == 0) {
                    place np = place_at(&ip, "name");
                    return manifest_fail(err, &np, "'%s' is also the name of %s[%zu]", (*specs)->name, lists[l], j);
                }
            }
            (*specs)++;
        }
        if (l == 0) {
            fn->params = first;
            fn->param_count = (int32_t)list->as.array.count;
        } else {
            fn->results = first;
            fn->result_count = (int32_t)list->as.array.count;
        }
    }

    for (int32_t r = 0; r < fn->result_count; r++) {
        const gr_value_spec *result = &fn->results[r];
        if (result->writes < 0) continue;
        place wp = place_at(where, "results[%" PRId32 "].writes", r);
        if (result->writes >= fn->param_count) {
            return manifest_fail(err, &wp, "parameter index %" PRId32 " is out of range [0, %" PRId32 ")", result->writes, fn->param_count);
        }
        const gr_value_spec *param = &fn->params[result->writes];
        if (param->role != GR_ROLE_TRAINABLE && param->role != GR_ROLE_STATE) {
            return manifest_fail(err, &wp, "parameter '%s' is %s; only trainable and state parameters can be written", param->name,
                                 gr_role_name(param->role));
        }
        if (!same_type(param, result)) {
            char want[128], got[128];
            gr_value_spec_type(param, want, sizeof want);
            gr_value_spec_type(result, got, sizeof got);
            return manifest_fail(err, &wp, "result '%s' is %s but parameter '%s' is %s", result->name, got, param->name, want);
        }
        for (int32_t other = 0; other < r; other++) {
            if (fn->results[other].writes == result->writes) {
                return manifest_fail(err, &wp, "parameter '%s' is already written by result '%s'", param->name, fn->results[other].name);
            }
        }
    }
    return 0;
}

void gr_program_free(gr_program *program) {
    if (program == NULL) return;
    gr_json_free(program->json);
    free(program->functions);
    free(program->specs);
    free(program->dims);
    free(program->ops);
    free(program->profile);
    free(program);
}

static gr_program *load_failed(gr_program *program) {
    gr_program_free(program);
    return NULL;
}

/* The manifest's "generation" object: every field required; token ids -1 (none) or in [0, vocab). */
static int parse_generation(const gr_json *object, const place *where, gr_generation_config *out, gr_error *err) {
    static const char *const fields[] = {"family", "vocab_size", "decoder_start_token_id", "eos_token_id", "pad_token_id",
                                         "bos_token_id", "forced_eos_token_id", "no_repeat_ngram_size", "early_stopping", NULL};
    if (check_object(object, where, fields, 9, err) != 0) return -1;
    place p = place_at(where, "family");
    const char *family;
    if (get_string(gr_json_member_find(object, "family", NULL), &p, true, &family, err) != 0) return -1;
    if (strcmp(family, "bart") != 0 && strcmp(family, "t5") != 0) {
        return manifest_fail(err, &p, "expected \"bart\" or \"t5\", got \"%s\"", family);
    }
    out->family = family;
    int64_t *integers[] = {&out->vocab_size, &out->decoder_start_token_id, &out->eos_token_id, &out->pad_token_id,
                           &out->bos_token_id, &out->forced_eos_token_id, &out->no_repeat_ngram_size};
    for (int i = 0; i < 7; i++) {
        p = place_at(where, "%s", fields[i + 1]);
        if (get_integer(gr_json_member_find(object, fields[i + 1], NULL), &p, integers[i], err) != 0) return -1;
        int64_t value = *integers[i];
        if (i == 0 && value < 1) return manifest_fail(err, &p, "expected a positive vocabulary size, got %" PRId64, value);
        bool optional = i == 4 || i == 5;
        if (i >= 1 && i <= 5 && !(value >= 0 && value < out->vocab_size) && !(optional && value == -1)) {
            return manifest_fail(err, &p, "expected a token id in [0, %" PRId64 ")%s, got %" PRId64, out->vocab_size,
                                 optional ? " or -1" : "", value);
        }
        if (i == 6 && value < 0) return manifest_fail(err, &p, "expected 0 (off) or an n-gram size, got %" PRId64, value);
    }
    p = place_at(where, "early_stopping");
    const gr_json *early = gr_json_member_find(object, "early_stopping", NULL);
    if (early->kind != GR_JSON_BOOL) return manifest_fail(err, &p, "expected true or false, got %s", gr_json_kind_name(early->kind));
    out->early_stopping = early->as.boolean;
    return 0;
}

gr_program *gr_program_load(const char *manifest, gr_entry_fn const *entries, gr_error *err) {
    static const char *const fields[] = {"version", "functions", "ops", "step_function", "generation", "profile", NULL};
    gr_program *program = calloc(1, sizeof *program);
    if (program == NULL) {
        gr_fail(err, "manifest: out of memory");
        return NULL;
    }
    program->step = -1;
    gr_json_error json_error;
    program->json = gr_json_parse(manifest, strlen(manifest), &json_error);
    if (program->json == NULL) {
        gr_fail(err, "manifest: invalid JSON at byte %zu: %s", json_error.offset, json_error.message);
        return load_failed(program);
    }
    const gr_json *root = program->json;
    place top = {""};
    if (check_object(root, &top, fields, 3, err) != 0) return load_failed(program);

    place p = place_at(&top, "version");
    int64_t version;
    if (get_integer(gr_json_member_find(root, "version", NULL), &p, &version, err) != 0) return load_failed(program);
    if (version != 1) {
        manifest_fail(err, &p, "this runtime reads version 1, got %" PRId64, version);
        return load_failed(program);
    }

    p = place_at(&top, "ops");
    const gr_json *ops = gr_json_member_find(root, "ops", NULL);
    if (ops->kind != GR_JSON_ARRAY) {
        manifest_fail(err, &p, "expected an array of strings, got %s", gr_json_kind_name(ops->kind));
        return load_failed(program);
    }
    if (ops->as.array.count > (size_t)INT32_MAX) {
        manifest_fail(err, &p, "too many ops");
        return load_failed(program);
    }
    program->ops = calloc(ops->as.array.count + 1, sizeof *program->ops);
    if (program->ops == NULL) {
        gr_fail(err, "manifest: out of memory");
        return load_failed(program);
    }
    for (size_t i = 0; i < ops->as.array.count; i++) {
        place op = place_at(&p, "[%zu]", i);
        if (get_string(&ops->as.array.items[i], &op, false, &program->ops[i], err) != 0) return load_failed(program);
    }
    program->op_count = (int32_t)ops->as.array.count;

    p = place_at(&top, "functions");
    const gr_json *functions = gr_json_member_find(root, "functions", NULL);
    if (functions->kind != GR_JSON_ARRAY) {
        manifest_fail(err, &p, "expected an array, got %s", gr_json_kind_name(functions->kind));
        return load_failed(program);
    }
    if (functions->as.array.count > (size_t)INT32_MAX / 2) {
        manifest_fail(err, &p, "too many functions");
        return load_failed(program);
    }
    size_t function_count = functions->as.array.count;
    int64_t spec_count = count_specs(functions), dim_count = count_dims(functions);
    program->functions = calloc(function_count + 1, sizeof *program->functions);
    program->specs = calloc((size_t)spec_count + 1, sizeof *program->specs);
    program->dims = calloc((size_t)dim_count + 1, sizeof *program->dims);
    if (program->functions == NULL || program->specs == NULL || program->dims == NULL) {
        gr_fail(err, "manifest: out of memory");
        return load_failed(program);
    }
    gr_value_spec *specs = program->specs;
    int64_t *dims = program->dims;
    for (size_t i = 0; i < function_count; i++) {
        place fp = place_at(&p, "[%zu]", i);
        gr_function *fn = &program->functions[i];
        if (parse_function(&functions->as.array.items[i], &fp, fn, &specs, &dims, err) != 0) return load_failed(program);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(program->functions[j].name, fn->name) == 0) {
                place np = place_at(&fp, "name");
                manifest_fail(err, &np, "function '%s' is also functions[%zu]", fn->name, j);
                return load_failed(program);
            }
        }
        fn->index = (int32_t)i;
        fn->entry = entries != NULL ? entries[i] : NULL;
        fn->program = program;
    }
    program->function_count = (int32_t)function_count;

    const gr_json *step = gr_json_member_find(root, "step_function", NULL);
    if (step != NULL && step->kind != GR_JSON_NULL) {
        p = place_at(&top, "step_function");
        const char *name;
        if (get_string(step, &p, true, &name, err) != 0) return load_failed(program);
        const gr_function *fn = gr_program_find(program, name);
        if (fn == NULL) {
            manifest_fail(err, &p, "no function is called '%s'", name);
            return load_failed(program);
        }
        program->step = fn->index;
    }
    const gr_json *generation = gr_json_member_find(root, "generation", NULL);
    if (generation != NULL && generation->kind != GR_JSON_NULL) {
        p = place_at(&top, "generation");
        if (parse_generation(generation, &p, &program->generation, err) != 0) return load_failed(program);
        program->has_generation = true;
    }
    const gr_json *profile = gr_json_member_find(root, "profile", NULL);
    if (profile != NULL) {
        p = place_at(&top, "profile");
        if (profile->kind != GR_JSON_ARRAY || profile->as.array.count > (size_t)INT32_MAX) {
            manifest_fail(err, &p, "expected an array of strings, got %s", gr_json_kind_name(profile->kind));
            return load_failed(program);
        }
        program->profile = calloc(profile->as.array.count + 1, sizeof *program->profile);
        if (program->profile == NULL) {
            gr_fail(err, "manifest: out of memory");
            return load_failed(program);
        }
        for (size_t i = 0; i < profile->as.array.count; i++) {
            place step = place_at(&p, "[%zu]", i);
            if (get_string(&profile->as.array.items[i], &step, false, &program->profile[i], err) != 0) return load_failed(program);
        }
        program->profile_count = (int32_t)profile->as.array.count;
    }
    return program;
}

int32_t gr_program_profile_count(const gr_program *program) {
    return program->profile_count;
}

const char *gr_program_profile_step(const gr_program *program, int32_t i) {
    return i >= 0 && i < program->profile_count ? program->profile[i] : NULL;
}

const gr_generation_config *gr_program_generation(const gr_program *program) {
    return program->has_generation ? &program->generation : NULL;
}

int32_t gr_program_function_count(const gr_program *program) {
    return program->function_count;
}

const gr_function *gr_program_function(const gr_program *program, int32_t i) {
    return i >= 0 && i < program->function_count ? &program->functions[i] : NULL;
}

const gr_function *gr_program_find(const gr_program *program, const char *name) {
    for (int32_t i = 0; i < program->function_count; i++) {
        if (strcmp(program->functions[i].name, name) == 0) return &program->functions[i];
    }
    return NULL;
}

const gr_function *gr_program_step_function(const gr_program *program) {
    return program->step >= 0 ? &program->functions[program->step] : NULL;
}

int32_t gr_program_op_count(const gr_program *program) {
    return program->op_count;
}

const char *gr_program_op(const gr_program *program, int32_t op) {
    return op >= 0 && op < program->op_count ? program->ops[op] : NULL;
}

/* ---- binding --------------------------------------------------------------------------------------- */

struct gr_binding {
    const gr_function *function;
    void **args;   /* params, then results */
    void **owned;  /* per parameter: an aligned copy this binding frees, or NULL */
    int32_t *writer; /* per parameter: the in_place result sharing its buffer (GR_BIND_RESULTS_IN_PLACE), or -1 */
    /* per parameter: the mapped tensor whose pages gr_release_param drops, or NULL */
    const gr_safetensors **release_file;
    const gr_st_tensor **release_tensor;
    gr_arena arena;
};

static bool shares_buffer(const gr_binding *b, int32_t r) {
    int32_t p = b->function->results[r].writes;
    return p >= 0 && b->writer != NULL && b->writer[p] == r;
}

void gr_binding_free(gr_binding *b) {
    if (b == NULL) return;
    if (b->args != NULL) {
        for (int32_t r = 0; r < b->function->result_count; r++) {
            if (!shares_buffer(b, r)) gr_aligned_free(b->args[b->function->param_count + r]);
        }
    }
    if (b->owned != NULL) {
        for (int32_t i = 0; i < b->function->param_count; i++) gr_aligned_free(b->owned[i]);
    }
    gr_arena_release(&b->arena);
    free(b->args);
    free(b->owned);
    free(b->writer);
    free(b->release_file);
    free(b->release_tensor);
    free(b);
}

bool gr_st_dtype_feeds(gr_dtype want, gr_st_dtype got) {
    switch (want) {
    case GR_F32: return got == GR_ST_F32 || got == GR_ST_F16 || got == GR_ST_BF16;
    case GR_F64: return got == GR_ST_F64;
    case GR_I32: return got == GR_ST_I32;
    case GR_I64: return got == GR_ST_I64;
    case GR_I1: return got == GR_ST_BOOL;
    }
    return false;
}

static bool same_shape(const gr_value_spec *spec, const gr_st_tensor *t) {
    if (spec->rank != t->rank) return false;
    for (int32_t i = 0; i < spec->rank; i++) {
        if (spec->shape[i] != t->shape[i]) return false;
    }
    return true;
}

/* Points parameter i at tensor t of file f, copying when needed. */
static int bind_tensor(gr_binding *b, int32_t i, const gr_safetensors *f, const gr_st_tensor *t, int flags, gr_error *err) {
    const gr_function *fn = b->function;
    const gr_value_spec *spec = &fn->params[i];
    if (!gr_st_dtype_feeds(spec->dtype, t->dtype) || !same_shape(spec, t)) {
        char want[256], got[256];
        gr_value_spec_type(spec, want, sizeof want);
        gr_text text;
        gr_text_init(&text, got, sizeof got);
        gr_text_append(&text, "%s ", gr_st_dtype_name(t->dtype));
        gr_text_append_shape(&text, t->shape, t->rank);
        return gr_fail(err, "%s: tensor '%s': parameter of function '%s' needs %s, got %s", gr_safetensors_path(f), t->name, fn->name,
                       want, got);
    }
    /* A parameter an in-place result writes needs memory of its own (the file is mapped read-only). */
    if (gr_param_data(spec, f, t, b->writer[i] < 0, &b->args[i], &b->owned[i], err) != 0) return -1;
    if (flags & GR_BIND_RELEASE_MAPPED) (void)gr_binding_release_between_uses(b, i, f, t);
    return 0;
}

gr_st_dtype gr_st_dtype_of(gr_dtype dtype) {
    static const gr_st_dtype file_dtypes[] = {GR_ST_F32, GR_ST_F64, GR_ST_I32, GR_ST_I64, GR_ST_BOOL};
    return file_dtypes[dtype];
}

int gr_param_data(const gr_value_spec *spec, const gr_safetensors *f, const gr_st_tensor *t, bool may_map, void **data, void **owned,
                  gr_error *err) {
    bool exact = t->dtype == gr_st_dtype_of(spec->dtype);
    if (may_map && exact && (uintptr_t)t->data % gr_dtype_size(spec->dtype) == 0) {
        *data = (void *)(uintptr_t)t->data;
        return 0;
    }
    void *copy = gr_aligned_alloc((size_t)spec->bytes);
    if (copy == NULL) {
        return gr_fail(err, "%s: tensor '%s': out of memory copying %" PRId64 " bytes", gr_safetensors_path(f), t->name, spec->bytes);
    }
    if (exact) {
        if (spec->bytes > 0) memcpy(copy, t->data, (size_t)spec->bytes);
    } else if (gr_st_tensor_read_f32(f, t, copy, err) != 0) {
        gr_aligned_free(copy);
        return -1;
    }
    gr_safetensors_release(f, t);
    *owned = *data = copy;
    return 0;
}

gr_binding *gr_binding_create(const gr_function *fn, gr_safetensors *const *files, size_t file_count, int flags, gr_error *err) {
    gr_binding *b = calloc(1, sizeof *b);
    if (b == NULL) {
        gr_fail(err, "function '%s': out of memory", fn->name);
        return NULL;
    }
    b->function = fn;
    size_t arg_count = (size_t)fn->param_count + (size_t)fn->result_count;
    b->args = calloc(arg_count + 1, sizeof *b->args);
    b->owned = calloc((size_t)fn->param_count + 1, sizeof *b->owned);
    b->writer = malloc(((size_t)fn->param_count + 1) * sizeof *b->writer);
    b->release_file = calloc((size_t)fn->param_count + 1, sizeof *b->release_file);
    b->release_tensor = calloc((size_t)fn->param_count + 1, sizeof *b->release_tensor);
    if (b->args == NULL || b->owned == NULL || b->writer == NULL || b->release_file == NULL || b->release_tensor == NULL) {
        gr_binding_free(b);
        gr_fail(err, "function '%s': out of memory", fn->name);
        return NULL;
    }
    for (int32_t i = 0; i < fn->param_count; i++) b->writer[i] = -1;
    if (flags & GR_BIND_RESULTS_IN_PLACE) {
        for (int32_t r = 0; r < fn->result_count; r++) {
            if (fn->results[r].in_place) b->writer[fn->results[r].writes] = r;
        }
    }
    for (int32_t r = 0; r < fn->result_count; r++) {
        const gr_value_spec *spec = &fn->results[r];
        if (shares_buffer(b, r)) continue; /* set with its parameter */
        void *block = gr_aligned_alloc((size_t)spec->bytes);
        if (block == NULL) {
            gr_binding_free(b);
            gr_fail(err, "function '%s': out of memory for result '%s' (%" PRId64 " bytes)", fn->name, spec->name, spec->bytes);
            return NULL;
        }
        memset(block, 0, (size_t)spec->bytes);
        b->args[fn->param_count + r] = block;
    }
    for (int32_t i = 0; i < fn->param_count; i++) {
        const gr_value_spec *spec = &fn->params[i];
        const gr_st_tensor *found = NULL;
        size_t where = 0;
        for (size_t k = 0; k < file_count; k++) {
            const gr_st_tensor *t = gr_safetensors_find(files[k], spec->name);
            if (t == NULL) continue;
            if (found != NULL) {
                gr_fail(err, "function '%s': parameter '%s' is in both %s and %s", fn->name, spec->name,
                        gr_safetensors_path(files[where]), gr_safetensors_path(files[k]));
                gr_binding_free(b);
                return NULL;
            }
            found = t;
            where = k;
        }
        if (found == NULL) {
            if (flags & GR_BIND_ALLOW_MISSING) continue;
            char type[256], searched[GR_ERROR_CAPACITY];
            gr_value_spec_type(spec, type, sizeof type);
            gr_text text;
            gr_text_init(&text, searched, sizeof searched);
            for (size_t k = 0; k < file_count; k++) gr_text_append(&text, "%s%s", k > 0 ? ", " : "", gr_safetensors_path(files[k]));
            if (file_count == 0) gr_text_append(&text, "(no files given)");
            gr_fail(err, "function '%s': parameter '%s' (%s, %s) is in none of: %s", fn->name, spec->name, type, gr_role_name(spec->role),
                    searched);
            gr_binding_free(b);
            return NULL;
        }
        if (bind_tensor(b, i, files[where], found, flags, err) != 0) {
            gr_binding_free(b);
            return NULL;
        }
    }
    for (int32_t i = 0; i < fn->param_count; i++) {
        if (b->writer[i] >= 0) b->args[fn->param_count + b->writer[i]] = b->args[i];
    }
    if (gr_arena_init(&b->arena, fn->arena_bytes, err) != 0) {
        gr_error_prefix(err, "function '%s': ", fn->name);
        gr_binding_free(b);
        return NULL;
    }
    return b;
}

int gr_binding_set_param(gr_binding *b, int32_t i, const void *data, gr_error *err) {
    const gr_function *fn = b->function;
    if (i < 0 || i >= fn->param_count) {
        return gr_fail(err, "function '%s': parameter index %" PRId32 " is out of range [0, %" PRId32 ")", fn->name, i, fn->param_count);
    }
    if (data == NULL) return gr_fail(err, "function '%s': parameter '%s': no data", fn->name, fn->params[i].name);
    gr_aligned_free(b->owned[i]);
    b->owned[i] = NULL;
    b->args[i] = (void *)(uintptr_t)data;
    b->release_file[i] = NULL;
    b->release_tensor[i] = NULL;
    if (b->writer[i] >= 0) b->args[fn->param_count + b->writer[i]] = b->args[i];
    return 0;
}

int gr_binding_release_between_uses(gr_binding *b, int32_t i, const gr_safetensors *file, const gr_st_tensor *tensor) {
    /* Only the mapping itself: dropping the pages of a copy (or of a written parameter) would lose them. */
    if (i < 0 || i >= b->function->param_count || b->writer[i] >= 0 || b->owned[i] != NULL || tensor == NULL ||
        b->args[i] != (const void *)tensor->data || !gr_safetensors_maps(file, tensor)) {
        return 0;
    }
    b->release_file[i] = file;
    b->release_tensor[i] = tensor;
    /* Dropped now too: a caller that checked the values (param_load's finiteness scan) has just
     * mapped all of them, and the first call maps each again when it reads it. */
    gr_safetensors_release(file, tensor);
    return 1;
}

void gr_release_param(gr_runtime *rt, int32_t param) {
    const gr_binding *b = rt->binding;
    if (b == NULL || param < 0 || param >= b->function->param_count || b->release_file[param] == NULL) return;
    gr_safetensors_release(b->release_file[param], b->release_tensor[param]);
}

int gr_binding_call(gr_runtime *rt, gr_binding *b, gr_error *err) {
    const gr_function *fn = b->function;
    if (fn->entry == NULL) return gr_fail(err, "function '%s' has no entry point (the program was loaded without entries)", fn->name);
    for (int32_t i = 0; i < fn->param_count; i++) {
        if (b->args[i] == NULL) return gr_fail(err, "function '%s': parameter '%s' is not bound", fn->name, fn->params[i].name);
    }
    gr_runtime_attach_program(rt, fn->program);
    gr_runtime_reset_error(rt);
    rt->binding = b;
    int32_t status = fn->entry((void *const *)b->args, b->arena.data, rt);
    rt->binding = NULL;
    if (gr_failed(rt)) return gr_fail(err, "%s", gr_error_message(rt));
    if (status != 0) return gr_fail(err, "function '%s' returned status %" PRId32 " without raising an error", fn->name, status);
    return 0;
}

const gr_function *gr_binding_function(const gr_binding *b) {
    return b->function;
}

const void *gr_binding_param(const gr_binding *b, int32_t i) {
    return i >= 0 && i < b->function->param_count ? b->args[i] : NULL;
}

void *gr_binding_result(const gr_binding *b, int32_t i) {
    return i >= 0 && i < b->function->result_count ? b->args[b->function->param_count + i] : NULL;
}

bool gr_binding_result_in_place(const gr_binding *b, int32_t i) {
    return i >= 0 && i < b->function->result_count && shares_buffer(b, i);
}

void gr_binding_clear_results(gr_binding *b) {
    const gr_function *fn = b->function;
    for (int32_t r = 0; r < fn->result_count; r++) {
        if (!shares_buffer(b, r) && fn->results[r].bytes > 0) memset(b->args[fn->param_count + r], 0, (size_t)fn->results[r].bytes);
    }
}

int gr_binding_write_results(const gr_binding *b, const char *path, gr_error *err) {
    const gr_function *fn = b->function;
    gr_st_write_tensor *tensors = calloc((size_t)fn->result_count + 1, sizeof *tensors);
    if (tensors == NULL) return gr_fail(err, "%s: out of memory", path);
    for (int32_t r = 0; r < fn->result_count; r++) {
        const gr_value_spec *spec = &fn->results[r];
        tensors[r] = (gr_st_write_tensor){spec->name, gr_st_dtype_of(spec->dtype), spec->rank, spec->shape, gr_binding_result(b, r)};
    }
    int status = gr_safetensors_write(path, tensors, (size_t)fn->result_count, NULL, 0, err);
    free(tensors);
    return status;
}
