/*
 * search.c: greedy and beam search (search.h).
 *
 * Beam search mirrors transformers 4.2.1's BeamSearchScorer and BeamHypotheses step by step
 * (spec 3.6) so that a model compiled by Granule decodes what the reference decodes; the only
 * freedom taken is top-k's tie order, which PyTorch leaves unspecified (here: lower index first).
 * It does not implement sampling, group beam search, min_length or repetition penalties.
 */
#include "search.h"

#include "../src/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Sets scores[t] = -inf for every token t that would repeat an n-gram of seq[0, length)
 * (transformers' NoRepeatNGramLogitsProcessor: the n-grams of the whole sequence, start token
 * included, whose first n − 1 tokens equal the last n − 1 tokens). */
static void ban_repeated_ngrams(const int64_t *seq, int64_t length, int64_t n, float *scores, int64_t vocab) {
    if (n <= 0 || length + 1 < n) return;
    const int64_t *prefix = seq + length - (n - 1);
    for (int64_t i = 0; i + n <= length; i++) {
        if (memcmp(seq + i, prefix, (size_t)(n - 1) * sizeof *seq) == 0) {
            int64_t token = seq[i + n - 1];
            if (token >= 0 && token < vocab) scores[token] = -INFINITY;
        }
    }
}

/* The first index of the largest value (torch.argmax; all -inf gives 0). */
static int64_t argmax(const float *values, int64_t count) {
    int64_t best = 0;
    for (int64_t i = 1; i < count; i++) {
        if (values[i] > values[best]) best = i;
    }
    return best;
}

/* Identity permutation for `reorder` when no beam moves. */
static int64_t *identity(int64_t slots) {
    int64_t *order = malloc((size_t)slots * sizeof *order);
    if (order != NULL) {
        for (int64_t i = 0; i < slots; i++) order[i] = i;
    }
    return order;
}

static int greedy(const search_decoder *d, const search_options *o, int64_t examples, int64_t *seq, int64_t *lengths, gr_error *err) {
    int64_t slots = d->slots, vocab = d->vocab, max_length = o->max_length;
    int64_t *tokens = malloc((size_t)slots * sizeof *tokens);
    int64_t *order = identity(slots);
    float *scores = malloc((size_t)vocab * sizeof *scores);
    bool *finished = calloc((size_t)examples + 1, sizeof *finished);
    int status = 0;
    if (tokens == NULL || order == NULL || scores == NULL || finished == NULL) {
        status = gr_fail(err, "generate: out of memory");
        goto done;
    }
    for (int64_t e = 0; e < examples; e++) {
        for (int64_t t = 0; t < max_length; t++) seq[e * max_length + t] = o->pad;
        seq[e * max_length] = o->decoder_start;
        lengths[e] = 1;
    }
    for (int64_t length = 1; length < max_length; length++) {
        for (int64_t s = 0; s < slots; s++) tokens[s] = s < examples ? seq[s * max_length + length - 1] : o->pad;
        const float *logits = d->step(d->context, tokens, length - 1, err);
        if (logits == NULL || d->reorder(d->context, order, err) != 0) {
            status = -1;
            goto done;
        }
        bool all_finished = true;
        for (int64_t e = 0; e < examples; e++) {
            int64_t next = o->pad;
            if (!finished[e]) {
                memcpy(scores, logits + e * vocab, (size_t)vocab * sizeof *scores);
                ban_repeated_ngrams(seq + e * max_length, length, o->no_repeat_ngram, scores, vocab);
                next = argmax(scores, vocab);
                lengths[e] = length + 1;
            }
            seq[e * max_length + length] = next;
            if (next == o->eos) finished[e] = true;
            all_finished &= finished[e];
        }
        if (all_finished) break;
    }
done:
    free(tokens);
    free(order);
    free(scores);
    free(finished);
    return status;
}

/* ---- beam search ------------------------------------------------------------------------------- */

/* One finished hypothesis of BeamHypotheses: its tokens (the start token included, EOS not). */
typedef struct hypothesis {
    double score;
    int64_t length;
    int64_t *tokens; /* [max_length] */
} hypothesis;

/* BeamHypotheses of one example: at most K hypotheses in insertion order. */
typedef struct hypotheses {
    hypothesis *items; /* [K + 1] */
    int64_t count;
    double worst;
    bool done;
} hypotheses;

/* BeamHypotheses.add: score = sum_logprobs / length^penalty; kept when there is room or it beats
 * the worst (then the worst — lowest score, earliest on ties — is dropped). */
static void hypotheses_add(hypotheses *h, int64_t beams, const int64_t *tokens, int64_t length, double sum_logprobs, double penalty,
                           int64_t max_length) {
    double score = sum_logprobs / pow((double)length, penalty);
    if (h->count >= beams && !(score > h->worst)) return;
    hypothesis *slot = &h->items[h->count++];
    slot->score = score;
    slot->length = length;
    memcpy(slot->tokens, tokens, (size_t)max_length * sizeof *tokens);
    if (h->count > beams) {
        int64_t worst = 0;
        for (int64_t i = 1; i < h->count; i++) {
            if (h->items[i].score < h->items[worst].score) worst = i;
        }
        int64_t *freed = h->items[worst].tokens;
        memmove(&h->items[worst], &h->items[worst + 1], (size_t)(h->count - worst - 1) * sizeof *h->items);
        h->count--;
        h->items[h->count].tokens = freed;
        /* sorted_next_scores[1][0]: the second lowest of the K + 1 = the lowest left */
        h->worst = h->items[0].score;
        for (int64_t i = 1; i < h->count; i++) h->worst = fmin(h->worst, h->items[i].score);
    } else {
        h->worst = fmin(score, h->worst);
    }
}

/* BeamHypotheses.is_done. */
static bool hypotheses_is_done(const hypotheses *h, int64_t beams, double best_sum_logprobs, int64_t length, const search_options *o) {
    if (h->count < beams) return false;
    if (o->early_stopping) return true;
    return h->worst >= best_sum_logprobs / pow((double)length, o->length_penalty);
}

/* A candidate of top-k: the score and the flat index beam·V + token. */
typedef struct candidate {
    float score;
    int64_t index;
} candidate;

/* Keeps top[0, k) sorted by descending score; an equal score never passes an earlier index. */
static void top_insert(candidate *top, int64_t k, int64_t *count, float score, int64_t index) {
    if (*count == k && !(score > top[k - 1].score)) return;
    int64_t at = *count < k ? (*count)++ : k - 1;
    while (at > 0 && score > top[at - 1].score) {
        top[at] = top[at - 1];
        at--;
    }
    top[at] = (candidate){score, index};
}

/* log_softmax of row in double, rounded to float (what PyTorch computes in float32 up to rounding). */
static void log_softmax(const float *row, float *out, int64_t vocab) {
    double maximum = -INFINITY;
    for (int64_t v = 0; v < vocab; v++) maximum = fmax(maximum, (double)row[v]);
    double total = 0;
    for (int64_t v = 0; v < vocab; v++) total += exp((double)row[v] - maximum);
    double shift = maximum + log(total);
    for (int64_t v = 0; v < vocab; v++) out[v] = (float)((double)row[v] - shift);
}

static int beam(const search_decoder *d, const search_options *o, int64_t examples, int64_t *out, int64_t *lengths, gr_error *err) {
    int64_t slots = d->slots, vocab = d->vocab, max_length = o->max_length, beams = o->num_beams;
    int64_t rows = examples * beams, k2 = 2 * beams;
    int64_t *seq = malloc((size_t)(rows * max_length) * sizeof *seq);
    int64_t *next_seq = malloc((size_t)(rows * max_length) * sizeof *next_seq);
    float *beam_scores = malloc((size_t)rows * sizeof *beam_scores);
    float *next_scores = malloc((size_t)rows * sizeof *next_scores);
    int64_t *source = identity(slots);
    int64_t *tokens = malloc((size_t)slots * sizeof *tokens);
    float *scores = malloc((size_t)vocab * sizeof *scores);
    candidate *top = malloc((size_t)k2 * sizeof *top);
    hypotheses *hyps = calloc((size_t)examples, sizeof *hyps);
    int64_t *token_store = malloc((size_t)(examples * (beams + 1) * max_length) * sizeof *token_store);
    int status = 0;
    if (seq == NULL || next_seq == NULL || beam_scores == NULL || next_scores == NULL || source == NULL || tokens == NULL ||
        scores == NULL || top == NULL || hyps == NULL || token_store == NULL) {
        status = gr_fail(err, "generate: out of memory");
        goto done;
    }
    for (int64_t e = 0; e < examples; e++) {
        hyps[e].items = calloc((size_t)beams + 1, sizeof *hyps[e].items);
        if (hyps[e].items == NULL) {
            status = gr_fail(err, "generate: out of memory");
            goto done;
        }
        for (int64_t i = 0; i <= beams; i++) hyps[e].items[i].tokens = token_store + (e * (beams + 1) + i) * max_length;
        hyps[e].worst = 1e9;
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t t = 0; t < max_length; t++) seq[r * max_length + t] = o->pad;
        seq[r * max_length] = o->decoder_start;
        beam_scores[r] = r % beams == 0 ? 0.0f : -1e9f;
    }
    int64_t length = 1;
    while (length < max_length) {
        for (int64_t s = 0; s < slots; s++) tokens[s] = s < rows ? seq[s * max_length + length - 1] : o->pad;
        const float *logits = d->step(d->context, tokens, length - 1, err);
        if (logits == NULL) {
            status = -1;
            goto done;
        }
        for (int64_t s = 0; s < slots; s++) source[s] = s;
        bool force_eos = o->forced_eos >= 0 && length == max_length - 1;
        for (int64_t e = 0; e < examples; e++) {
            hypotheses *h = &hyps[e];
            if (h->done) {
                for (int64_t b = 0; b < beams; b++) {
                    int64_t r = e * beams + b;
                    next_scores[r] = 0;
                    memcpy(next_seq + r * max_length, seq + (e * beams) * max_length, (size_t)max_length * sizeof *seq);
                    next_seq[r * max_length + length] = o->pad;
                    source[r] = e * beams;
                }
                continue;
            }
            int64_t count = 0;
            for (int64_t b = 0; b < beams; b++) {
                int64_t r = e * beams + b;
                if (force_eos) {
                    for (int64_t v = 0; v < vocab; v++) scores[v] = v == o->forced_eos ? 0.0f : -INFINITY;
                } else {
                    log_softmax(logits + r * vocab, scores, vocab);
                }
                ban_repeated_ngrams(seq + r * max_length, length, o->no_repeat_ngram, scores, vocab);
                for (int64_t v = 0; v < vocab; v++) top_insert(top, k2, &count, scores[v] + beam_scores[r], b * vocab + v);
            }
            int64_t kept = 0;
            for (int64_t rank = 0; rank < count && kept < beams; rank++) {
                int64_t from = e * beams + top[rank].index / vocab, token = top[rank].index % vocab;
                if (token == o->eos) {
                    if (rank >= beams) continue;
                    hypotheses_add(h, beams, seq + from * max_length, length, (double)top[rank].score, o->length_penalty, max_length);
                } else {
                    int64_t r = e * beams + kept++;
                    next_scores[r] = top[rank].score;
                    memcpy(next_seq + r * max_length, seq + from * max_length, (size_t)max_length * sizeof *seq);
                    next_seq[r * max_length + length] = token;
                    source[r] = from;
                }
            }
            if (kept < beams) {
                status = gr_fail(err, "generate: beam search found fewer than %lld continuations (vocabulary too small?)", (long long)beams);
                goto done;
            }
            h->done = h->done || hypotheses_is_done(h, beams, (double)top[0].score, length, o);
        }
        if (d->reorder(d->context, source, err) != 0) {
            status = -1;
            goto done;
        }
        int64_t *swap = seq;
        seq = next_seq;
        next_seq = swap;
        memcpy(beam_scores, next_scores, (size_t)rows * sizeof *beam_scores);
        length++;
        bool all_done = true;
        for (int64_t e = 0; e < examples; e++) all_done &= hyps[e].done;
        if (all_done) break;
    }
    for (int64_t e = 0; e < examples; e++) {
        hypotheses *h = &hyps[e];
        if (!h->done) {
            for (int64_t b = 0; b < beams; b++) {
                int64_t r = e * beams + b;
                hypotheses_add(h, beams, seq + r * max_length, length, (double)beam_scores[r], o->length_penalty, max_length);
            }
        }
        int64_t best = 0;
        for (int64_t i = 1; i < h->count; i++) {
            if (h->items[i].score >= h->items[best].score) best = i; /* sorted(...).pop(): the last of equals */
        }
        const hypothesis *winner = &h->items[best];
        int64_t *row = out + e * max_length;
        for (int64_t t = 0; t < max_length; t++) row[t] = t < winner->length ? winner->tokens[t] : o->pad;
        lengths[e] = winner->length;
        if (winner->length < max_length) row[lengths[e]++] = o->eos;
    }
done:
    if (hyps != NULL) {
        for (int64_t e = 0; e < examples; e++) free(hyps[e].items);
    }
    free(seq);
    free(next_seq);
    free(beam_scores);
    free(next_scores);
    free(source);
    free(tokens);
    free(scores);
    free(top);
    free(hyps);
    free(token_store);
    return status;
}

int search_generate(const search_decoder *decoder, const search_options *options, int64_t examples, int64_t *sequences,
                    int64_t *lengths, gr_error *err) {
    if (options->num_beams < 1 || examples * options->num_beams > decoder->slots) {
        return gr_fail(err, "generate: %lld example(s) with %lld beam(s) do not fit the program's %lld rows", (long long)examples,
                    (long long)options->num_beams, (long long)decoder->slots);
    }
    if (options->max_length < 2) return gr_fail(err, "generate: max_length must be at least 2 (the start token and one more)");
    if (examples == 0) return 0;
    if (options->num_beams == 1) return greedy(decoder, options, examples, sequences, lengths, err);
    return beam(decoder, options, examples, sequences, lengths, err);
}

int search_classify(const search_decoder *decoder, const int64_t *prefix, int64_t prefix_length, const int64_t *choices,
                    int64_t choice_count, int64_t *chosen, gr_error *err) {
    int64_t slots = decoder->slots;
    int64_t *tokens = malloc((size_t)slots * sizeof *tokens);
    int64_t *order = identity(slots);
    if (tokens == NULL || order == NULL) {
        free(tokens);
        free(order);
        return gr_fail(err, "classify: out of memory");
    }
    const float *logits = NULL;
    for (int64_t p = 0; p < prefix_length; p++) {
        for (int64_t s = 0; s < slots; s++) tokens[s] = prefix[p];
        logits = decoder->step(decoder->context, tokens, p, err);
        if (logits == NULL || decoder->reorder(decoder->context, order, err) != 0) {
            logits = NULL;
            break;
        }
    }
    free(tokens);
    free(order);
    if (logits == NULL) return -1;
    for (int64_t s = 0; s < slots; s++) {
        int64_t best = 0;
        for (int64_t c = 1; c < choice_count; c++) {
            if (logits[s * decoder->vocab + choices[c]] > logits[s * decoder->vocab + choices[best]]) best = c;
        }
        chosen[s] = best;
    }
    return 0;
}
