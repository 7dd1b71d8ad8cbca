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
from safetensors import safe_open
from transformers.modeling_outputs import BaseModelOutput

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_step import cpu_ms, load_batch, load_weights, median_of, model_from_spec, rss_mib  # noqa: E402


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
    model, _ = model_from_spec(args.spec)
    load_weights(model, args.weights)
    model.hf.eval()
    if args.override is not None:
        targets = dict(model.named_params())
        targets.update(model.named_buffers_contract())
        with safe_open(str(args.override), framework="pt") as f, torch.no_grad():
            for name in f.keys():
                if name not in targets:
                    raise SystemExit(f"hf_generate: --override: no weight named {name}")
                targets[name].copy_(f.get_tensor(name).reshape(targets[name].shape))
    batch = {k: v for k, v in load_batch(args.batch).items()
             if k in ("input_ids", "attention_mask", "vis_feats", "vis_boxes")}
    generation = dict(num_beams=1, do_sample=False, use_cache=True, max_new_tokens=args.new_tokens,
                      min_new_tokens=args.new_tokens, no_repeat_ngram_size=0, forced_bos_token_id=None,
                      forced_eos_token_id=None, early_stopping=False, length_penalty=1.0)
    setup_s = time.perf_counter() - t0
    rss_setup = rss_mib()

    def call() -> torch.Tensor:
        encoded, mask = model.encode(batch)
        return model.hf.generate(encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
                                 attention_mask=mask.to(torch.long), **generation)

    times, cpu, starts = [], [], []
    sequences = None
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            cpu_start = cpu_ms()
            monotonic_start = time.monotonic() * 1e3
            start = time.perf_counter()
            sequences = call()
            elapsed = (time.perf_counter() - start) * 1e3
            cpu_elapsed = cpu_ms() - cpu_start
            if i >= args.warmup:
                times.append(elapsed)
                cpu.append(cpu_elapsed)
                starts.append(monotonic_start)
    generated = int(sequences.shape[1]) - 1  # after the decoder start token
    if generated != args.new_tokens:
        raise SystemExit(f"hf_generate: generate returned {generated} new tokens, expected {args.new_tokens}")

    s = sorted(times)
    n = len(s)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "function": "hf-generate",
        "compiled": False, "warmup": args.warmup, "steps": n, "new_tokens": args.new_tokens,
        "median_ms": round(median_of(times), 3), "min_ms": round(s[0], 3), "max_ms": round(s[-1], 3),
        "mean_ms": round(sum(s) / n, 3), "cpu_ms": round(median_of(cpu), 3), "times_ms": [round(t, 3) for t in times],
        "starts_ms": [round(t, 3) for t in starts],
        "peak_rss_mb": round(rss_mib(), 1), "rss_after_setup_mb": round(rss_setup, 1), "setup_s": round(setup_s, 2),
        "generated_tokens": [generated] * int(sequences.shape[0]),
    }))


if __name__ == "__main__":
    main()
