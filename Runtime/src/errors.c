/*
 * errors.c: error messages. Two kinds:
 *
 *  1. gr_error values filled by functions that fail (files, manifests, bindings);
 *  2. the run-time error of generated code: gr_raise records the first (op, kind, value, bound)
 *     raised by any thread with a compare-and-swap, and gr_error_message formats it with the
 *     attached program's op description.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- gr_error ---------------------------------------------------------------------------------- */

int gr_fail(gr_error *err, const char *format, ...) {
    if (err != NULL) {
        va_list args;
        va_start(args, format);
        vsnprintf(err->message, sizeof err->message, format, args);
        va_end(args);
    }
    return -1;
}

void gr_error_prefix(gr_error *err, const char *format, ...) {
    if (err == NULL) return;
    char prefix[GR_ERROR_CAPACITY];
    va_list args;
    va_start(args, format);
    vsnprintf(prefix, sizeof prefix, format, args);
    va_end(args);
    char joined[GR_ERROR_CAPACITY];
    gr_text text;
    gr_text_init(&text, joined, sizeof joined);
    gr_text_append(&text, "%s", prefix);
    gr_text_append(&text, "%s", err->message);
    memcpy(err->message, joined, sizeof joined);
}

/* ---- bounded text -------------------------------------------------------------------------------- */

void gr_text_init(gr_text *text, char *buffer, size_t size) {
    text->data = buffer;
    text->size = size;
    text->length = 0;
    if (size > 0) buffer[0] = '\0';
}

void gr_text_append(gr_text *text, const char *format, ...) {
    if (text->size == 0 || text->length + 1 >= text->size) return;
    va_list args;
    va_start(args, format);
    int written = vsnprintf(text->data + text->length, text->size - text->length, format, args);
    va_end(args);
    if (written < 0) return;
    size_t room = text->size - 1 - text->length;
    text->length += (size_t)written < room ? (size_t)written : room;
}

void gr_text_append_escaped(gr_text *text, const char *s, size_t length) {
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            gr_text_append(text, "\\n");
        } else if (c == '\t') {
            gr_text_append(text, "\\t");
        } else if (c < 0x20 || c == 0x7F) {
            gr_text_append(text, "\\x%02x", c);
        } else {
            gr_text_append(text, "%c", (char)c);
        }
    }
}

void gr_text_append_shape(gr_text *text, const int64_t *shape, int32_t rank) {
    gr_text_append(text, "[");
    for (int32_t i = 0; i < rank; i++) gr_text_append(text, "%s%" PRId64, i > 0 ? ", " : "", shape[i]);
    gr_text_append(text, "]");
}

/* ---- run-time errors of generated code ----------------------------------------------------------- */

void gr_raise(gr_runtime *rt, int32_t op, int32_t kind, int64_t value, int64_t bound) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&rt->raised.state, &expected, 1)) return; /* first wins */
    rt->raised.op = op;
    rt->raised.kind = kind;
    rt->raised.value = value;
    rt->raised.bound = bound;
    atomic_store(&rt->raised.state, 2);
}

int32_t gr_failed(gr_runtime *rt) {
    return atomic_load_explicit(&rt->raised.state, memory_order_relaxed) != 0;
}

void gr_runtime_reset_error(gr_runtime *rt) {
    atomic_store(&rt->raised.state, 0);
    rt->message[0] = '\0';
}

void gr_runtime_attach_program(gr_runtime *rt, const gr_program *program) {
    rt->program = program;
}

const char *gr_error_message(gr_runtime *rt) {
    /* A raise in progress on another thread completes within a few stores; wait for it. */
    int state;
    while ((state = atomic_load(&rt->raised.state)) == 1) {
    }
    if (state == 0) {
        rt->message[0] = '\0';
        return rt->message;
    }
    const gr_raised *r = &rt->raised;
    gr_text text;
    gr_text_init(&text, rt->message, sizeof rt->message);
    const char *op = rt->program != NULL ? gr_program_op(rt->program, r->op) : NULL;
    if (op != NULL) {
        gr_text_append(&text, "%s: ", op);
    } else {
        gr_text_append(&text, "op #%" PRId32 ": ", r->op);
    }
    switch (r->kind) {
    case GR_RAISE_INDEX:
        gr_text_append(&text, "index %" PRId64 " is out of range [0, %" PRId64 ")", r->value, r->bound);
        break;
    case GR_RAISE_LABEL:
        gr_text_append(&text, "label %" PRId64 " is out of range [0, %" PRId64 ")", r->value, r->bound);
        break;
    case GR_RAISE_DIV_ZERO:
        gr_text_append(&text, "integer division by zero");
        break;
    case GR_RAISE_CAST:
        gr_text_append(&text, "invalid cast: a NaN or out-of-range float cannot become an integer");
        break;
    default:
        gr_text_append(&text, "run-time error of unknown kind %" PRId32 " (value %" PRId64 ", bound %" PRId64 ")",
                       r->kind, r->value, r->bound);
        break;
    }
    return rt->message;
}
