#!/usr/bin/env python3
"""Hugging Face `generate` side of the generation benchmark (issue 5's baseline: "greedy generation
≥ 3× Hugging Face `generate` in eager PyTorch").

    python bench/hf_generate.py --spec SPEC.json --weights W.safetensors --batch B.safetensors \\
        [--override O.safetensors] [--new-tokens 10] [--steps 10] [--warmup 2] [--threads 2]

Run by bench/run in its own process. Prints one JSON line (as bench/torch_generate.py).

One timed call = one batch: the reference model's encoder (tools/reference/vl_models.py: text and
visual tokens, with the PET modules; the same work as Granule's @encode up to the decoder's
cross-attention keys and values), then `model.hf.generate(encoder_outputs=..., attention_mask=...,
num_beams=1, do_sample=False, use_cache=True, max_new_tokens=N, min_new_tokens=N)` on the Hugging
Face BartForConditionalGeneration / T5ForConditionalGeneration that holds the same weights:
transformers' own greedy loop with its cache classes and logits processors.

What differs from the model Granule runs, deliberately in Hugging Face's favour: HF's decoder is
the plain backbone, so VL-PET's value-path adapter in the decoder's cross-attention (and LoRA's
decoder deltas) are not computed. Every row decodes exactly N tokens (`min_new_tokens` masks
</s>, as bench/run's override of BART's final_logits_bias does for the other systems); the tokens
are not compared with Granule's, because of that difference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers.modeling_outputs import BaseModelOutput

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_generate import generation_batch, generation_model, timed_calls, timing_summary  # noqa: E402
from torch_step import rss_mib  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--batch", type=Path, required=True)
    ap.add_argument("--override", type=Path, help="tensors replacing the weights of the same names")
    ap.add_argument("--new-tokens", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = generation_model(args.spec, args.weights, args.override, "hf_generate")
    batch = generation_batch(args.batch)
    generation = dict(num_beams=1, do_sample=False, use_cache=True, max_new_tokens=args.new_tokens,
                      min_new_tokens=args.new_tokens, no_repeat_ngram_size=0, forced_bos_token_id=None,
                      forced_eos_token_id=None, early_stopping=False, length_penalty=1.0)
    setup_s = time.perf_counter() - t0
    rss_setup = rss_mib()

    def call() -> torch.Tensor:
        encoded, mask = model.encode(batch)
        return model.hf.generate(encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
                                 attention_mask=mask.to(torch.long), **generation)

    with torch.no_grad():
        times, cpu, starts, sequences = timed_calls(call, args.warmup, args.steps)
    generated = int(sequences.shape[1]) - 1  # after the decoder start token
    if generated != args.new_tokens:
        raise SystemExit(f"hf_generate: generate returned {generated} new tokens, expected {args.new_tokens}")

    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "function": "hf-generate",
        "compiled": False, "warmup": args.warmup, "new_tokens": args.new_tokens, **timing_summary(times, cpu, starts),
        "rss_after_setup_mb": round(rss_setup, 1), "setup_s": round(setup_s, 2),
        "generated_tokens": [generated] * int(sequences.shape[0]),
    }))


if __name__ == "__main__":
    main()
