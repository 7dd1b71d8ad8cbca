#!/usr/bin/env python3
"""Make the generation goldens: what `MODEL generate` must print for a tiny BART and a tiny T5.

    /work/venv/bin/python tools/reference/make_generation_golden.py [--out DIR] [--only bart|t5]

For each backbone it writes DIR/generate-<backbone>/ (default DIR: Tests/GranuleCodegenTests/Goldens):

  config.json          the Hugging Face config (BART: bart-base's generation defaults
                       no_repeat_ngram_size 3, early_stopping true, forced_eos_token_id 2; T5: none)
  spec.json            a Granule spec: text only (no "visual"), {"method": "full"}, batch 4 × text 8
                       × target 8 (the decoder cache: max_length ≤ 9), dropout 0
  weights.safetensors  every parameter by its Hugging Face name (BART also `final_logits_bias`)
  data.safetensors     @encode's inputs with a leading example axis: `input_ids`, `attention_mask`
                       of 6 examples (more than the batch, so the last batch is padded), most padded
  expected.json        per configuration the `generate` options and, per example, the tokens
                       `generate` prints (its JSONL "tokens": the sequence without the decoder start
                       token, up to and including EOS); for `--classify` the chosen token and both logits

Reference semantics: transformers 4.2.1's `generate` (spec 3.6), which VL-PET pins, transcribed
below from the 4.2.1 sources: `greedy_search`, `beam_search`, `BeamSearchScorer`, `BeamHypotheses`,
`NoRepeatNGramLogitsProcessor` and BART's `adjust_logits_during_generation` (EOS forced at
max_length − 1, beam search only). The model is the Hugging Face `BartForConditionalGeneration` /
`T5ForConditionalGeneration` of transformers 5 (its forward equals 4.2.1's for these configs;
make_goldens.py checks our reference layers against it), run WITHOUT a KV cache: every step
recomputes the encoder and the whole decoder prefix, so the golden checks Granule's cached
@decode_step path independently.

The script also
  * runs the same searches with the model in float64 and asserts identical tokens, and asserts that
    every decision has a margin ≥ MIN_MARGIN = 1e-3 (top-1 vs top-2 logit in greedy; in beam search
    the scores around every EOS candidate and the last used rank of the top 2K, the hypothesis
    comparisons of add / is_done and the final choice), so float32 differences between Granule's
    kernels and PyTorch (~1e-6) cannot flip a token;
  * cross-checks the greedy transcription against transformers 5's own `model.generate(num_beams=1,
    do_sample=False, ...)` (asserted equal), and reports whether transformers 5's beam search (rewritten
    since 4.2.1) agrees with the 4.2.1 transcription; where it does not, it reports whether scoring the
    beams still open at max_length by the generated length (max_length − 1, transformers 5) instead of
    the length with the start token (max_length, 4.2.1's BeamHypotheses.add in finalize) explains it;
  * asserts that the configurations are not trivial (evaluate(): the checks dict): outputs depend on the
    input, some sequences end with EOS and some run to max_length, the n-gram ban, beam search, the
    number of beams, early stopping, the length penalty and BART's forced EOS each change some output.

Weights: random, by name (SCALES): larger than an initialisation's so that outputs depend on the
input; norm weights 1 + 0.2·N(0,1), biases 0.1·N(0,1), BART's final_logits_bias 0.3·N(0,1) plus
EOS_BIAS = 4 at EOS (about half the sequences then end before max_length). The weight seeds (SEEDS)
were picked with `--search-seeds 100`, which lists the seeds that pass every check above: random
decoders this small mostly repeat one token, and most seeds leave some search decision within 1e-3.
Deterministic (fixed seeds, one thread, make_goldens.py's byte-reproducible writer).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import GenerationConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_goldens as mg  # noqa: E402
from pet import PETConfig  # noqa: E402
from vl_models import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "Tests" / "GranuleCodegenTests" / "Goldens"

BATCH, TEXT, TARGET = 4, 8, 8          # the spec's static shapes; max_length ≤ TARGET + 1
EXAMPLES = 6                           # > BATCH: the second batch is padded by the program
VOCAB = 48
MIN_MARGIN = 1e-3                      # smallest allowed decision margin (float32 noise is ~1e-6)

BART_CONFIG = dict(mg.BART_CONFIG, vocab_size=VOCAB, no_repeat_ngram_size=3, early_stopping=True,
                   forced_eos_token_id=2)
T5_CONFIG = dict(mg.T5_CONFIG, vocab_size=VOCAB)


# ---------------------------------------------------------------------------------------------
# transformers 4.2.1 generation, transcribed (generation_utils.py, generation_beam_search.py,
# generation_logits_process.py, modeling_bart.py). `logits_fn(input_ids)` returns the next-token
# logits [rows, V] for the decoder prefixes input_ids [rows, cur_len] (a full forward, no cache).
# `margins` collects how far each decision was from flipping (bookkeeping, not 4.2.1's).
# ---------------------------------------------------------------------------------------------

def _get_ngrams(ngram_size, prev_input_ids, num_hypos):
    generated_ngrams = [{} for _ in range(num_hypos)]
    for idx in range(num_hypos):
        gen_tokens = prev_input_ids[idx].tolist()
        generated_ngram = generated_ngrams[idx]
        for ngram in zip(*[gen_tokens[i:] for i in range(ngram_size)]):
            prev_ngram_tuple = tuple(ngram[:-1])
            generated_ngram[prev_ngram_tuple] = generated_ngram.get(prev_ngram_tuple, []) + [ngram[-1]]
    return generated_ngrams


def _get_generated_ngrams(banned_ngrams, prev_input_ids, ngram_size, cur_len):
    start_idx = cur_len + 1 - ngram_size
    ngram_idx = tuple(prev_input_ids[start_idx:cur_len].tolist())
    return banned_ngrams.get(ngram_idx, [])


def _calc_banned_ngram_tokens(ngram_size, prev_input_ids, num_hypos, cur_len):
    if cur_len + 1 < ngram_size:
        return [[] for _ in range(num_hypos)]
    generated_ngrams = _get_ngrams(ngram_size, prev_input_ids, num_hypos)
    return [_get_generated_ngrams(generated_ngrams[i], prev_input_ids[i], ngram_size, cur_len)
            for i in range(num_hypos)]


def no_repeat_ngram(ngram_size, input_ids, scores):
    """NoRepeatNGramLogitsProcessor.__call__ (a no-op for ngram_size 0, which 4.2.1 does not add)."""
    if not ngram_size:
        return scores
    num_batch_hypotheses = scores.shape[0]
    cur_len = input_ids.shape[-1]
    banned_batch_tokens = _calc_banned_ngram_tokens(ngram_size, input_ids, num_batch_hypotheses, cur_len)
    for i, banned_tokens in enumerate(banned_batch_tokens):
        scores[i, banned_tokens] = -float("inf")
    return scores


def bart_adjust_logits(logits, cur_len, max_length, eos_token_id):
    """BartForConditionalGeneration.adjust_logits_during_generation (force_bos_token_to_be_generated
    false): at cur_len == max_length − 1 every token but EOS gets −inf."""
    if cur_len == max_length - 1 and eos_token_id is not None:
        logits[:, [x for x in range(logits.shape[1]) if x != eos_token_id]] = -float("inf")
    return logits


def greedy_search(logits_fn, input_ids, max_length, pad_token_id, eos_token_id, ngram, margins):
    sequence_lengths = input_ids.new(input_ids.shape[0]).fill_(max_length)
    unfinished_sequences = input_ids.new(input_ids.shape[0]).fill_(1)
    cur_len = input_ids.shape[-1]
    while cur_len < max_length:
        next_token_logits = logits_fn(input_ids)
        next_tokens_scores = no_repeat_ngram(ngram, input_ids, next_token_logits)
        next_tokens = torch.argmax(next_tokens_scores, dim=-1)
        for row in range(input_ids.shape[0]):
            if unfinished_sequences[row]:
                top2 = torch.topk(next_tokens_scores[row].double(), 2).values
                margins.append((top2[0] - top2[1]).item())
        next_tokens = next_tokens * unfinished_sequences + pad_token_id * (1 - unfinished_sequences)
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
        # _update_seq_length_for_generation
        is_eos_in_next_token = next_tokens == eos_token_id
        is_sent_unfinished = unfinished_sequences.mul(is_eos_in_next_token.long()).bool()
        sequence_lengths = sequence_lengths.masked_fill(is_sent_unfinished, cur_len)
        unfinished_sequences = unfinished_sequences.mul((~is_eos_in_next_token).long())
        if unfinished_sequences.max() == 0:
            break
        cur_len = cur_len + 1
    return input_ids


class BeamHypotheses:
    def __init__(self, num_beams, length_penalty, early_stopping, margins):
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.num_beams = num_beams
        self.beams = []
        self.worst_score = 1e9
        self.margins = margins

    def __len__(self):
        return len(self.beams)

    def add(self, hyp, sum_logprobs, length=None):
        # `length` is not 4.2.1's: only the transformers-5 diagnosis in evaluate() passes it
        score = sum_logprobs / ((hyp.shape[-1] if length is None else length) ** self.length_penalty)
        if len(self) >= self.num_beams and math.isfinite(score):
            self.margins.append(abs(score - self.worst_score))
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp))
            if len(self) > self.num_beams:
                sorted_next_scores = sorted([(s, idx) for idx, (s, _) in enumerate(self.beams)])
                del self.beams[sorted_next_scores[0][1]]
                self.worst_score = sorted_next_scores[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs, cur_len):
        if len(self) < self.num_beams:
            return False
        elif self.early_stopping:
            return True
        else:
            cur_score = best_sum_logprobs / cur_len ** self.length_penalty
            if cur_score != self.worst_score:    # equal: the best candidate is the worst hypothesis itself
                self.margins.append(abs(self.worst_score - cur_score))
            return self.worst_score >= cur_score


class BeamSearchScorer:
    def __init__(self, batch_size, num_beams, length_penalty, do_early_stopping, margins, unfinished_offset=0):
        self.num_beams = num_beams
        self.unfinished_offset = unfinished_offset      # 0 in 4.2.1 (see evaluate())
        self.group_size = num_beams
        self._beam_hyps = [BeamHypotheses(num_beams, length_penalty, do_early_stopping, margins)
                           for _ in range(batch_size)]
        self._done = torch.tensor([False for _ in range(batch_size)], dtype=torch.bool)
        self.margins = margins

    @property
    def is_done(self):
        return self._done.all()

    def process(self, input_ids, next_scores, next_tokens, next_indices, pad_token_id, eos_token_id):
        cur_len = input_ids.shape[-1]
        batch_size = len(self._beam_hyps)
        next_beam_scores = torch.zeros((batch_size, self.group_size), dtype=next_scores.dtype)
        next_beam_tokens = torch.zeros((batch_size, self.group_size), dtype=next_tokens.dtype)
        next_beam_indices = torch.zeros((batch_size, self.group_size), dtype=next_indices.dtype)
        for batch_idx, beam_hyp in enumerate(self._beam_hyps):
            if self._done[batch_idx]:
                next_beam_scores[batch_idx, :] = 0
                next_beam_tokens[batch_idx, :] = pad_token_id
                next_beam_indices[batch_idx, :] = 0
                continue
            beam_idx = 0
            last_rank = 0
            for beam_token_rank, (next_token, next_score, next_index) in enumerate(
                    zip(next_tokens[batch_idx], next_scores[batch_idx], next_indices[batch_idx])):
                last_rank = beam_token_rank
                batch_beam_idx = batch_idx * self.group_size + next_index
                if next_token.item() == eos_token_id:
                    is_beam_token_worse_than_top_num_beams = beam_token_rank >= self.group_size
                    if is_beam_token_worse_than_top_num_beams:
                        continue
                    beam_hyp.add(input_ids[batch_beam_idx].clone(), next_score.item())
                else:
                    next_beam_scores[batch_idx, beam_idx] = next_score
                    next_beam_tokens[batch_idx, beam_idx] = next_token
                    next_beam_indices[batch_idx, beam_idx] = batch_beam_idx
                    beam_idx += 1
                if beam_idx == self.group_size:
                    break
            if beam_idx < self.group_size:
                raise ValueError("fewer than num_beams non-EOS candidates")
            self._record_rank_margins(next_scores[batch_idx], next_tokens[batch_idx], last_rank, eos_token_id)
            self._done[batch_idx] = self._done[batch_idx] or beam_hyp.is_done(next_scores[batch_idx].max().item(), cur_len)
        return {"next_beam_scores": next_beam_scores.view(-1), "next_beam_tokens": next_beam_tokens.view(-1),
                "next_beam_indices": next_beam_indices.view(-1)}

    def _record_rank_margins(self, scores, tokens, last_rank, eos_token_id):
        """The orderings that decided this step: around every EOS candidate up to the last rank used,
        and the boundary after it (a candidate past the top 2K cannot be seen: the next score is
        the best one left out, the 2K-th; bookkeeping only)."""
        s = scores.double().tolist()
        t = tokens.tolist()
        for r in range(min(last_rank + 1, len(s) - 1)):
            if (t[r] == eos_token_id or t[r + 1] == eos_token_id or r == last_rank) and math.isfinite(s[r + 1]):
                self.margins.append(s[r] - s[r + 1])

    def finalize(self, input_ids, final_beam_scores, max_length, pad_token_id, eos_token_id):
        batch_size = len(self._beam_hyps)
        for batch_idx, beam_hyp in enumerate(self._beam_hyps):
            if self._done[batch_idx]:
                continue
            for beam_id in range(self.num_beams):
                batch_beam_idx = batch_idx * self.num_beams + beam_id
                final_score = final_beam_scores[batch_beam_idx].item()
                final_tokens = input_ids[batch_beam_idx]
                beam_hyp.add(final_tokens, final_score, final_tokens.shape[-1] - self.unfinished_offset)
        sent_lengths = input_ids.new(batch_size)
        best = []
        for i, beam_hyp in enumerate(self._beam_hyps):
            sorted_hyps = sorted(beam_hyp.beams, key=lambda x: x[0])
            if len(sorted_hyps) > 1:
                self.margins.append(sorted_hyps[-1][0] - sorted_hyps[-2][0])
            best_hyp_tuple = sorted_hyps.pop()
            assert math.isfinite(best_hyp_tuple[0]), "a -inf hypothesis won"
            best_hyp = best_hyp_tuple[1]
            sent_lengths[i] = len(best_hyp)
            best.append(best_hyp)
        sent_max_len = min(sent_lengths.max().item() + 1, max_length)
        decoded = input_ids.new(batch_size, sent_max_len)
        if sent_lengths.min().item() != sent_lengths.max().item():
            decoded.fill_(pad_token_id)
        for i, hypo in enumerate(best):
            decoded[i, : sent_lengths[i]] = hypo
            if sent_lengths[i] < max_length:
                decoded[i, sent_lengths[i]] = eos_token_id
        return decoded, [len(h) + (1 if len(h) < max_length else 0) for h in best]


def beam_search(logits_fn, input_ids, beam_scorer, max_length, pad_token_id, eos_token_id, ngram,
                forced_eos, margins):
    batch_size = len(beam_scorer._beam_hyps)
    num_beams = beam_scorer.num_beams
    batch_beam_size, cur_len = input_ids.shape
    assert num_beams * batch_size == batch_beam_size
    beam_scores = torch.zeros((batch_size, num_beams), dtype=torch.float)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view((batch_size * num_beams,))
    while cur_len < max_length:
        next_token_logits = logits_fn(input_ids)
        if forced_eos:
            next_token_logits = bart_adjust_logits(next_token_logits, cur_len, max_length, eos_token_id)
        next_token_scores = F.log_softmax(next_token_logits, dim=-1)
        next_token_scores = no_repeat_ngram(ngram, input_ids, next_token_scores)
        next_token_scores = next_token_scores + beam_scores[:, None].expand_as(next_token_scores)
        vocab_size = next_token_scores.shape[-1]
        next_token_scores = next_token_scores.view(batch_size, num_beams * vocab_size)
        next_token_scores, next_tokens = torch.topk(next_token_scores, 2 * num_beams, dim=1, largest=True, sorted=True)
        next_indices = next_tokens // vocab_size
        next_tokens = next_tokens % vocab_size
        beam_outputs = beam_scorer.process(input_ids, next_token_scores, next_tokens, next_indices,
                                           pad_token_id=pad_token_id, eos_token_id=eos_token_id)
        beam_scores = beam_outputs["next_beam_scores"]
        beam_next_tokens = beam_outputs["next_beam_tokens"]
        beam_idx = beam_outputs["next_beam_indices"]
        input_ids = torch.cat([input_ids[beam_idx, :], beam_next_tokens.unsqueeze(-1)], dim=-1)
        cur_len = cur_len + 1
        if beam_scorer.is_done:
            break
    return beam_scorer.finalize(input_ids, beam_scores, max_length, pad_token_id, eos_token_id)


# ---------------------------------------------------------------------------------------------
# The model and the searches over a dataset
# ---------------------------------------------------------------------------------------------

# Weight scales by name (the first key contained in the name; "default" otherwise). Larger than an
# initialisation's so that the outputs depend on the input and searches branch.
SCALES = {
    "bart": {"model.shared.weight": 0.5, "embed_positions": 0.5, "_proj": 0.5, "fc1": 0.3, "fc2": 0.3, "default": 0.4},
    "t5": {"shared.weight": 0.5, "relative_attention_bias": 0.5, "SelfAttention": 0.5, "EncDecAttention": 0.5,
           "DenseReluDense": 0.4, "default": 0.4},
}
EOS_BIAS = 4.0                         # added to final_logits_bias[eos] (BART): about half the sequences end early
SEEDS = {"bart": 75, "t5": 2}           # the weight seeds (chosen so that every check below holds)


def randomize(model, kind: str, seed: int) -> None:
    """make_goldens' draw (sorted-name order, one generator: norm weights 1 + 0.2·N, biases
    0.1·N) with SCALES·N for the other tensors, and BART's final_logits_bias 0.3·N + EOS_BIAS at
    EOS."""
    scales = SCALES[kind]
    mg.randomize(model, seed, scale=lambda name: next((v for k, v in scales.items() if k in name), scales["default"]),
                 buffer_scale=0.3)
    with torch.no_grad():
        for buf in model.named_buffers_contract().values():
            buf[..., BART_CONFIG["eos_token_id"]] += EOS_BIAS


def make_data(kind: str, seed: int) -> dict[str, torch.Tensor]:
    """EXAMPLES sentences of 1–6 words (ids 3..VOCAB−1), padded to TEXT. BART `<s> w… </s> <pad>…`,
    T5 `w… </s> <pad>…`; example 0 fills the text length."""
    g = torch.Generator().manual_seed(seed)
    cfg = BART_CONFIG if kind == "bart" else T5_CONFIG
    eos, pad = cfg["eos_token_id"], cfg["pad_token_id"]
    counts = [6, 2, 4, 1, 5, 3] if kind == "bart" else [7, 2, 4, 1, 5, 3]
    ids, mask = [], []
    for n in counts[:EXAMPLES]:
        words = torch.randint(3, VOCAB, (n,), generator=g).tolist()
        row = ([cfg["bos_token_id"]] if kind == "bart" else []) + words + [eos]
        assert len(row) <= TEXT
        ids.append(row + [pad] * (TEXT - len(row)))
        mask.append([1] * len(row) + [0] * (TEXT - len(row)))
    return {"input_ids": torch.tensor(ids, dtype=torch.int64), "attention_mask": torch.tensor(mask, dtype=torch.int64)}


class Runner:
    """Runs the 4.2.1 searches on the HF model (no cache) over the dataset, in float32 or float64."""

    def __init__(self, model, kind: str, data, dtype=torch.float32):
        self.hf = model.hf.to(dtype)
        self.kind = kind
        self.cfg = BART_CONFIG if kind == "bart" else T5_CONFIG
        self.data = data
        self.forwards = 0

    def logits_fn(self, enc_ids, enc_mask):
        def fn(decoder_input_ids):
            self.forwards += 1
            with torch.no_grad():
                out = self.hf(input_ids=enc_ids, attention_mask=enc_mask, decoder_input_ids=decoder_input_ids,
                              use_cache=False)
            return out.logits[:, -1, :].float().clone()
        return fn

    def generate(self, c: dict, unfinished_offset: int = 0) -> tuple[list[list[int]], float]:
        """Tokens per example as `MODEL generate` prints them, and the smallest decision margin."""
        cfg = self.cfg
        eos, pad, start = cfg["eos_token_id"], cfg["pad_token_id"], cfg["decoder_start_token_id"]
        ids, mask = self.data["input_ids"], self.data["attention_mask"]
        n = ids.shape[0]
        margins: list[float] = []
        if c["num_beams"] == 1:
            fn = self.logits_fn(ids, mask)
            out = greedy_search(fn, torch.full((n, 1), start, dtype=torch.long), c["max_length"], pad, eos,
                                c["no_repeat_ngram_size"], margins)
            tokens = []
            for row in out.tolist():
                seq = row[1:]
                tokens.append(seq[:seq.index(eos) + 1] if eos in seq else seq)
        else:
            k = c["num_beams"]
            fn = self.logits_fn(ids.repeat_interleave(k, dim=0), mask.repeat_interleave(k, dim=0))
            scorer = BeamSearchScorer(n, k, c["length_penalty"], c["early_stopping"], margins, unfinished_offset)
            decoded, lengths = beam_search(fn, torch.full((n * k, 1), start, dtype=torch.long), scorer, c["max_length"],
                                           pad, eos, c["no_repeat_ngram_size"], c["forced_eos"], margins)
            tokens = [row[1:length] for row, length in zip(decoded.tolist(), lengths)]
        finite = [m for m in margins if math.isfinite(m)]
        return tokens, min(finite) if finite else math.inf

    def classify(self, prefix: list[int], choices: list[int]) -> tuple[list[int], list[list[float]]]:
        ids, mask = self.data["input_ids"], self.data["attention_mask"]
        fn = self.logits_fn(ids, mask)
        logits = fn(torch.tensor([prefix] * ids.shape[0], dtype=torch.long))
        picked = logits[:, choices]
        chosen = [choices[int(torch.argmax(row))] for row in picked]     # argmax: the first of equals
        return chosen, picked.tolist()


# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------

def configurations(kind: str) -> list[dict]:
    """Each: a name, the search parameters (4.2.1 arguments) and the `generate` options giving them.
    `defaults` configurations pass only --num-beams: the rest comes from the manifest (config.json)."""
    cfg = BART_CONFIG if kind == "bart" else T5_CONFIG
    bart = kind == "bart"
    full = TARGET + 1

    def conf(name, beams, max_length, ngram, early=False, penalty=1.0, forced=None, defaults=False):
        forced = bart if forced is None else forced
        c = {"name": name, "num_beams": beams, "max_length": max_length, "no_repeat_ngram_size": ngram,
             "early_stopping": early, "length_penalty": penalty, "forced_eos": forced and beams > 1}
        if defaults:
            opts = ["--num-beams", str(beams)]
        else:
            opts = ["--num-beams", str(beams), "--max-length", str(max_length), "--no-repeat-ngram-size", str(ngram)]
            if beams > 1:
                opts += ["--early-stopping", "true" if early else "false", "--length-penalty", repr(float(penalty))]
                if bart:
                    opts += ["--forced-eos-token-id", str(cfg["eos_token_id"]) if forced else "-1"]
        c["options"] = opts
        return c

    out = [
        conf("greedy", 1, full, 0),
        conf("greedy-ngram2", 1, full, 2),
        conf("greedy-short", 1, 5, 0),
        conf("beam2-early", 2, full, 0, early=True),
        conf("beam2", 2, full, 0, early=False),
        conf("beam3-early", 3, full, 0, early=True),
        conf("beam3", 3, full, 0, early=False),
        conf("beam3-ngram2", 3, full, 2, early=False),
        conf("beam2-short", 2, 5, 0, early=False),
        conf("beam2-penalty0.5", 2, full, 0, early=False, penalty=0.5),
    ]
    if bart:
        out += [
            conf("beam3-no-forced-eos", 3, full, 0, early=False, forced=False),
            conf("beam2-short-no-forced-eos", 2, 5, 0, early=False, forced=False),
            # the manifest's defaults: max_length min(20, 9), no_repeat_ngram_size 3, early_stopping true,
            # forced EOS (greedy: none)
            conf("greedy-defaults", 1, full, cfg["no_repeat_ngram_size"], defaults=True),
            conf("beam3-defaults", 3, full, cfg["no_repeat_ngram_size"], early=True, forced=True, defaults=True),
        ]
    else:
        out += [conf("greedy-defaults", 1, full, 0, defaults=True),
                conf("beam2-defaults", 2, full, 0, early=False, defaults=True)]
    return out


def hf5_generate(model, kind: str, data, c: dict) -> list[list[int]]:
    """transformers 5's own generate with the same parameters (forced EOS as its logits processor,
    which 5.x also applies in greedy search: so only where 4.2.1 applies it)."""
    cfg = BART_CONFIG if kind == "bart" else T5_CONFIG
    eos = cfg["eos_token_id"]
    gen = GenerationConfig(
        num_beams=c["num_beams"], do_sample=False, max_length=c["max_length"], min_length=0,
        no_repeat_ngram_size=c["no_repeat_ngram_size"], early_stopping=c["early_stopping"],
        length_penalty=c["length_penalty"], forced_eos_token_id=eos if c["forced_eos"] else None,
        forced_bos_token_id=None, decoder_start_token_id=cfg["decoder_start_token_id"], eos_token_id=eos,
        pad_token_id=cfg["pad_token_id"], bos_token_id=cfg.get("bos_token_id"), num_return_sequences=1)
    model.hf.generation_config = gen
    with torch.no_grad():
        out = model.hf.generate(input_ids=data["input_ids"], attention_mask=data["attention_mask"],
                                generation_config=gen)
    tokens = []
    for row in out.tolist():
        seq = row[1:]
        if eos in seq:
            seq = seq[:seq.index(eos) + 1]
        else:
            while len(seq) > c["max_length"] - 1:
                seq.pop()
        tokens.append(seq)
    return tokens


def pick_choices(runner: Runner, prefix: list[int]) -> tuple[list[int], list[int], list[list[float]]]:
    """The first pair of word ids (in a fixed order) on which the examples disagree, with margins."""
    for a in range(3, VOCAB):
        for b in range(a + 1, VOCAB):
            chosen, logits = runner.classify(prefix, [a, b])
            if len(set(chosen)) == 2 and min(abs(x - y) for x, y in logits) > 0.05:
                return [a, b], chosen, logits
    raise AssertionError("no token pair splits the examples")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def build(kind: str, seed: int):
    cfg = BART_CONFIG if kind == "bart" else T5_CONFIG
    model = build_model(kind, cfg, PETConfig("full"), None)
    randomize(model, kind, seed)
    model.hf.eval()
    data = make_data(kind, zlib.crc32(f"generate-{kind}:data".encode()))
    weights = {n: p.detach().clone().contiguous() for n, p in model.named_params().items()}
    weights.update({n: b.detach().clone().contiguous() for n, b in model.named_buffers_contract().items()})
    return model, data, weights


def evaluate(kind: str, model, data, weights, verbose: bool = True):
    """Runs every configuration; returns the expected.json entries and the list of failed checks."""
    cfg = BART_CONFIG if kind == "bart" else T5_CONFIG
    eos = cfg["eos_token_id"]
    problems: list[str] = []

    # The full forward of our reference layers equals the HF forward on this model (teacher forcing).
    labels = torch.randint(3, VOCAB, (EXAMPLES, TARGET), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model.forward({**data, "labels": labels})
        ref = model.hf(input_ids=data["input_ids"], attention_mask=data["attention_mask"], labels=labels,
                       use_cache=False).logits
    mg.close(ours, ref, f"{kind}: reference layers vs HF forward", atol=1e-4)

    runner = Runner(model, kind, data)
    model64 = build_model(kind, cfg, PETConfig("full"), None)
    with torch.no_grad():
        for n, p in model64.named_params().items():
            p.copy_(weights[n])
        for n, b in model64.named_buffers_contract().items():
            b.copy_(weights[n])
    runner64 = Runner(model64, kind, data, torch.float64)

    results, hf5, entries = {}, {}, []
    for c in configurations(kind):
        tokens, margin = runner.generate(c)
        tokens64, _ = runner64.generate(c)
        if tokens != tokens64:
            problems.append(f"{c['name']}: float64 decodes differently: {tokens64}")
        if margin < MIN_MARGIN:
            problems.append(f"{c['name']}: decision margin {margin:.2e} < {MIN_MARGIN}")
        theirs = hf5_generate(model, kind, data, c)
        agrees = theirs == tokens
        if c["num_beams"] == 1 and not agrees:
            problems.append(f"{c['name']}: transformers {transformers.__version__} greedy differs: {theirs}")
        results[c["name"]] = tokens
        hf5[c["name"]] = agrees
        if verbose:
            diff = "" if agrees else "\n      transformers 5: " + " ".join(
                f"#{i} {t}" for i, (t, m) in enumerate(zip(theirs, tokens)) if t != m)
            if not agrees:
                # Diagnosis: 4.2.1 scores a beam still open at max_length by its length with the start
                # token (max_length); transformers 5 by the generated tokens (max_length − 1).
                variant, _ = runner.generate(c, unfinished_offset=1)
                diff += ("; = 4.2.1 with open beams at max_length scored by length − 1" if variant == theirs
                         else "; not explained by the length of open beams")
            print(f"  {c['name']:26s} margin {margin:.1e}  {tokens}{diff}")
        entries.append({"name": c["name"], "options": c["options"],
                        "search": {k: c[k] for k in ("num_beams", "max_length", "no_repeat_ngram_size",
                                                     "early_stopping", "length_penalty", "forced_eos")},
                        "transformers_5_agrees": agrees, "min_margin": float(f"{margin:.3g}"), "tokens": tokens})

    # The configurations must not be trivial.
    def differs(a, b):
        return any(x != y for x, y in zip(results[a], results[b]))

    checks = {
        "greedy outputs depend on the input": len({tuple(t) for t in results["greedy"]}) >= 4,
        "some greedy sequences end with EOS, some run to max_length":
            0 < sum(t[-1] == eos for t in results["greedy"]) < EXAMPLES,
        "some beam-3 sequences end with EOS before max_length": any(len(t) < TARGET for t in results["beam3"]),
        "the 2-gram ban changes greedy": differs("greedy", "greedy-ngram2"),
        "the 2-gram ban changes beam search": differs("beam3", "beam3-ngram2"),
        "beam search differs from greedy": differs("greedy", "beam2") and differs("greedy", "beam3"),
        "beam 2 and 3 differ": differs("beam2", "beam3"),
        "early stopping changes something": differs("beam3", "beam3-early") or differs("beam2", "beam2-early"),
        "the length penalty changes something": differs("beam2", "beam2-penalty0.5"),
    }
    if kind == "bart":
        checks["the forced EOS changes something"] = (differs("beam3", "beam3-no-forced-eos")
                                                       or differs("beam2-short", "beam2-short-no-forced-eos"))
        checks["the config's 3-gram ban changes greedy"] = differs("greedy", "greedy-defaults")
    problems += [f"not satisfied: {k}" for k, ok in checks.items() if not ok]

    prefix = [cfg["decoder_start_token_id"]] + ([cfg["bos_token_id"]] if kind == "bart" else [])
    try:
        choices, chosen, logits = pick_choices(runner, prefix)
        chosen64, _ = runner64.classify(prefix, choices)
        if chosen != chosen64:
            problems.append("classify: float64 chooses differently")
        if verbose:
            print(f"  {'classify':26s} prefix {prefix} choices {choices}: {chosen}")
        entries.append({"name": "classify", "options": ["--classify", f"{choices[0]},{choices[1]}"], "prefix": prefix,
                        "choices": choices, "logits": [[float(f"{x:.6g}") for x in row] for row in logits],
                        "tokens": [[t] for t in chosen]})
    except AssertionError as e:
        problems.append(str(e))
    if verbose:
        beams = [c for c in hf5 if c.startswith("beam")]
        agree = [b for b in beams if hf5[b]]
        print(f"  transformers {transformers.__version__} beam search agrees with the 4.2.1 transcription on "
              f"{len(agree)}/{len(beams)} configurations"
              + ("" if len(agree) == len(beams) else f" (differs: {', '.join(b for b in beams if not hf5[b])})"))
    return entries, problems


def write(kind: str, out_dir: Path, data, weights, entries) -> None:
    cfg = BART_CONFIG if kind == "bart" else T5_CONFIG
    name = f"generate-{kind}"
    spec = {"backbone": "config.json", "pet": {"method": "full"},
            "batch": {"size": BATCH, "text_length": TEXT, "target_length": TARGET},
            "loss": "token_mean", "dropout": 0.0}
    expected = {
        "generator": "tools/reference/make_generation_golden.py",
        "semantics": "transformers 4.2.1 generate (greedy_search / beam_search / BeamSearchScorer / "
                     "NoRepeatNGramLogitsProcessor / BART adjust_logits_during_generation), HF forward without cache",
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "examples": EXAMPLES, "batch_size": BATCH,
        "tokens": "per example, the sequence without the decoder start token, up to and including EOS "
                  "(MODEL generate's JSONL \"tokens\"); classify: the chosen token",
        "configurations": entries,
    }
    cdir = out_dir / name
    if cdir.exists():
        shutil.rmtree(cdir)
    cdir.mkdir(parents=True)
    (cdir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (cdir / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    meta = {"generator": "tools/reference/make_generation_golden.py", "case": name}
    mg.save_safetensors(weights, cdir / "weights.safetensors", meta)
    mg.save_safetensors(data, cdir / "data.safetensors", meta)
    lines = ",\n".join("  " + json.dumps(e) for e in entries)
    head = json.dumps({k: v for k, v in expected.items() if k != "configurations"}, indent=1)[:-2]
    (cdir / "expected.json").write_text(head + ',\n "configurations": [\n' + lines + "\n ]\n}\n")
    json.loads((cdir / "expected.json").read_text())
    size = sum(f.stat().st_size for f in cdir.iterdir())
    print(f"  wrote {cdir} ({size / 1024:.0f} KiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", choices=["bart", "t5"])
    ap.add_argument("--search-from", type=int, default=0)
    ap.add_argument("--search-seeds", type=int, metavar="N",
                    help="only report which of the weight seeds 0..N-1 pass every check (to choose SEEDS)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for kind in ("bart", "t5"):
        if args.only not in (None, kind):
            continue
        if args.search_seeds:
            for seed in range(args.search_from, args.search_seeds):
                entries, problems = evaluate(kind, *build(kind, seed), verbose=False)
                checks = [p for p in problems if "margin" not in p]
                margin = min(e.get("min_margin", math.inf) for e in entries)
                verdict = "ok" if not problems else "; ".join(checks) or f"a margin below {MIN_MARGIN}"
                print(f"{kind} seed {seed}: smallest margin {margin:.1e}; {verdict}", flush=True)
            continue
        model, data, weights = build(kind, SEEDS[kind])
        print(f"generate-{kind}: seed {SEEDS[kind]}, {len(weights)} tensors, "
              f"{sum(w.numel() for w in weights.values())} weights")
        entries, problems = evaluate(kind, model, data, weights)
        if problems:
            raise SystemExit("checks failed:\n  " + "\n  ".join(problems))
        write(kind, args.out, data, weights, entries)


if __name__ == "__main__":
    main()
