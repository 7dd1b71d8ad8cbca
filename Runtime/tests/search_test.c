/*
 * search_test.c: greedy and beam search (main/search.c) against independent references.
 *
 * The fake decoder keeps, per slot, its own cache of the tokens fed so far (appended by `step`,
 * permuted by `reorder`) and computes the logits of a slot from that cache alone: a search that
 * feeds the wrong token or reorders the caches wrongly sees the logits of another prefix and
 * drifts from the references, which compute the logits straight from each candidate's tokens.
 *
 * References: a brute-force argmax path (greedy), an exhaustive enumeration of every sequence
 * (beam search with num_beams large enough to keep every prefix), a step-by-step transcription of
 * transformers 4.2.1's beam_search / BeamSearchScorer / BeamHypotheses (small num_beams), and a
 * hand-worked two-beam example.
 */
#include "test.h"

#include "../main/search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { START = 0, PAD = 1, EOS = 2 };
#define MAX_VOCAB 8
#define MAX_LENGTH 10
#define MAX_BEAMS 8
#define CAPACITY 64

/* Logits of the next token after prefix[0, length) for one example. */
typedef void (*logits_fn)(const void *params, uint64_t seed, int64_t example, const int64_t *prefix, int64_t length, float *out,
                          int64_t vocab);

/* ---- logits: a hash of (seed, example, prefix) -------------------------------------------------- */

static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Pseudo-random logits in [-4, 4) (24-bit steps, so no ties in practice), EOS shifted by eos_bias. */
typedef struct hash_params {
    float eos_bias;
} hash_params;

static void hash_logits(const void *params, uint64_t seed, int64_t example, const int64_t *prefix, int64_t length, float *out,
                        int64_t vocab) {
    const hash_params *p = params;
    uint64_t h = mix(seed * 1000003u + (uint64_t)example);
    for (int64_t i = 0; i < length; i++) h = mix(h ^ ((uint64_t)prefix[i] * 0x100000001B3ull + (uint64_t)i));
    for (int64_t v = 0; v < vocab; v++) {
        out[v] = (float)((double)(mix(h + (uint64_t)v) >> 40) / 16777216.0 * 8.0 - 4.0);
        if (v == EOS && p != NULL) out[v] += p->eos_bias;
    }
}

/* ---- logits: a table of next-token probabilities by prefix (the hand-worked example) ---------- */

typedef struct table_entry {
    int64_t length;
    int64_t prefix[6];
    double p[6]; /* START, PAD, EOS, A, B, C */
} table_entry;

typedef struct table {
    const table_entry *entries;
    size_t count;
    double fallback[6];
} table;

static void table_logits(const void *params, uint64_t seed, int64_t example, const int64_t *prefix, int64_t length, float *out,
                         int64_t vocab) {
    (void)seed;
    (void)example;
    const table *t = params;
    const double *p = t->fallback;
    for (size_t i = 0; i < t->count; i++) {
        if (t->entries[i].length == length && memcmp(t->entries[i].prefix, prefix, (size_t)length * sizeof *prefix) == 0) {
            p = t->entries[i].p;
        }
    }
    for (int64_t v = 0; v < vocab; v++) out[v] = p[v] > 0 ? (float)log(p[v]) : -INFINITY;
}

/* ---- the fake decoder ----------------------------------------------------------------------------- */

typedef struct fake {
    search_decoder decoder;
    int64_t group;     /* slot s belongs to example s / group */
    int64_t rows;      /* slots in use (examples · beams); the others must be fed pad */
    int64_t *history;  /* [slots][CAPACITY]: the tokens fed to each slot's cache */
    int64_t *filled;   /* [slots] */
    int64_t *spare_history, *spare_filled;
    float *logits;     /* [slots][vocab] */
    logits_fn fn;
    const void *params;
    uint64_t seed;
    bool identity_only; /* greedy and classify never move a cache */
    int64_t steps, reorders, violations;
    int64_t fail_step, fail_reorder; /* the call (0-based) that fails, or -1 */
} fake;

static const float *fake_step(void *context, const int64_t *tokens, int64_t position, gr_error *err) {
    fake *f = context;
    int64_t slots = f->decoder.slots, vocab = f->decoder.vocab;
    if (f->steps++ == f->fail_step) {
        if (err != NULL) snprintf(err->message, sizeof err->message, "fake decoder: step at position %lld failed", (long long)position);
        return NULL;
    }
    for (int64_t s = 0; s < slots; s++) {
        if (f->filled[s] != position || position >= CAPACITY) {
            f->violations++;
            continue;
        }
        if (s >= f->rows && tokens[s] != PAD) f->violations++;
        f->history[s * CAPACITY + position] = tokens[s];
        f->filled[s] = position + 1;
        f->fn(f->params, f->seed, s / f->group, f->history + s * CAPACITY, position + 1, f->logits + s * vocab, vocab);
    }
    return f->logits;
}

static int fake_reorder(void *context, const int64_t *source, gr_error *err) {
    fake *f = context;
    int64_t slots = f->decoder.slots;
    if (f->reorders++ == f->fail_reorder) {
        if (err != NULL) snprintf(err->message, sizeof err->message, "fake decoder: reorder failed");
        return -1;
    }
    for (int64_t i = 0; i < slots; i++) {
        int64_t from = source[i];
        if (from < 0 || from >= slots) {
            f->violations++;
            if (err != NULL) snprintf(err->message, sizeof err->message, "fake decoder: source %lld out of range", (long long)from);
            return -1;
        }
        if (f->identity_only && from != i) f->violations++;
        if (i < f->rows && from / f->group != i / f->group) f->violations++; /* a beam moved to another example */
        memcpy(f->spare_history + i * CAPACITY, f->history + from * CAPACITY, CAPACITY * sizeof *f->history);
        f->spare_filled[i] = f->filled[from];
    }
    int64_t *swap = f->history;
    f->history = f->spare_history;
    f->spare_history = swap;
    swap = f->filled;
    f->filled = f->spare_filled;
    f->spare_filled = swap;
    return 0;
}

static void fake_init(fake *f, int64_t slots, int64_t vocab, int64_t group, int64_t rows, logits_fn fn, const void *params, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->decoder = (search_decoder){f, slots, vocab, fake_step, fake_reorder};
    f->group = group;
    f->rows = rows;
    f->history = calloc((size_t)(slots * CAPACITY), sizeof *f->history);
    f->spare_history = calloc((size_t)(slots * CAPACITY), sizeof *f->history);
    f->filled = calloc((size_t)slots, sizeof *f->filled);
    f->spare_filled = calloc((size_t)slots, sizeof *f->filled);
    f->logits = calloc((size_t)(slots * vocab), sizeof *f->logits);
    f->fn = fn;
    f->params = params;
    f->seed = seed;
    f->fail_step = f->fail_reorder = -1;
}

static void fake_free(fake *f) {
    free(f->history);
    free(f->spare_history);
    free(f->filled);
    free(f->spare_filled);
    free(f->logits);
}

/* ---- shared reference pieces ------------------------------------------------------------------------ */

/* torch.log_softmax as search.h documents it: in double, rounded to float. */
static void ref_log_softmax(const float *logits, float *out, int64_t vocab) {
    double maximum = -INFINITY, total = 0;
    for (int64_t v = 0; v < vocab; v++) maximum = logits[v] > maximum ? logits[v] : maximum;
    for (int64_t v = 0; v < vocab; v++) total += exp((double)logits[v] - maximum);
    double shift = maximum + log(total);
    for (int64_t v = 0; v < vocab; v++) out[v] = (float)((double)logits[v] - shift);
}

/* NoRepeatNGramLogitsProcessor: every n-gram of seq[0, length) whose first n − 1 tokens are the
 * last n − 1 tokens bans its last token. */
static void ref_ban(const int64_t *seq, int64_t length, int64_t n, float *scores) {
    if (n <= 0) return;
    for (int64_t i = 0; i + n <= length; i++) {
        bool same = true;
        for (int64_t j = 0; j < n - 1; j++) same = same && seq[i + j] == seq[length - (n - 1) + j];
        if (same) scores[seq[i + n - 1]] = -INFINITY;
    }
}

static search_options options_of(int64_t beams, int64_t max_length, int64_t ngram, int64_t forced, bool early, double penalty) {
    return (search_options){beams, max_length, ngram, START, EOS, PAD, forced, early, penalty};
}

/* Compares one generated row with the expected one; prints the first differences. */
static int64_t mismatches_printed;
static bool same_row(const int64_t *got, int64_t got_length, const int64_t *want, int64_t want_length, int64_t max_length,
                     const char *what, uint64_t seed, int64_t example) {
    bool same = got_length == want_length && memcmp(got, want, (size_t)max_length * sizeof *got) == 0;
    if (!same && mismatches_printed++ < 8) {
        fprintf(stderr, "    %s: seed %llu example %lld: got [", what, (unsigned long long)seed, (long long)example);
        for (int64_t t = 0; t < max_length; t++) fprintf(stderr, "%s%lld", t ? " " : "", (long long)got[t]);
        fprintf(stderr, "] length %lld, want [", (long long)got_length);
        for (int64_t t = 0; t < max_length; t++) fprintf(stderr, "%s%lld", t ? " " : "", (long long)want[t]);
        fprintf(stderr, "] length %lld\n", (long long)want_length);
    }
    return same;
}

/* ---- greedy -------------------------------------------------------------------------------------------- */

/* The argmax path of one example, computed from the prefix directly. */
static void ref_greedy(const search_options *o, int64_t vocab, logits_fn fn, const void *params, uint64_t seed, int64_t example,
                       int64_t *row, int64_t *length) {
    for (int64_t t = 0; t < o->max_length; t++) row[t] = o->pad;
    row[0] = o->decoder_start;
    *length = 1;
    while (*length < o->max_length) {
        float logits[MAX_VOCAB];
        fn(params, seed, example, row, *length, logits, vocab);
        ref_ban(row, *length, o->no_repeat_ngram, logits);
        int64_t best = 0;
        for (int64_t v = 1; v < vocab; v++) {
            if (logits[v] > logits[best]) best = v;
        }
        row[(*length)++] = best;
        if (best == o->eos) break;
    }
}

static void test_greedy_matches_argmax_path(void) {
    const int64_t vocab = 5, examples = 3, slots = 5, max_length = 8;
    hash_params params = {0.3f};
    int64_t runs = 0, mismatched = 0, violations = 0, bad_steps = 0, ended_by_eos = 0, reached_max = 0, ban_mattered = 0;
    for (int64_t ngram = 0; ngram <= 3; ngram++) {
        for (uint64_t seed = 1; seed <= 150; seed++) {
            search_options o = options_of(1, max_length, ngram, -1, false, 1.0);
            fake f;
            fake_init(&f, slots, vocab, 1, examples, hash_logits, &params, seed);
            f.identity_only = true;
            int64_t sequences[3 * MAX_LENGTH], lengths[3];
            gr_error err = {{0}};
            int status = search_generate(&f.decoder, &o, examples, sequences, lengths, &err);
            runs++;
            if (status != 0) {
                mismatched++;
                fprintf(stderr, "    greedy failed: %s\n", err.message);
            }
            int64_t longest = 0;
            for (int64_t e = 0; e < examples && status == 0; e++) {
                int64_t row[MAX_LENGTH], length;
                ref_greedy(&o, vocab, hash_logits, &params, seed, e, row, &length);
                mismatched += !same_row(sequences + e * max_length, lengths[e], row, length, max_length, "greedy", seed, e);
                longest = length > longest ? length : longest;
                ended_by_eos += row[length - 1] == EOS;
                reached_max += row[length - 1] != EOS;
                if (ngram > 0) {
                    search_options unbanned = o;
                    unbanned.no_repeat_ngram = 0;
                    int64_t plain[MAX_LENGTH], plain_length;
                    ref_greedy(&unbanned, vocab, hash_logits, &params, seed, e, plain, &plain_length);
                    ban_mattered += plain_length != length || memcmp(plain, row, (size_t)max_length * sizeof *row) != 0;
                }
            }
            /* one decoder step per generated position of the longest sequence, then it stops */
            bad_steps += f.steps != longest - 1 || f.reorders != f.steps;
            violations += f.violations;
            fake_free(&f);
        }
    }
    CHECK_EQ(mismatched, 0);
    CHECK_EQ(violations, 0);
    CHECK_EQ(bad_steps, 0);
    /* the cases exercise both endings and the n-gram ban */
    CHECK(ended_by_eos > 50 && reached_max > 50);
    CHECK(ban_mattered > 50);
    (void)runs;
}

/* ---- beam search: exhaustive -------------------------------------------------------------------------- */

typedef struct brute {
    const search_options *o;
    int64_t vocab;
    const void *params;
    uint64_t seed;
    int64_t example;
    int64_t prefix[MAX_LENGTH];
    double best;
    int64_t best_tokens[MAX_LENGTH];
    int64_t best_length;
    int64_t ties;
    int64_t hypotheses;
} brute;

static void brute_record(brute *b, int64_t length, float sum) {
    double score = (double)sum / pow((double)length, b->o->length_penalty);
    b->hypotheses++;
    if (score > b->best) {
        b->best = score;
        memcpy(b->best_tokens, b->prefix, sizeof b->prefix);
        b->best_length = length;
        b->ties = 0;
    } else if (score == b->best) {
        b->ties++;
    }
}

/* Every continuation of prefix[0, length) with log-prob sum `sum` (accumulated in float as the
 * beam scores are): an EOS ends a hypothesis of `length` tokens, and so does reaching max_length. */
static void brute_visit(brute *b, int64_t length, float sum) {
    const search_options *o = b->o;
    float logits[MAX_VOCAB], logp[MAX_VOCAB];
    hash_logits(b->params, b->seed, b->example, b->prefix, length, logits, b->vocab);
    if (o->forced_eos >= 0 && length == o->max_length - 1) {
        for (int64_t v = 0; v < b->vocab; v++) {
            if (v != o->forced_eos) logits[v] = -INFINITY;
        }
    }
    ref_log_softmax(logits, logp, b->vocab);
    ref_ban(b->prefix, length, o->no_repeat_ngram, logp);
    for (int64_t v = 0; v < b->vocab; v++) {
        if (logp[v] == -INFINITY) continue;
        float total = sum + logp[v];
        if (v == o->eos) {
            brute_record(b, length, total);
            continue;
        }
        b->prefix[length] = v;
        if (length + 1 == o->max_length) {
            brute_record(b, length + 1, total);
        } else {
            brute_visit(b, length + 1, total);
        }
        b->prefix[length] = o->pad;
    }
}

static void test_beam_matches_exhaustive_search(void) {
    /* V = 5 and max_length 4: at most 1 + 4 + 16 live prefixes and 16 · 5 = 80 candidates at a
     * step, so 80 beams keep every real prefix and rank every real EOS below num_beams. */
    const int64_t vocab = 5, max_length = 4, beams = 80, examples = 2, slots = examples * beams + 3;
    struct {
        double penalty;
        int64_t ngram, forced;
    } configs[] = {{1.0, 0, -1}, {0.0, 0, -1}, {1.0, 2, -1}, {0.0, 2, EOS}, {1.0, 2, EOS}, {2.0, 0, -1}};
    hash_params params = {0.5f};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        int64_t mismatched = 0, violations = 0, ties = 0, short_winners = 0, long_winners = 0;
        for (uint64_t seed = 1; seed <= 60; seed++) {
            search_options o = options_of(beams, max_length, configs[c].ngram, configs[c].forced, false, configs[c].penalty);
            fake f;
            fake_init(&f, slots, vocab, beams, examples * beams, hash_logits, &params, seed);
            int64_t sequences[2 * MAX_LENGTH], lengths[2];
            gr_error err = {{0}};
            if (search_generate(&f.decoder, &o, examples, sequences, lengths, &err) != 0) {
                fprintf(stderr, "    beam failed: %s\n", err.message);
                mismatched++;
                fake_free(&f);
                continue;
            }
            violations += f.violations + (f.reorders != f.steps);
            for (int64_t e = 0; e < examples; e++) {
                brute b = {.o = &o, .vocab = vocab, .params = &params, .seed = seed, .example = e, .best = -INFINITY};
                for (int64_t t = 0; t < MAX_LENGTH; t++) b.prefix[t] = PAD;
                b.prefix[0] = START;
                brute_visit(&b, 1, 0.0f);
                if (b.ties > 0) {
                    ties++;
                    continue;
                }
                int64_t want[MAX_LENGTH], want_length = b.best_length;
                for (int64_t t = 0; t < max_length; t++) want[t] = t < b.best_length ? b.best_tokens[t] : PAD;
                if (want_length < max_length) want[want_length++] = EOS;
                short_winners += b.best_length < max_length;
                long_winners += b.best_length == max_length;
                mismatched += !same_row(sequences + e * max_length, lengths[e], want, want_length, max_length, "exhaustive beam", seed, e);
            }
            fake_free(&f);
        }
        if (mismatched != 0) fprintf(stderr, "    config %zu: %lld mismatches\n", c, (long long)mismatched);
        CHECK_EQ(mismatched, 0);
        CHECK_EQ(violations, 0);
        CHECK_EQ(ties, 0);
        /* both kinds of winners occur (with forced EOS every winner ends with EOS) */
        CHECK(short_winners > 0);
        CHECK(configs[c].forced >= 0 || long_winners > 0);
    }
}

/* ---- beam search: transformers 4.2.1, transcribed --------------------------------------------------- */

typedef struct ref_hypothesis {
    double score;
    int64_t length;
    int64_t tokens[MAX_LENGTH];
} ref_hypothesis;

typedef struct ref_hypotheses {
    ref_hypothesis beams[MAX_BEAMS + 1];
    int64_t count;
    double worst_score;
} ref_hypotheses;

/* BeamHypotheses.add */
static void ref_add(ref_hypotheses *h, int64_t num_beams, const int64_t *hyp, int64_t length, double sum_logprobs, double penalty) {
    double score = sum_logprobs / pow((double)length, penalty);
    if (h->count < num_beams || score > h->worst_score) {
        ref_hypothesis *added = &h->beams[h->count++];
        added->score = score;
        added->length = length;
        for (int64_t t = 0; t < MAX_LENGTH; t++) added->tokens[t] = t < length ? hyp[t] : PAD;
        if (h->count > num_beams) {
            /* sorted_next_scores = sorted([(s, idx) for idx, (s, _) in enumerate(self.beams)]) */
            int64_t order[MAX_BEAMS + 1];
            for (int64_t i = 0; i < h->count; i++) order[i] = i;
            for (int64_t i = 1; i < h->count; i++) {
                for (int64_t j = i; j > 0 && h->beams[order[j]].score < h->beams[order[j - 1]].score; j--) {
                    int64_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
            }
            double second = h->beams[order[1]].score;
            for (int64_t i = order[0]; i + 1 < h->count; i++) h->beams[i] = h->beams[i + 1]; /* del self.beams[...] */
            h->count--;
            h->worst_score = second;
        } else {
            h->worst_score = score < h->worst_score ? score : h->worst_score;
        }
    }
}

/* BeamHypotheses.is_done */
static bool ref_is_done(const ref_hypotheses *h, int64_t num_beams, bool early_stopping, double penalty, double best_sum_logprobs,
                        int64_t cur_len) {
    if (h->count < num_beams) return false;
    if (early_stopping) return true;
    return h->worst_score >= best_sum_logprobs / pow((double)cur_len, penalty);
}

/* generate(..., num_beams=K) of one example: beam_search + BeamSearchScorer.process / finalize.
 * Returns false when process would raise (fewer than K continuations). */
static bool ref_beam(const search_options *o, int64_t vocab, logits_fn fn, const void *params, uint64_t seed, int64_t example, int64_t *row,
                     int64_t *row_length) {
    int64_t K = o->num_beams, max_length = o->max_length;
    int64_t input_ids[MAX_BEAMS][MAX_LENGTH];
    float beam_scores[MAX_BEAMS];
    for (int64_t b = 0; b < K; b++) {
        for (int64_t t = 0; t < MAX_LENGTH; t++) input_ids[b][t] = PAD;
        input_ids[b][0] = o->decoder_start;
        beam_scores[b] = b == 0 ? 0.0f : -1e9f;
    }
    ref_hypotheses hyps;
    memset(&hyps, 0, sizeof hyps);
    hyps.worst_score = 1e9;
    bool done = false;
    int64_t cur_len = 1;
    while (cur_len < max_length) {
        float next_token_scores[MAX_BEAMS * MAX_VOCAB];
        for (int64_t b = 0; b < K; b++) {
            float logits[MAX_VOCAB], logp[MAX_VOCAB];
            fn(params, seed, example, input_ids[b], cur_len, logits, vocab);
            if (o->forced_eos >= 0 && cur_len == max_length - 1) { /* adjust_logits_during_generation */
                for (int64_t v = 0; v < vocab; v++) {
                    if (v != o->forced_eos) logits[v] = -INFINITY;
                }
            }
            ref_log_softmax(logits, logp, vocab);
            ref_ban(input_ids[b], cur_len, o->no_repeat_ngram, logp);
            for (int64_t v = 0; v < vocab; v++) next_token_scores[b * vocab + v] = logp[v] + beam_scores[b];
        }
        /* torch.topk(scores.view(K·V), 2K, sorted=True), ties in index order */
        int64_t order[MAX_BEAMS * MAX_VOCAB];
        for (int64_t i = 0; i < K * vocab; i++) order[i] = i;
        for (int64_t i = 1; i < K * vocab; i++) {
            for (int64_t j = i; j > 0 && next_token_scores[order[j]] > next_token_scores[order[j - 1]]; j--) {
                int64_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        }
        /* BeamSearchScorer.process */
        int64_t next_ids[MAX_BEAMS][MAX_LENGTH];
        float next_beam_scores[MAX_BEAMS];
        int64_t beam_idx = 0;
        for (int64_t rank = 0; rank < 2 * K; rank++) {
            int64_t next_index = order[rank] / vocab, next_token = order[rank] % vocab;
            float next_score = next_token_scores[order[rank]];
            if (next_token == o->eos) {
                if (rank >= K) continue;
                ref_add(&hyps, K, input_ids[next_index], cur_len, (double)next_score, o->length_penalty);
            } else {
                memcpy(next_ids[beam_idx], input_ids[next_index], sizeof next_ids[beam_idx]);
                next_ids[beam_idx][cur_len] = next_token;
                next_beam_scores[beam_idx] = next_score;
                beam_idx++;
            }
            if (beam_idx == K) break;
        }
        if (beam_idx < K) return false;
        done = done || ref_is_done(&hyps, K, o->early_stopping, o->length_penalty, (double)next_token_scores[order[0]], cur_len);
        memcpy(input_ids, next_ids, sizeof input_ids);
        memcpy(beam_scores, next_beam_scores, sizeof beam_scores);
        cur_len++;
        if (done) break;
    }
    /* finalize */
    if (!done) {
        for (int64_t b = 0; b < K; b++) ref_add(&hyps, K, input_ids[b], cur_len, (double)beam_scores[b], o->length_penalty);
    }
    /* sorted(hyps, key=score).pop(): the last inserted of the best */
    int64_t best = 0;
    for (int64_t i = 1; i < hyps.count; i++) {
        if (!(hyps.beams[i].score < hyps.beams[best].score)) best = i;
    }
    for (int64_t t = 0; t < max_length; t++) row[t] = hyps.beams[best].tokens[t];
    *row_length = hyps.beams[best].length;
    if (*row_length < max_length) row[(*row_length)++] = o->eos;
    return true;
}

static void test_beam_matches_transformers_transcription(void) {
    const int64_t vocab = 6, examples = 3;
    const int64_t beam_counts[] = {2, 3, 4}, max_lengths[] = {2, 3, 5, 8}, ngrams[] = {0, 2, 3}, forced[] = {-1, EOS};
    const double penalties[] = {1.0, 0.0, 2.0, -0.5};
    hash_params params = {0.2f};
    int64_t runs = 0, mismatched = 0, violations = 0, early_done = 0;
    for (size_t bi = 0; bi < 3; bi++) {
        for (size_t li = 0; li < 4; li++) {
            for (size_t ni = 0; ni < 3; ni++) {
                for (size_t fi = 0; fi < 2; fi++) {
                    for (int early = 0; early <= 1; early++) {
                        for (size_t pi = 0; pi < 4; pi++) {
                            for (uint64_t seed = 1; seed <= 4; seed++) {
                                int64_t K = beam_counts[bi], max_length = max_lengths[li];
                                search_options o = options_of(K, max_length, ngrams[ni], forced[fi], early != 0, penalties[pi]);
                                int64_t slots = examples * K + 2;
                                fake f;
                                fake_init(&f, slots, vocab, K, examples * K, hash_logits, &params, seed * 7919 + (uint64_t)(bi * 31 + li));
                                int64_t sequences[3 * MAX_LENGTH], lengths[3];
                                gr_error err = {{0}};
                                runs++;
                                if (search_generate(&f.decoder, &o, examples, sequences, lengths, &err) != 0) {
                                    fprintf(stderr, "    beam failed: %s\n", err.message);
                                    mismatched++;
                                    fake_free(&f);
                                    continue;
                                }
                                violations += f.violations + (f.reorders != f.steps);
                                early_done += f.steps < max_length - 1;
                                for (int64_t e = 0; e < examples; e++) {
                                    int64_t want[MAX_LENGTH], want_length;
                                    if (!ref_beam(&o, vocab, hash_logits, &params, f.seed, e, want, &want_length)) {
                                        mismatched++;
                                        continue;
                                    }
                                    mismatched += !same_row(sequences + e * max_length, lengths[e], want, want_length, max_length,
                                                            "beam vs transformers", f.seed, e);
                                }
                                fake_free(&f);
                            }
                        }
                    }
                }
            }
        }
    }
    CHECK_EQ(mismatched, 0);
    CHECK_EQ(violations, 0);
    CHECK(early_done > 0); /* some runs stop before max_length (every example done) */
    (void)runs;
}

/* ---- beam search: a hand-worked example --------------------------------------------------------------- */

enum { A = 3, B = 4, C = 5 };

/* p(next | prefix) over START, PAD, EOS, A, B, C. */
static const table_entry hand_entries[] = {
    {1, {START}, {0, 0, .06, .5, .4, .04}},
    {2, {START, A}, {0, 0, .3, .6, .06, .04}},
    {2, {START, B}, {0, 0, .35, .2, .15, .3}},
    {3, {START, A, A}, {0, 0, .15, .7, .1, .05}},
    {3, {START, B, C}, {0, 0, .12, .3, .08, .5}},
    {4, {START, B, C, C}, {0, 0, .2, .3, .1, .4}},
    {4, {START, B, C, A}, {0, 0, .1, .3, .4, .2}},
    {3, {START, C, C}, {0, 0, .25, .25, .25, .25}},
};
static const table hand_table = {hand_entries, sizeof hand_entries / sizeof hand_entries[0], {0, 0, .1, .2, .3, .4}};

/* Runs one example on the hand table; returns the decoder steps taken. */
static int64_t run_hand(const search_options *o, int64_t *row, int64_t *length) {
    fake f;
    int64_t slots = o->num_beams + 1;
    fake_init(&f, slots, 6, o->num_beams, o->num_beams, table_logits, &hand_table, 0);
    gr_error err = {{0}};
    CHECK_EQ(search_generate(&f.decoder, o, 1, row, length, &err), 0);
    CHECK_EQ(f.violations, 0);
    int64_t steps = f.steps;
    fake_free(&f);
    return steps;
}

/*
 * num_beams 2, max_length 5 (products of probabilities below; scores are their logs):
 *  length 1: S → A .5, B .4, EOS .06, C .04: beams SA, SB.
 *  length 2: SAA .30, SA·EOS .15, SB·EOS .14, SBC .12, SBA .08 ...: SAA kept; SA·EOS (rank 1) a
 *            hypothesis, ln(.15)/2 = −0.9486; SB·EOS (rank 2 >= num_beams) dropped; SBC kept.
 *  length 3: SAA cannot take A (the 2-gram A A exists; without the ban SAAA .21 would lead):
 *            SBCC .06, SAA·EOS .045, SBCA .036, SAAB .03: SBCC kept, SAA·EOS a hypothesis
 *            (ln(.045)/3 = −1.0337), SBCA kept. Two hypotheses: early_stopping would stop here.
 *            Not done otherwise: worst −1.0337 < ln(.06)/3 = −0.9378.
 *  length 4 = max_length − 1, forced EOS: SBCC·EOS ln(.06)/4 = −0.7034 and SBCA·EOS
 *            ln(.036)/4 = −0.8311 replace SAA·EOS and SA·EOS; best SBCC → S B C C EOS.
 */
static void test_beam_hand_worked(void) {
    int64_t row[5], length;
    /* length_penalty 1, forced EOS, 2-gram ban */
    search_options o = options_of(2, 5, 2, EOS, false, 1.0);
    CHECK_EQ(run_hand(&o, row, &length), 4);
    int64_t want1[5] = {START, B, C, C, EOS};
    CHECK(memcmp(row, want1, sizeof row) == 0);
    CHECK_EQ(length, 5);

    /* length_penalty 0: raw sums; SA·EOS ln(.15) = −1.897 beats SBCC·EOS ln(.06) = −2.813 */
    o = options_of(2, 5, 2, EOS, false, 0.0);
    run_hand(&o, row, &length);
    int64_t want2[5] = {START, A, EOS, PAD, PAD};
    CHECK(memcmp(row, want2, sizeof row) == 0);
    CHECK_EQ(length, 3);

    /* early_stopping: done after length 3 with {SA·EOS −0.9486, SAA·EOS −1.0337}; no 4th step */
    o = options_of(2, 5, 2, EOS, true, 1.0);
    CHECK_EQ(run_hand(&o, row, &length), 3);
    CHECK(memcmp(row, want2, sizeof row) == 0);
    CHECK_EQ(length, 3);

    /* no forced EOS: at length 4 SBCC cannot take C (2-gram C C): SBCCA .018, SBCAB .0144,
     * SBCC·EOS .012 (rank 2, dropped); finalize adds SBCCA ln(.018)/5 = −0.8035 and SBCAB
     * ln(.0144)/5 = −0.8481: S B C C A, no EOS (max_length reached) */
    o = options_of(2, 5, 2, -1, false, 1.0);
    CHECK_EQ(run_hand(&o, row, &length), 4);
    int64_t want4[5] = {START, B, C, C, A};
    CHECK(memcmp(row, want4, sizeof row) == 0);
    CHECK_EQ(length, 5);

    /* no n-gram ban: at length 3 SAAA .21, SBCC .06 lead (SAA·EOS rank 2 is dropped); forced
     * EOS: SAAA·EOS ln(.21)/4 = −0.3902 wins */
    o = options_of(2, 5, 0, EOS, false, 1.0);
    run_hand(&o, row, &length);
    int64_t want5[5] = {START, A, A, A, EOS};
    CHECK(memcmp(row, want5, sizeof row) == 0);
    CHECK_EQ(length, 5);

    /* greedy on the same table: S A A, then A banned → EOS (.15 > B .1); without the ban
     * S A A A and then the fallback's argmax C */
    o = options_of(1, 5, 2, -1, false, 1.0);
    CHECK_EQ(run_hand(&o, row, &length), 3);
    int64_t want6[5] = {START, A, A, EOS, PAD};
    CHECK(memcmp(row, want6, sizeof row) == 0);
    CHECK_EQ(length, 4);
    o = options_of(1, 5, 0, -1, false, 1.0);
    CHECK_EQ(run_hand(&o, row, &length), 4);
    int64_t want7[5] = {START, A, A, A, C};
    CHECK(memcmp(row, want7, sizeof row) == 0);
    CHECK_EQ(length, 5);

    /* max_length 2 with forced EOS: the only step is forced → S EOS */
    o = options_of(2, 2, 0, EOS, false, 1.0);
    int64_t row2[2], length2;
    run_hand(&o, row2, &length2);
    CHECK_EQ(row2[0], START);
    CHECK_EQ(row2[1], EOS);
    CHECK_EQ(length2, 2);
}

/* Equal scores (length_penalty 0, probabilities chosen so that the float sums are equal):
 *  length 1: S → A .4, B .4 (equal: the lower index, A, ranks first), EOS .2: beams SA, SB.
 *  length 2: SA·EOS, SA·C, SB·EOS, SB·C all .2: SA·EOS (rank 0) a hypothesis, SA·C kept, SB·EOS
 *            (rank 2) dropped, SB·C kept. Finalize: SA·C joins (room), SB·C ties the worst and
 *            is not added (BeamHypotheses.add needs score > worst). Of the equal SA·EOS and SA·C,
 *            sorted(...).pop() takes the last added: S A C. */
static const table_entry tie_entries[] = {
    {1, {START}, {0, 0, .2, .4, .4, 0}},
    {2, {START, A}, {0, 0, .5, 0, 0, .5}},
    {2, {START, B}, {0, 0, .5, 0, 0, .5}},
};
static const table tie_table = {tie_entries, sizeof tie_entries / sizeof tie_entries[0], {0, 0, .1, .2, .3, .4}};

/* Equal top-k candidates: S → A, B, C .3 each, EOS .1. num_beams 2 keeps A and B (equal scores
 * rank by index) and drops C; then S A EOS (.3) beats S B EOS and S B A (.15 each): S A EOS.
 * Had C and B been kept, S C EOS (.27) would win. Greedy takes the first equal maximum, A. */
static const table_entry topk_tie_entries[] = {
    {1, {START}, {0, 0, .1, .3, .3, .3}},
    {2, {START, A}, {0, 0, 1, 0, 0, 0}},
    {2, {START, B}, {0, 0, .5, .5, 0, 0}},
    {2, {START, C}, {0, 0, .9, .1, 0, 0}},
};
static const table topk_tie_table = {topk_tie_entries, sizeof topk_tie_entries / sizeof topk_tie_entries[0], {0, 0, .1, .2, .3, .4}};

static void test_beam_ties(void) {
    for (int64_t beams = 1; beams <= 2; beams++) {
        fake f;
        fake_init(&f, 2, 6, beams, beams, table_logits, &topk_tie_table, 0);
        search_options o = options_of(beams, 3, 0, -1, false, 0.0);
        int64_t row[3], length;
        gr_error err = {{0}};
        CHECK_EQ(search_generate(&f.decoder, &o, 1, row, &length, &err), 0);
        CHECK_EQ(row[0], START);
        CHECK_EQ(row[1], A);
        CHECK_EQ(row[2], EOS);
        CHECK_EQ(length, 3);
        CHECK_EQ(f.violations, 0);
        fake_free(&f);
    }

    fake f;
    fake_init(&f, 2, 6, 2, 2, table_logits, &tie_table, 0);
    search_options o = options_of(2, 3, 0, -1, false, 0.0);
    int64_t row[3], length;
    gr_error err = {{0}};
    CHECK_EQ(search_generate(&f.decoder, &o, 1, row, &length, &err), 0);
    CHECK_EQ(row[0], START);
    CHECK_EQ(row[1], A);
    CHECK_EQ(row[2], C);
    CHECK_EQ(length, 3);
    CHECK_EQ(f.violations, 0);
    fake_free(&f);
}

/* ---- classify -------------------------------------------------------------------------------------- */

static void test_classify_picks_the_larger_logit(void) {
    /* every slot is its own example, so the logits differ per slot */
    const int64_t vocab = 6, slots = 7;
    const int64_t prefix[3] = {START, A, B}, choices[3] = {A, C, EOS};
    hash_params params = {0};
    int64_t chosen_counts[3] = {0, 0, 0};
    int64_t wrong = 0, violations = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        fake f;
        fake_init(&f, slots, vocab, 1, slots, hash_logits, &params, seed);
        f.identity_only = true;
        int64_t chosen[7];
        gr_error err = {{0}};
        CHECK_EQ(search_classify(&f.decoder, prefix, 3, choices, 3, chosen, &err), 0);
        violations += f.violations + (f.steps != 3) + (f.reorders != 3);
        for (int64_t s = 0; s < slots; s++) {
            float logits[MAX_VOCAB];
            hash_logits(&params, seed, s, prefix, 3, logits, vocab);
            int64_t best = 0;
            for (int64_t c = 1; c < 3; c++) {
                if (logits[choices[c]] > logits[choices[best]]) best = c;
            }
            wrong += chosen[s] != best;
            chosen_counts[best]++;
        }
        fake_free(&f);
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(violations, 0);
    CHECK(chosen_counts[0] > 0 && chosen_counts[1] > 0 && chosen_counts[2] > 0);

    /* the hand table: after S A: EOS .3, A .6, B .06, C .04; after S C C all four equal */
    fake f;
    fake_init(&f, 2, 6, 1, 2, table_logits, &hand_table, 0);
    int64_t chosen[2] = {-1, -1};
    gr_error err = {{0}};
    const int64_t sa[2] = {START, A};
    const int64_t first[3] = {C, B, A}, second[2] = {EOS, B};
    CHECK_EQ(search_classify(&f.decoder, sa, 2, first, 3, chosen, &err), 0);
    CHECK_EQ(chosen[0], 2);
    CHECK_EQ(chosen[1], 2);
    fake_free(&f);
    fake_init(&f, 2, 6, 1, 2, table_logits, &hand_table, 0);
    CHECK_EQ(search_classify(&f.decoder, sa, 2, second, 2, chosen, &err), 0);
    CHECK_EQ(chosen[0], 0);
    fake_free(&f);
    /* ties: the first choice */
    const int64_t scc[3] = {START, C, C}, tied[3] = {B, A, EOS};
    fake_init(&f, 2, 6, 1, 2, table_logits, &hand_table, 0);
    CHECK_EQ(search_classify(&f.decoder, scc, 3, tied, 3, chosen, &err), 0);
    CHECK_EQ(chosen[0], 0);
    CHECK_EQ(chosen[1], 0);
    fake_free(&f);
}

/* ---- errors -------------------------------------------------------------------------------------------- */

static void test_errors(void) {
    hash_params params = {-100.0f}; /* EOS never wins: every run takes max_length − 1 steps */
    fake f;
    fake_init(&f, 5, 5, 2, 4, hash_logits, &params, 1);
    int64_t sequences[3 * MAX_LENGTH], lengths[3];
    gr_error err = {{0}};

    search_options o = options_of(2, 4, 0, -1, false, 1.0);
    CHECK_EQ(search_generate(&f.decoder, &o, 3, sequences, lengths, &err), -1);
    CHECK_STR_EQ(err.message, "generate: 3 example(s) with 2 beam(s) do not fit the program's 5 rows");
    o.num_beams = 0;
    CHECK_EQ(search_generate(&f.decoder, &o, 1, sequences, lengths, &err), -1);
    CHECK_CONTAINS(err.message, "do not fit");
    o = options_of(1, 1, 0, -1, false, 1.0);
    CHECK_EQ(search_generate(&f.decoder, &o, 1, sequences, lengths, &err), -1);
    CHECK_STR_EQ(err.message, "generate: max_length must be at least 2 (the start token and one more)");
    o = options_of(2, 0, 0, -1, false, 1.0);
    CHECK_EQ(search_generate(&f.decoder, &o, 2, sequences, lengths, NULL), -1); /* err may be NULL */
    CHECK_EQ(f.steps, 0);

    /* no examples: nothing to do */
    o = options_of(2, 4, 0, -1, false, 1.0);
    CHECK_EQ(search_generate(&f.decoder, &o, 0, sequences, lengths, &err), 0);
    CHECK_EQ(f.steps, 0);
    fake_free(&f);

    /* decoder failures propagate with the decoder's message */
    for (int beams = 1; beams <= 2; beams++) {
        o = options_of(beams, 6, 0, -1, false, 1.0);
        fake_init(&f, 4, 5, beams, 2 * beams, hash_logits, &params, 1);
        f.fail_step = 2;
        err.message[0] = '\0';
        CHECK_EQ(search_generate(&f.decoder, &o, 2, sequences, lengths, &err), -1);
        CHECK_STR_EQ(err.message, "fake decoder: step at position 2 failed");
        fake_free(&f);
        fake_init(&f, 4, 5, beams, 2 * beams, hash_logits, &params, 1);
        f.fail_reorder = 1;
        err.message[0] = '\0';
        CHECK_EQ(search_generate(&f.decoder, &o, 2, sequences, lengths, &err), -1);
        CHECK_STR_EQ(err.message, "fake decoder: reorder failed");
        CHECK_EQ(f.steps, 2);
        fake_free(&f);
    }
    fake_init(&f, 3, 5, 1, 3, hash_logits, &params, 1);
    f.fail_step = 1;
    const int64_t prefix[2] = {START, A}, choices[2] = {A, B};
    int64_t chosen[3];
    CHECK_EQ(search_classify(&f.decoder, prefix, 2, choices, 2, chosen, &err), -1);
    CHECK_STR_EQ(err.message, "fake decoder: step at position 1 failed");
    fake_free(&f);
}

void suite_search(void) {
    RUN(test_greedy_matches_argmax_path);
    RUN(test_beam_matches_exhaustive_search);
    RUN(test_beam_matches_transformers_transcription);
    RUN(test_beam_hand_worked);
    RUN(test_beam_ties);
    RUN(test_classify_picks_the_larger_logit);
    RUN(test_errors);
}
