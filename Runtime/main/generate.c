/*
 * generate.c: the `generate` and `eval` commands of every compiled model program.
 *
 *   MODEL generate --weights W.safetensors [--weights ...] [--checkpoint C.safetensors] --data D.safetensors
 *                  [--vocab vocab.json|tokenizer.json|spiece.model] [--predictions P.jsonl]
 *                  [--num-beams K] [--max-length N] [--no-repeat-ngram-size N] [--length-penalty X]
 *                  [--forced-eos-token-id ID] [--early-stopping true|false]
 *                  [--classify A,B [--prefix ID,ID...]] [--limit N] [--threads N] [--time]
 *   MODEL eval     (the same) [--references R.jsonl] [--metric auto|vqa|label|exact]
 *
 * It runs the program's @encode once per batch of examples (the encoder and every decoder
 * layer's cross-attention keys and values, VL-PET's value-path adapter included) and then
 * @decode_step once per generated position, its self-attention caches kept as `state` between
 * calls (search.c reorders them when beams move). Examples are taken in file order, B at a time
 * (B is the program's batch size; the last batch is padded by repeating its last example, whose
 * extra outputs are dropped); beam search with K beams decodes B / K examples per round from the
 * rows of one @encode call, copying each example's cross-attention rows to its K beams.
 *
 * Parameters: `frozen` and `trainable` ones are read from --checkpoint when it holds the name
 * (a `train` checkpoint: the tuned parameters), else from exactly one --weights file; a train
 * checkpoint (metadata granule_train) must hold every trainable one.
 *
 * Defaults come from the manifest's generation config (the backbone's config.json): BART bans
 * repeated 3-grams and forces EOS at max_length − 1 in beam search only, as transformers 4.2.1
 * did (spec 3.6). --classify A,B does no generation: it feeds the prefix (default: the decoder
 * start token, then BART's <s>) and predicts the choice whose token has the larger logit at the
 * last prefix position (NLVR2: "true" vs "false").
 *
 * eval scores the predictions against the references (one JSON object per line, in dataset
 * order; tools/README.md): "answers" (raw ground-truth answers: VQA accuracy), "label"
 * ({answer: score}: VL-Adapter's label score, GQA's exact match) or "answer" (exact match).
 *
 * What it does not do: sampling, batching across examples of different lengths beyond the
 * program's static shapes, or CIDEr (tools/score_captions.py scores the predictions file).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* open_memstream, clock_gettime */
#endif

#include "generate.h"

#include "../src/internal.h"
#include "metrics.h"
#include "options.h"
#include "params.h"
#include "search.h"
#include "tokenizer.h"
#include "train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

#define MAX_WEIGHTS 16
#define MAX_PREFIX 64
#define MAX_CHOICES 16

typedef struct generate_options {
    const char *weights[MAX_WEIGHTS];
    int weight_count;
    const char *checkpoint, *data, *vocab, *predictions, *references, *metric, *classify, *prefix;
    int64_t num_beams, max_length, no_repeat, forced_eos, limit;
    int early_stopping; /* -1: from the manifest */
    double length_penalty;
    int threads;
    bool time; /* --time: print each batch's wall milliseconds as JSON */
} generate_options;



void generate_print_usage(FILE *out, const char *program) {
    fprintf(out,
            "  %s generate --weights W.safetensors [--checkpoint C.safetensors] --data D.safetensors [--vocab FILE]\n"
            "        [--predictions P.jsonl] [--num-beams K] [--max-length N] [--classify A,B] ...  (see generate --help)\n"
            "  %s eval     (generate's options) [--references R.jsonl] [--metric auto|vqa|label|exact]\n",
            program, program);
}

static void print_generate_help(FILE *out, const char *program) {
    fprintf(out,
            "usage:\n"
            "  %s generate --weights W.safetensors [--weights W2.safetensors ...] [--checkpoint C.safetensors]\n"
            "        --data D.safetensors [--vocab FILE] [--predictions P.jsonl] [--num-beams K] [--max-length N]\n"
            "        [--no-repeat-ngram-size N] [--length-penalty X] [--forced-eos-token-id ID] [--early-stopping true|false]\n"
            "        [--classify A,B [--prefix ID,...]] [--limit N] [--threads N] [--time]\n"
            "  %s eval (the same options) [--references R.jsonl] [--metric auto|vqa|label|exact]\n"
            "\n"
            "Generates with the program's @encode and @decode_step (greedy, or beam search with --num-beams),\n"
            "decodes the tokens to text with --vocab (vocab.json, tokenizer.json or spiece.model) and writes one\n"
            "JSON object per example to --predictions: {\"index\", \"id\", \"prediction\", \"tokens\"[, \"score\"]}.\n"
            "eval also scores them against --references (default: D.safetensors with .references.jsonl for\n"
            ".safetensors) and prints the accuracy.\n"
            "\n"
            "options:\n"
            "  --weights FILE          parameters by name (several files: each name in exactly one)\n"
            "  --checkpoint FILE       a train checkpoint; its tensors take precedence over --weights\n"
            "  --data FILE             the examples: @encode's inputs with a leading example axis (as train's data)\n"
            "  --vocab FILE            the backbone's vocabulary, to turn tokens into text (ids it lacks: a warning)\n"
            "  --predictions FILE      where to write the predictions (JSONL, atomically)\n"
            "  --num-beams K           1 = greedy (default); K <= the program's batch size\n"
            "  --max-length N          tokens including the decoder start token (default: 20, at most the\n"
            "                          program's target length + 1)\n"
            "  --no-repeat-ngram-size N  ban repeated n-grams (default: the config's, 3 for BART, 0 = off)\n"
            "  --length-penalty X      beam search: hypothesis score = log-prob sum / length^X (default 1)\n"
            "  --forced-eos-token-id ID  beam search: force this token at max_length - 1 (default: the config's; -1 = off)\n"
            "  --early-stopping B      beam search: stop an example once it has K hypotheses (default: the config's)\n"
            "  --classify A,B          no generation: pick the word (or token id) with the larger logit after the prefix\n"
            "  --prefix ID,...         the decoder tokens fed before classifying (default: start token, BART: then <s>)\n"
            "  --limit N               only the first N examples\n"
            "  --references FILE       eval: the references (JSONL: \"answers\", \"label\" or \"answer\" per line)\n"
            "  --metric M              eval: vqa (official VQA accuracy over \"answers\"), label (\"label\"[prediction]),\n"
            "                          exact (prediction == \"answer\"), or auto (by the first reference's fields)\n"
            "  --threads N             threads for the kernels\n"
            "  --time                  after the predictions, print one line of JSON on standard output: each batch's\n"
            "                          wall milliseconds (\"times_ms\": from its @encode call to its last @decode_step,\n"
            "                          predictions formatting included; loading and filling the inputs excluded), its\n"
            "                          start on the monotonic clock (\"starts_ms\"), and the peak RSS in MiB\n"
            "\n"
            "exit status: 0 success, 1 error (one line `error: ...` on stderr), 2 usage error\n",
            program, program);
}

static bool parse_int(const char *text, int64_t low, int64_t high, int64_t *out) {
    if (text[0] == '\0') return false;
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (*end != '\0' || errno != 0 || value < low || value > high) return false;
    *out = value;
    return true;
}

static int parse_options(const char *program, bool evaluate, int argc, char **argv, generate_options *o, FILE *err) {
    static const char *const known[] = {"--weights", "--checkpoint", "--data", "--vocab", "--predictions", "--num-beams",
                                        "--max-length", "--no-repeat-ngram-size", "--length-penalty", "--forced-eos-token-id",
                                        "--early-stopping", "--classify", "--prefix", "--limit", "--threads", "--references",
                                        "--metric", NULL};
    bool given[32] = {false};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
        if (strncmp(arg, "--", 2) != 0) return command_usage_error(err, program, "generate", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--time") == 0) {
            o->time = true;
            continue;
        }
        char name[64];
        const char *value = gr_split_option(arg, name, sizeof name);
        int which = -1;
        for (int k = 0; known[k] != NULL; k++) {
            if (strcmp(name, known[k]) == 0) which = k;
        }
        if (strcmp(name, "--time") == 0) return command_usage_error(err, program, "generate", "option '%s' takes no value", name);
        if (which < 0 || (!evaluate && which >= 15)) {
            return command_usage_error(err, program, "generate", "%s: unknown option '%s'", evaluate ? "eval" : "generate", name);
        }
        if (value == NULL) {
            if (i + 1 >= argc) return command_usage_error(err, program, "generate", "option '%s' needs a value", name);
            value = argv[++i];
        }
        if (which == 0) {
            if (o->weight_count == MAX_WEIGHTS) return command_usage_error(err, program, "generate", "too many --weights (at most %d)", MAX_WEIGHTS);
            o->weights[o->weight_count++] = value;
            continue;
        }
        if (given[which]) return command_usage_error(err, program, "generate", "option '%s' is given more than once", name);
        given[which] = true;
        bool ok = true;
        switch (which) {
        case 1: o->checkpoint = value; break;
        case 2: o->data = value; break;
        case 3: o->vocab = value; break;
        case 4: o->predictions = value; break;
        case 5: ok = parse_int(value, 1, 1024, &o->num_beams); break;
        case 6: ok = parse_int(value, 2, 1 << 20, &o->max_length); break;
        case 7: ok = parse_int(value, 0, 1 << 20, &o->no_repeat); break;
        case 8: {
            char *end;
            errno = 0;
            o->length_penalty = strtod(value, &end);
            ok = *end == '\0' && value[0] != '\0' && errno == 0 && isfinite(o->length_penalty);
            break;
        }
        case 9: ok = parse_int(value, -1, INT64_MAX / 2, &o->forced_eos); break;
        case 10:
            ok = strcmp(value, "true") == 0 || strcmp(value, "false") == 0;
            o->early_stopping = strcmp(value, "true") == 0;
            break;
        case 11: o->classify = value; break;
        case 12: o->prefix = value; break;
        case 13: ok = parse_int(value, 1, INT64_MAX / 2, &o->limit); break;
        case 14: {
            int64_t threads;
            ok = parse_int(value, 1, GR_MAX_THREADS, &threads);
            o->threads = (int)threads;
            break;
        }
        case 15: o->references = value; break;
        case 16:
            o->metric = value;
            ok = strcmp(value, "auto") == 0 || strcmp(value, "vqa") == 0 || strcmp(value, "label") == 0 || strcmp(value, "exact") == 0;
            break;
        }
        if (!ok) return command_usage_error(err, program, "generate", "%s: invalid value '%s'", name, value);
    }
    if (o->weight_count == 0) return command_usage_error(err, program, "generate", "%s needs --weights FILE", evaluate ? "eval" : "generate");
    if (o->data == NULL) return command_usage_error(err, program, "generate", "%s needs --data FILE", evaluate ? "eval" : "generate");
    if (o->prefix != NULL && o->classify == NULL) return command_usage_error(err, program, "generate", "--prefix is only used with --classify");
    return EXIT_OK;
}

/* ---- parameters ------------------------------------------------------------------------------ */

/* A function with its binding and the buffers behind its parameters. */
typedef struct bound {
    const gr_function *fn;
    gr_binding *binding;
    void **buffers; /* [param_count] */
    void **owned;   /* [param_count] */
} bound;

static void bound_free(bound *b) {
    if (b->fn != NULL && b->owned != NULL) {
        for (int32_t i = 0; i < b->fn->param_count; i++) gr_aligned_free(b->owned[i]);
    }
    free(b->buffers);
    free(b->owned);
    gr_binding_free(b->binding);
}

static int32_t find_param(const gr_function *fn, const char *name) {
    for (int32_t i = 0; i < fn->param_count; i++) {
        if (strcmp(fn->params[i].name, name) == 0) return i;
    }
    return -1;
}

/* Binds `fn`: weights from the checkpoint or exactly one weights file; inputs and state zeroed
 * (`flags` adds to GR_BIND_ALLOW_MISSING, e.g. GR_BIND_RESULTS_IN_PLACE for @decode_step's caches).
 * With `release_unless_in`, weights mapped from a file are dropped after their reads, except those
 * that function reads too (@encode runs once per batch: its own weights need not stay in the
 * process while @decode_step generates the batch's tokens, but a tied embedding table must). */
static int bind(bound *b, const gr_function *fn, gr_safetensors *checkpoint, gr_safetensors *const *weights, int weight_count,
                const gr_function *release_unless_in, int flags, gr_error *err) {
    b->fn = fn;
    b->buffers = calloc((size_t)fn->param_count + 1, sizeof *b->buffers);
    b->owned = calloc((size_t)fn->param_count + 1, sizeof *b->owned);
    if (b->buffers == NULL || b->owned == NULL) return gr_fail(err, "out of memory");
    b->binding = gr_binding_create(fn, NULL, 0, GR_BIND_ALLOW_MISSING | flags, err);
    if (b->binding == NULL) return -1;
    for (int32_t i = 0; i < fn->param_count; i++) {
        const gr_value_spec *spec = &fn->params[i];
        const gr_safetensors *loaded_from = NULL;
        if (spec->role == GR_ROLE_FROZEN || spec->role == GR_ROLE_TRAINABLE) {
            gr_safetensors *source = checkpoint != NULL && gr_safetensors_find(checkpoint, spec->name) != NULL ? checkpoint : NULL;
            /* A train checkpoint holds every trainable tensor of the program that wrote it; falling
             * back to --weights for one would silently evaluate a half-tuned model. */
            if (source == NULL && spec->role == GR_ROLE_TRAINABLE && checkpoint != NULL &&
                gr_safetensors_metadata_find(checkpoint, "granule_train") != NULL) {
                char type[256];
                gr_value_spec_type(spec, type, sizeof type);
                return gr_fail(err, "%s: no tensor '%s' (trainable %s of @%s): the checkpoint is incomplete or was trained for another model",
                               gr_safetensors_path(checkpoint), spec->name, type, fn->name);
            }
            for (int w = 0; source == NULL && w < weight_count; w++) {
                if (gr_safetensors_find(weights[w], spec->name) == NULL) continue;
                for (int other = w + 1; other < weight_count; other++) {
                    if (gr_safetensors_find(weights[other], spec->name) != NULL) {
                        return gr_fail(err, "parameter '%s' is in both %s and %s (give each name once, or put the tuned values in --checkpoint)",
                                    spec->name, gr_safetensors_path(weights[w]), gr_safetensors_path(weights[other]));
                    }
                }
                source = weights[w];
            }
            if (source == NULL) {
                char type[256];
                gr_value_spec_type(spec, type, sizeof type);
                char files[1024] = "";
                size_t used = 0;
                for (int w = 0; w < weight_count && used < sizeof files; w++) {
                    used += (size_t)snprintf(files + used, sizeof files - used, "%s%s", w > 0 ? ", " : "", gr_safetensors_path(weights[w]));
                }
                if (checkpoint != NULL && used < sizeof files) snprintf(files + used, sizeof files - used, ", %s", gr_safetensors_path(checkpoint));
                return gr_fail(err, "function '%s': parameter '%s' (%s, %s) is in none of: %s", fn->name, spec->name, type,
                            gr_role_name(spec->role), files);
            }
            if (param_load(fn, i, source, gr_role_name(spec->role), true, &b->buffers[i], &b->owned[i], err) != 0) return -1;
            loaded_from = source;
        } else {
            void *block = gr_aligned_alloc((size_t)spec->bytes);
            if (block == NULL) return gr_fail(err, "parameter '%s': out of memory (%" PRId64 " bytes)", spec->name, spec->bytes);
            if (spec->bytes > 0) memset(block, 0, (size_t)spec->bytes);
            b->owned[i] = b->buffers[i] = block;
        }
        if (gr_binding_set_param(b->binding, i, b->buffers[i], err) != 0) return -1;
        if (release_unless_in != NULL && loaded_from != NULL && find_param(release_unless_in, spec->name) < 0) {
            (void)gr_binding_release_between_uses(b->binding, i, loaded_from, gr_safetensors_find(loaded_from, spec->name));
        }
    }
    return 0;
}

static int32_t find_result(const gr_function *fn, const char *name) {
    for (int32_t i = 0; i < fn->result_count; i++) {
        if (strcmp(fn->results[i].name, name) == 0) return i;
    }
    return -1;
}

/* ---- the decoder driven by search.c ------------------------------------------------------------- */

/* One per-row input of @decode_step filled from an @encode result (cross_bias, cross_keys.<l>, ...). */
typedef struct cross_input {
    int32_t param;
    int32_t result; /* of @encode */
    int64_t row_bytes;
} cross_input;

/* A self-attention cache: a `state` parameter and the result that writes it. */
typedef struct cache {
    int32_t param, result;
    int64_t row_bytes;
} cache;

typedef struct decoder {
    gr_runtime *rt;
    bound encode, step;
    int32_t token_param, position_param, logits_result;
    int64_t slots, vocab, positions;
    cross_input *cross;
    int32_t cross_count;
    cache *caches;
    int32_t cache_count;
    unsigned char *scratch; /* the largest cache, for reordering one updated in place */
} decoder;

static const float *decoder_step(void *context, const int64_t *tokens, int64_t position, gr_error *err) {
    decoder *d = context;
    memcpy(d->step.buffers[d->token_param], tokens, (size_t)d->slots * sizeof *tokens);
    *(int64_t *)d->step.buffers[d->position_param] = position;
    if (gr_binding_call(d->rt, d->step.binding, err) != 0) return NULL;
    return gr_binding_result(d->step.binding, d->logits_result);
}

static bool is_identity(const int64_t *rows, int64_t count) {
    for (int64_t s = 0; s < count; s++) {
        if (rows[s] != s) return false;
    }
    return true;
}

/* Row s of every cache becomes row source[s] of the step's updated cache. The update happens in
 * place when the manifest allows (the result shares the parameter's buffer), so greedy search,
 * whose rows never move, copies nothing; beams are gathered through `scratch`. */
static int decoder_reorder(void *context, const int64_t *source, gr_error *err) {
    (void)err;
    decoder *d = context;
    bool identity = is_identity(source, d->slots);
    for (int32_t c = 0; c < d->cache_count; c++) {
        const cache *k = &d->caches[c];
        unsigned char *into = d->step.buffers[k->param];
        const unsigned char *from = gr_binding_result(d->step.binding, k->result);
        if (from == into) {
            if (identity) continue;
            memcpy(d->scratch, from, (size_t)(k->row_bytes * d->slots));
            from = d->scratch;
        }
        for (int64_t s = 0; s < d->slots; s++) memcpy(into + s * k->row_bytes, from + source[s] * k->row_bytes, (size_t)k->row_bytes);
    }
    return 0;
}

/* Gives slot s the cross-attention rows of @encode row rows[s], and empties the caches. When slot
 * s takes row s for every s (greedy over a full batch), @decode_step reads @encode's results
 * themselves instead of a copy (66 MB per batch for BART-base at batch 32). */
static int decoder_start(decoder *d, const int64_t *rows, gr_error *err) {
    bool identity = is_identity(rows, d->slots);
    for (int32_t c = 0; c < d->cross_count; c++) {
        const cross_input *x = &d->cross[c];
        const unsigned char *from = gr_binding_result(d->encode.binding, x->result);
        unsigned char *into = d->step.buffers[x->param];
        if (gr_binding_set_param(d->step.binding, x->param, identity ? (const void *)from : into, err) != 0) return -1;
        if (identity) continue;
        for (int64_t s = 0; s < d->slots; s++) memcpy(into + s * x->row_bytes, from + rows[s] * x->row_bytes, (size_t)x->row_bytes);
    }
    for (int32_t c = 0; c < d->cache_count; c++) {
        memset(d->step.buffers[d->caches[c].param], 0, (size_t)(d->caches[c].row_bytes * d->slots));
    }
    return 0;
}

static void decoder_free(decoder *d) {
    bound_free(&d->encode);
    bound_free(&d->step);
    free(d->cross);
    free(d->caches);
    free(d->scratch);
}

/* Checks @encode / @decode_step against each other and finds the pieces the search needs. */
static int decoder_setup(decoder *d, gr_error *err) {
    const gr_function *enc = d->encode.fn, *step = d->step.fn;
    d->token_param = find_param(step, "token");
    d->position_param = find_param(step, "step");
    d->logits_result = find_result(step, "logits");
    if (d->token_param < 0 || d->position_param < 0 || d->logits_result < 0) {
        return gr_fail(err, "function 'decode_step' lacks 'token', 'step' or 'logits' (compile a model spec with a current granule)");
    }
    const gr_value_spec *token = &step->params[d->token_param], *logits = &step->results[d->logits_result];
    if (token->dtype != GR_I64 || token->rank != 2 || token->shape[1] != 1 || logits->rank != 2 || logits->dtype != GR_F32 ||
        logits->shape[0] != token->shape[0] || step->params[d->position_param].rank != 0 || step->params[d->position_param].dtype != GR_I64) {
        return gr_fail(err, "function 'decode_step': expected token i64[B,1], step i64[] and logits f32[B,V]");
    }
    d->slots = token->shape[0];
    d->vocab = logits->shape[1];
    d->cross = calloc((size_t)step->param_count + 1, sizeof *d->cross);
    d->caches = calloc((size_t)step->param_count + 1, sizeof *d->caches);
    if (d->cross == NULL || d->caches == NULL) return gr_fail(err, "out of memory");
    d->positions = -1;
    for (int32_t i = 0; i < step->param_count; i++) {
        const gr_value_spec *spec = &step->params[i];
        if (spec->role == GR_ROLE_STATE) {
            int32_t writer = -1;
            for (int32_t r = 0; r < step->result_count; r++) {
                if (step->results[r].writes == i) writer = r;
            }
            if (writer < 0 || spec->rank < 3 || spec->shape[0] != d->slots) {
                return gr_fail(err, "function 'decode_step': state '%s' is not a per-row cache written by a result", spec->name);
            }
            d->caches[d->cache_count++] = (cache){i, writer, spec->bytes / d->slots};
            if (d->positions < 0 || spec->shape[2] < d->positions) d->positions = spec->shape[2];
        } else if (spec->role == GR_ROLE_INPUT && i != d->token_param && i != d->position_param) {
            int32_t r = find_result(enc, spec->name);
            if (r < 0 || enc->results[r].dtype != spec->dtype || enc->results[r].rank < 1 || spec->rank < 1 ||
                enc->results[r].shape[0] != d->slots || enc->results[r].bytes / enc->results[r].shape[0] != spec->bytes / spec->shape[0] ||
                spec->shape[0] != d->slots) {
                return gr_fail(err, "function 'decode_step': input '%s' has no matching per-row result of 'encode'", spec->name);
            }
            d->cross[d->cross_count++] = (cross_input){i, r, spec->bytes / spec->shape[0]};
        }
    }
    if (d->positions < 1) return gr_fail(err, "function 'decode_step' has no self-attention cache (state [B, heads, T, d])");
    int64_t largest = 0;
    for (int32_t c = 0; c < d->cache_count; c++) largest = d->caches[c].row_bytes * d->slots > largest ? d->caches[c].row_bytes * d->slots : largest;
    d->scratch = malloc((size_t)largest);
    if (d->scratch == NULL) return gr_fail(err, "out of memory");
    return 0;
}

/* ---- references and metrics -------------------------------------------------------------------- */

typedef struct references {
    gr_json **lines;
    int64_t count;
} references;

static void references_free(references *r) {
    for (int64_t i = 0; i < r->count; i++) gr_json_free(r->lines[i]);
    free(r->lines);
}

static int references_load(references *r, const char *path, gr_error *err) {
    FILE *file = fopen(path, "r");
    if (file == NULL) return gr_fail(err, "%s: cannot open the references: %s", path, strerror(errno));
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    int64_t number = 0, allocated = 0;
    int status = 0;
    while ((length = getline(&line, &capacity, file)) >= 0) {
        number++;
        while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) line[--length] = '\0';
        if (length == 0) {
            /* Line n is example n - 1: a blank line would shift every later reference. */
            status = gr_fail(err, "%s:%" PRId64 ":1: empty line (one JSON object per example)", path, number);
            break;
        }
        gr_json_error json_error;
        gr_json *value = gr_json_parse(line, (size_t)length, &json_error);
        if (value == NULL) {
            status = gr_fail(err, "%s:%" PRId64 ":%zu: %s", path, number, json_error.offset + 1, json_error.message);
            break;
        }
        if (value->kind != GR_JSON_OBJECT) {
            gr_json_free(value);
            status = gr_fail(err, "%s:%" PRId64 ":1: expected an object per line", path, number);
            break;
        }
        if (r->count == allocated) {
            allocated = allocated == 0 ? 1024 : allocated * 2;
            gr_json **grown = realloc(r->lines, (size_t)allocated * sizeof *grown);
            if (grown == NULL) {
                gr_json_free(value);
                status = gr_fail(err, "%s: out of memory", path);
                break;
            }
            r->lines = grown;
        }
        r->lines[r->count++] = value;
    }
    free(line);
    fclose(file);
    return status;
}

typedef enum metric { METRIC_VQA, METRIC_LABEL, METRIC_EXACT } metric;

/* Sets *score to the score of `prediction` under metric m against reference line `ref` (number
 * `line`); returns 0, or -1 with err. Every label score of the line must be a number in [0, 1] (a
 * VQA soft score), whether or not it is the prediction's: a bad line fails wherever it is. */
static int score_of(metric m, const char *prediction, const gr_json *ref, const char *path, int64_t line, double *score,
                    gr_error *err) {
    const char *fields[] = {"answers", "label", "answer"};
    const gr_json *value = gr_json_member_find(ref, fields[m], NULL);
    if (value == NULL) {
        return gr_fail(err, "%s: line %" PRId64 ": no field '%s' (the %s metric needs it)", path, line, fields[m],
                       m == METRIC_VQA ? "vqa" : m == METRIC_LABEL ? "label" : "exact");
    }
    /* The prediction as VL-Adapter compares it for label/exact: stripped. */
    size_t start = 0, end = strlen(prediction);
    while (start < end && (prediction[start] == ' ' || prediction[start] == '\n' || prediction[start] == '\t')) start++;
    while (end > start && (prediction[end - 1] == ' ' || prediction[end - 1] == '\n' || prediction[end - 1] == '\t')) end--;
    switch (m) {
    case METRIC_VQA: {
        if (value->kind != GR_JSON_ARRAY || value->as.array.count == 0) {
            return gr_fail(err, "%s: line %" PRId64 ": field 'answers': expected a non-empty array of strings", path, line);
        }
        const char **answers = calloc(value->as.array.count, sizeof *answers);
        if (answers == NULL) return gr_fail(err, "out of memory");
        for (size_t i = 0; i < value->as.array.count; i++) {
            if (value->as.array.items[i].kind != GR_JSON_STRING) {
                free(answers);
                return gr_fail(err, "%s: line %" PRId64 ": field 'answers[%zu]': expected a string", path, line, i);
            }
            answers[i] = value->as.array.items[i].as.string.text;
        }
        double accuracy = vqa_accuracy(prediction, answers, value->as.array.count);
        free(answers);
        if (accuracy < 0) return gr_fail(err, "out of memory");
        *score = accuracy;
        return 0;
    }
    case METRIC_LABEL: {
        if (value->kind != GR_JSON_OBJECT) {
            return gr_fail(err, "%s: line %" PRId64 ": field 'label': expected an object of answer → score", path, line);
        }
        *score = 0;
        for (size_t i = 0; i < value->as.object.count; i++) {
            const gr_json_member *member = &value->as.object.members[i];
            double given;
            if (!gr_json_double(&member->value, &given) || !(given >= 0 && given <= 1)) {
                char key[64];
                gr_text t;
                gr_text_init(&t, key, sizeof key);
                gr_text_append_escaped(&t, member->key, member->key_length);
                return gr_fail(err, "%s: line %" PRId64 ": field 'label': the score of '%s' must be a number in [0, 1]", path, line, key);
            }
            if (member->key_length == end - start && memcmp(member->key, prediction + start, end - start) == 0) *score = given;
        }
        return 0;
    }
    case METRIC_EXACT:
        if (value->kind != GR_JSON_STRING) return gr_fail(err, "%s: line %" PRId64 ": field 'answer': expected a string", path, line);
        *score = value->as.string.length == end - start && memcmp(value->as.string.text, prediction + start, end - start) == 0 ? 1 : 0;
        return 0;
    }
    return gr_fail(err, "internal: unknown metric");
}

/* ---- output ------------------------------------------------------------------------------------- */

static void write_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        switch (*c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*c < 0x20) fprintf(f, "\\u%04x", *c);
            else fputc(*c, f);
        }
    }
    fputc('"', f);
}

/* Parses "a,b,c" into ids: integers as given, words through the vocabulary. */
static int parse_token_list(const char *text, const detokenizer *vocab, int64_t vocab_size, int64_t *ids, int64_t capacity,
                            int64_t *count, char (*words)[64], const char *option, gr_error *err) {
    *count = 0;
    const char *at = text;
    while (*at != '\0') {
        const char *comma = strchr(at, ',');
        size_t length = comma != NULL ? (size_t)(comma - at) : strlen(at);
        if (*count == capacity) return gr_fail(err, "%s: at most %" PRId64 " entries", option, capacity);
        char word[64];
        if (length == 0 || length >= sizeof word) return gr_fail(err, "%s: empty or too long entry in '%s'", option, text);
        memcpy(word, at, length);
        word[length] = '\0';
        int64_t id;
        if (parse_int(word, 0, vocab_size - 1, &id)) {
            if (words != NULL && vocab != NULL) {
                char *decoded = detokenizer_decode(vocab, &id, 1);
                snprintf(words[*count], 64, "%s", decoded != NULL && decoded[0] != '\0' ? decoded : word);
                free(decoded);
            } else if (words != NULL) {
                snprintf(words[*count], 64, "%s", word);
            }
        } else {
            if (vocab == NULL) return gr_fail(err, "%s: '%s' is not a token id; give --vocab to look words up", option, word);
            id = detokenizer_find_word(vocab, word);
            if (id < 0 || id >= vocab_size) return gr_fail(err, "%s: the vocabulary has no token for '%s'", option, word);
            if (words != NULL) snprintf(words[*count], 64, "%s", word);
        }
        ids[(*count)++] = id;
        at += length;
        if (*at == ',') at++;
    }
    if (*count == 0) return gr_fail(err, "%s: no entries", option);
    return 0;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- the command ---------------------------------------------------------------------------------- */

typedef struct run {
    generate_options opt;
    bool evaluate;
    const gr_generation_config *config;
    gr_safetensors *checkpoint;
    gr_safetensors *weights[MAX_WEIGHTS];
    decoder d;
    train_data *data;
    detokenizer *vocab;
    references refs;
    char *references_path;
} run;

static void run_free(run *r) {
    decoder_free(&r->d);
    gr_runtime_destroy(r->d.rt);
    train_data_free(r->data);
    detokenizer_free(r->vocab);
    references_free(&r->refs);
    free(r->references_path);
    gr_safetensors_close(r->checkpoint);
    for (int w = 0; w < r->opt.weight_count; w++) gr_safetensors_close(r->weights[w]);
}

static int run_generation(run *r, FILE *out, FILE *errf, gr_error *err) {
    generate_options *o = &r->opt;
    decoder *d = &r->d;
    const gr_generation_config *config = r->config;
    bool classify = o->classify != NULL;
    int64_t examples = train_data_examples(r->data, 0);
    /* One reference line per example of the data (also with --limit): a count that differs means
     * the references belong to other data, and their lines would be paired with the wrong examples. */
    if (r->refs.count > 0 && r->refs.count != examples) {
        return gr_fail(err, "%s: %" PRId64 " references for %" PRId64 " examples of %s", r->references_path, r->refs.count, examples, o->data);
    }
    if (o->limit > 0 && o->limit < examples) examples = o->limit;

    search_options search = {
        .num_beams = o->num_beams > 0 ? o->num_beams : 1,
        .max_length = o->max_length > 0 ? o->max_length : (20 < d->positions + 1 ? 20 : d->positions + 1),
        .no_repeat_ngram = o->no_repeat >= 0 ? o->no_repeat : config->no_repeat_ngram_size,
        .decoder_start = config->decoder_start_token_id,
        .eos = config->eos_token_id,
        .pad = config->pad_token_id,
        .forced_eos = o->forced_eos >= -1 ? o->forced_eos : config->forced_eos_token_id,
        .early_stopping = o->early_stopping >= 0 ? o->early_stopping != 0 : config->early_stopping != 0,
        .length_penalty = isnan(o->length_penalty) ? 1.0 : o->length_penalty,
    };
    if (search.max_length > d->positions + 1) {
        return gr_fail(err, "--max-length %" PRId64 ": the program's decoder cache holds %" PRId64
                         " positions (the spec's batch.target_length), so at most %" PRId64 " tokens with the start token",
                    search.max_length, d->positions, d->positions + 1);
    }
    if (search.num_beams > d->slots) {
        return gr_fail(err, "--num-beams %" PRId64 " exceeds the program's batch size %" PRId64 " (beams share its rows)", search.num_beams,
                    d->slots);
    }
    if (search.forced_eos >= d->vocab) return gr_fail(err, "--forced-eos-token-id %" PRId64 " is outside the vocabulary", search.forced_eos);

    int64_t prefix[MAX_PREFIX], prefix_length = 0, choices[MAX_CHOICES], choice_count = 0;
    char choice_words[MAX_CHOICES][64];
    if (classify) {
        if (parse_token_list(o->classify, r->vocab, d->vocab, choices, MAX_CHOICES, &choice_count, choice_words, "--classify", err) != 0) {
            return -1;
        }
        if (choice_count < 2) return gr_fail(err, "--classify: '%s' names one choice; it picks among two or more (A,B)", o->classify);
        for (int64_t a = 0; a < choice_count; a++) {
            for (int64_t b = a + 1; b < choice_count; b++) {
                if (choices[a] == choices[b]) {
                    return gr_fail(err, "--classify: '%s' and '%s' are the same token (%" PRId64 ")", choice_words[a], choice_words[b], choices[a]);
                }
            }
        }
        if (o->prefix != NULL) {
            if (parse_token_list(o->prefix, NULL, d->vocab, prefix, MAX_PREFIX, &prefix_length, NULL, "--prefix", err) != 0) return -1;
        } else {
            prefix[prefix_length++] = config->decoder_start_token_id;
            if (strcmp(config->family, "bart") == 0 && config->bos_token_id >= 0) prefix[prefix_length++] = config->bos_token_id;
        }
        if (prefix_length > d->positions) {
            return gr_fail(err, "--prefix: %" PRId64 " tokens, but the decoder cache holds %" PRId64, prefix_length, d->positions);
        }
    }

    metric m = METRIC_VQA;
    if (r->evaluate) {
        const char *name = o->metric != NULL ? o->metric : "auto";
        if (strcmp(name, "auto") == 0) {
            if (r->refs.count == 0) return gr_fail(err, "%s: no references", r->references_path);
            const gr_json *first = r->refs.lines[0];
            if (gr_json_member_find(first, "answers", NULL) != NULL) m = METRIC_VQA;
            else if (gr_json_member_find(first, "label", NULL) != NULL) m = METRIC_LABEL;
            else if (gr_json_member_find(first, "answer", NULL) != NULL) m = METRIC_EXACT;
            else return gr_fail(err, "%s: line 1 has none of 'answers', 'label', 'answer' (give --metric)", r->references_path);
        } else {
            m = strcmp(name, "vqa") == 0 ? METRIC_VQA : strcmp(name, "label") == 0 ? METRIC_LABEL : METRIC_EXACT;
        }
        if (r->vocab == NULL && !classify) return gr_fail(err, "eval needs --vocab to turn the generated tokens into text");
    }

    int64_t slots = d->slots, length = search.max_length;
    int64_t per_round = classify ? slots : slots / search.num_beams;
    int64_t *order = malloc((size_t)slots * sizeof *order);
    int64_t *rows = malloc((size_t)slots * sizeof *rows);
    int64_t *sequences = malloc((size_t)(slots * length) * sizeof *sequences);
    int64_t *lengths = malloc((size_t)slots * sizeof *lengths);
    int64_t batches = (examples + slots - 1) / slots, timed = 0;
    double *batch_times = o->time ? malloc((size_t)(2 * batches + 1) * sizeof *batch_times) : NULL; /* ms, then starts */
    char *text = NULL;
    size_t text_length = 0;
    FILE *predictions = open_memstream(&text, &text_length);
    int status = 0;
    double total_score = 0;
    int64_t pieceless_count = 0, pieceless_first = -1, pieceless_example = -1; /* tokens the --vocab file cannot spell */
    if (order == NULL || rows == NULL || sequences == NULL || lengths == NULL || predictions == NULL || (o->time && batch_times == NULL)) {
        status = gr_fail(err, "out of memory");
        goto done;
    }
    search_decoder searcher = {d, slots, d->vocab, decoder_step, decoder_reorder};
    double started = now_seconds(), last_report = started;
    for (int64_t base = 0; base < examples && status == 0; base += slots) {
        for (int64_t s = 0; s < slots; s++) order[s] = base + s < examples ? base + s : examples - 1;
        train_fill_examples(r->data, 0, order, d->encode.buffers);
        double batch_start = now_seconds();
        if (gr_binding_call(d->rt, d->encode.binding, err) != 0) {
            status = -1;
            break;
        }
        int64_t in_batch = examples - base < slots ? examples - base : slots;
        for (int64_t first = 0; first < in_batch && status == 0; first += per_round) {
            int64_t count = in_batch - first < per_round ? in_batch - first : per_round;
            int64_t beams = classify ? 1 : search.num_beams;
            for (int64_t s = 0; s < slots; s++) {
                int64_t e = s / beams;
                rows[s] = first + (e < count ? e : count - 1);
            }
            if (decoder_start(d, rows, err) != 0) {
                status = -1;
                break;
            }
            if (classify) {
                status = search_classify(&searcher, prefix, prefix_length, choices, choice_count, lengths, err);
            } else {
                status = search_generate(&searcher, &search, count, sequences, lengths, err);
            }
            for (int64_t e = 0; e < count && status == 0; e++) {
                int64_t index = base + first + e;
                char *prediction = NULL;
                const int64_t *tokens = classify ? &choices[lengths[e]] : sequences + e * length + 1;
                int64_t token_count = classify ? 1 : lengths[e] - 1;
                if (classify) {
                    prediction = malloc(64);
                    if (prediction != NULL) snprintf(prediction, 64, "%s", choice_words[lengths[e]]);
                } else if (r->vocab != NULL) {
                    prediction = detokenizer_decode(r->vocab, tokens, token_count);
                    for (int64_t t = 0; t < token_count; t++) {
                        if (detokenizer_has_piece(r->vocab, tokens[t])) continue;
                        if (pieceless_count++ == 0) pieceless_first = tokens[t], pieceless_example = index;
                    }
                }
                if (prediction == NULL && (classify || r->vocab != NULL)) {
                    status = gr_fail(err, "out of memory");
                    break;
                }
                fprintf(predictions, "{\"index\":%" PRId64, index);
                const gr_json *ref = index < r->refs.count ? r->refs.lines[index] : NULL;
                const gr_json *id = ref != NULL ? gr_json_member_find(ref, "id", NULL) : NULL;
                if (id != NULL) {
                    char id_text[512];
                    gr_text t;
                    gr_text_init(&t, id_text, sizeof id_text);
                    gr_json_append_text(&t, id);
                    fprintf(predictions, ",\"id\":%s", id_text);
                }
                if (prediction != NULL) {
                    fputs(",\"prediction\":", predictions);
                    write_json_string(predictions, prediction);
                }
                fputs(",\"tokens\":[", predictions);
                for (int64_t t = 0; t < token_count; t++) fprintf(predictions, "%s%" PRId64, t > 0 ? "," : "", tokens[t]);
                fputc(']', predictions);
                if (r->evaluate) {
                    double score = 0;
                    if (score_of(m, prediction, ref, r->references_path, index + 1, &score, err) != 0) {
                        free(prediction);
                        status = -1;
                        break;
                    }
                    total_score += score;
                    fprintf(predictions, ",\"score\":%.6g", score);
                }
                fputs("}\n", predictions);
                free(prediction);
            }
        }
        double t = now_seconds();
        if (batch_times != NULL) {
            batch_times[timed] = 1e3 * (t - batch_start);
            batch_times[batches + timed++] = 1e3 * batch_start;
        }
        int64_t done_count = base + in_batch;
        if (t - last_report >= 1.0 || done_count == examples) {
            last_report = t;
            fprintf(errf, "%s: %" PRId64 "/%" PRId64 " examples, %.1f examples/s\n", r->evaluate ? "eval" : "generate", done_count, examples,
                    (double)done_count / (t - started > 1e-9 ? t - started : 1e-9));
        }
    }
    if (fclose(predictions) != 0 && status == 0) status = gr_fail(err, "out of memory");
    predictions = NULL;
    if (status == 0 && o->predictions != NULL) status = write_file_atomically(o->predictions, text, text_length, err);
    if (status == 0) {
        if (o->predictions != NULL) fprintf(out, "predictions: %s (%" PRId64 " examples)\n", o->predictions, examples);
        if (r->evaluate) {
            const char *names[] = {"vqa", "label", "exact"};
            fprintf(out, "%s accuracy %.2f%% over %" PRId64 " examples\n", names[m], 100.0 * total_score / (double)examples, examples);
        } else if (o->predictions == NULL) {
            fwrite(text, 1, text_length, out);
        }
        if (pieceless_count > 0) {
            fprintf(errf,
                    "warning: %" PRId64 " generated token%s had no piece in %s and decoded to nothing (the first: id %" PRId64
                    " in example %" PRId64 "); the text of those predictions is incomplete\n",
                    pieceless_count, pieceless_count == 1 ? "" : "s", o->vocab, pieceless_first, pieceless_example);
        }
        if (batch_times != NULL) {
            double rss = peak_rss_mib();
            if (!isfinite(rss)) rss = 0; /* JSON has no NaN */
            fprintf(out, "{\"batches\": %" PRId64 ", \"batch_size\": %" PRId64 ", \"times_ms\": [", timed, slots);
            for (int64_t b = 0; b < timed; b++) fprintf(out, b > 0 ? ", %.3f" : "%.3f", batch_times[b]);
            fprintf(out, "], \"starts_ms\": [");
            for (int64_t b = 0; b < timed; b++) fprintf(out, b > 0 ? ", %.3f" : "%.3f", batch_times[batches + b]);
            fprintf(out, "], \"peak_rss_mb\": %.1f}\n", rss);
        }
    }
done:
    if (predictions != NULL) fclose(predictions);
    free(text);
    free(order);
    free(rows);
    free(sequences);
    free(lengths);
    free(batch_times);
    return status;
}

static int setup(run *r, const gr_program *program, gr_error *err) {
    generate_options *o = &r->opt;
    r->config = gr_program_generation(program);
    const gr_function *encode = gr_program_find(program, "encode"), *step = gr_program_find(program, "decode_step");
    if (r->config == NULL || encode == NULL || step == NULL) {
        return gr_fail(err, "this program cannot generate: it needs @encode, @decode_step and a generation config (compile a model spec, "
                         "not an IR file)");
    }
    if (o->predictions != NULL) { /* before generating everything, not after */
        const char *names[MAX_WEIGHTS + 4], *inputs[MAX_WEIGHTS + 4];
        int count = 0;
        for (int w = 0; w < o->weight_count; w++) names[count] = "--weights", inputs[count++] = o->weights[w];
        names[count] = "--checkpoint", inputs[count++] = o->checkpoint;
        names[count] = "--data", inputs[count++] = o->data;
        names[count] = "--vocab", inputs[count++] = o->vocab;
        names[count] = "--references", inputs[count++] = o->references;
        if (check_output_path("--predictions", o->predictions, names, inputs, count, err) != 0) return -1;
    }
    for (int w = 0; w < o->weight_count; w++) {
        r->weights[w] = gr_safetensors_open(o->weights[w], 0, err);
        if (r->weights[w] == NULL) return -1;
    }
    if (o->checkpoint != NULL && (r->checkpoint = gr_safetensors_open(o->checkpoint, 0, err)) == NULL) return -1;
    r->d.rt = gr_runtime_create_checked(o->threads, err);
    if (r->d.rt == NULL) return -1;
    if (bind(&r->d.encode, encode, r->checkpoint, r->weights, o->weight_count, step, 0, err) != 0) return -1;
    /* The caches update in place (the manifest marks them so): a greedy step then needs no copy back. */
    if (bind(&r->d.step, step, r->checkpoint, r->weights, o->weight_count, NULL, GR_BIND_RESULTS_IN_PLACE, err) != 0) return -1;
    if (decoder_setup(&r->d, err) != 0) return -1;
    if (r->config->vocab_size != r->d.vocab) {
        return gr_fail(err, "manifest: generation.vocab_size %" PRId64 " differs from decode_step's logits width %" PRId64,
                    r->config->vocab_size, r->d.vocab);
    }
    r->data = train_data_open_examples(encode, &o->data, 1, err);
    if (r->data == NULL) return -1;
    if (o->vocab != NULL) {
        r->vocab = detokenizer_load(o->vocab, err);
        if (r->vocab == NULL) return -1;
        /* Fewer pieces than the model has ids is normal (VL models add tokens); more means the
         * file belongs to another model, and its text would be wrong for every id. */
        if (detokenizer_size(r->vocab) > r->config->vocab_size) {
            return gr_fail(err, "--vocab %s: has pieces for ids up to %" PRId64 ", but the model's vocabulary is [0, %" PRId64
                                "): the file belongs to another model",
                        o->vocab, detokenizer_size(r->vocab) - 1, r->config->vocab_size);
        }
        const gr_generation_config *c = r->config;
        int64_t specials[] = {c->decoder_start_token_id, c->eos_token_id, c->pad_token_id, c->bos_token_id};
        for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) detokenizer_mark_special(r->vocab, specials[i]);
    }
    if (r->evaluate || o->references != NULL) {
        if (o->references != NULL) {
            r->references_path = strdup(o->references);
        } else {
            size_t length = strlen(o->data);
            const char *suffix = ".safetensors";
            size_t stem = length > strlen(suffix) && strcmp(o->data + length - strlen(suffix), suffix) == 0 ? length - strlen(suffix) : length;
            r->references_path = malloc(stem + 32);
            if (r->references_path != NULL) snprintf(r->references_path, stem + 32, "%.*s.references.jsonl", (int)stem, o->data);
        }
        if (r->references_path == NULL) return gr_fail(err, "out of memory");
        if (references_load(&r->refs, r->references_path, err) != 0) return -1;
    }
    return 0;
}

int generate_command(const gr_program *program, const char *program_name, int evaluate, int argc, char **argv, FILE *out, FILE *err) {
    run r;
    memset(&r, 0, sizeof r);
    r.evaluate = evaluate != 0;
    r.opt.num_beams = r.opt.max_length = r.opt.no_repeat = r.opt.limit = -1;
    r.opt.forced_eos = -2;
    r.opt.early_stopping = -1;
    r.opt.length_penalty = NAN;
    int parsed = parse_options(program_name, r.evaluate, argc, argv, &r.opt, err);
    if (parsed < 0) {
        print_generate_help(out, program_name);
        return EXIT_OK;
    }
    if (parsed != EXIT_OK) return parsed;
    gr_error error;
    int status = setup(&r, program, &error);
    if (status == 0) status = run_generation(&r, out, err, &error);
    run_free(&r);
    if (status != 0) {
        fprintf(err, "error: %s\n", error.message);
        return EXIT_ERROR;
    }
    return EXIT_OK;
}
