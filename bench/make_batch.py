#!/usr/bin/env python3
"""Write the benchmark batch for a Granule model spec as safetensors (deterministic).

    python bench/make_batch.py SPEC.json OUT.safetensors [--seed 0]

For the bundled VL-BART specs at batch 4 (text 20, target 10, one 7x7x2048 grid):
  input_ids, attention_mask  i64 [B, L]   <s> w ... w </s> <pad> ...; rows of 20, 16, 11 and 7 tokens
                                          (T5: w ... w </s> <pad> ...); words in [3, vocab-201)
  vis_feats                  f32 [B, images, H, W, F]   |N(0,1)| (CLIP grid features are >= 0)
  vis_boxes                  f32 [B, images*tokens, 4]  (x1, x2, y1, y2), x1 < x2, y1 < y2 in [0, 1]
  labels                     i64 [B, T]   targets of 10, 7, 4 and 9 tokens ending in </s>, then -100
  scores                     f32 [B]      VQA soft scores in [0.3, 1] (score_weighted loss)
  dropout_seed               i64 []       (ignored by a program compiled with dropout 0)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def make_batch(spec: dict, config: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = spec["batch"]
    B, L, T = b["size"], b["text_length"], b["target_length"]
    vocab = spec.get("resize_vocab", config["vocab_size"])
    bart = config["model_type"] == "bart"
    pad, eos = config["pad_token_id"], config["eos_token_id"]
    bos = config.get("bos_token_id", 0)
    words_hi = vocab - 201                 # keep clear of the visual-token rows at the end
    text_lengths = [L, max(3, L * 4 // 5), max(3, L * 11 // 20), max(3, L * 7 // 20)]
    target_lengths = [T, max(2, T * 7 // 10), max(2, T * 2 // 5), max(2, T * 9 // 10)]
    ids = np.full((B, L), pad, dtype=np.int64)
    mask = np.zeros((B, L), dtype=np.int64)
    labels = np.full((B, T), -100, dtype=np.int64)
    for i in range(B):
        n = text_lengths[i % 4]
        words = rng.integers(3, words_hi, size=n).tolist()
        row = ([bos] + words[:n - 2] + [eos]) if bart else (words[:n - 1] + [eos])
        ids[i, :n] = row
        mask[i, :n] = 1
        t = target_lengths[i % 4]
        labels[i, :t] = rng.integers(3, words_hi, size=t)
        labels[i, t - 1] = eos
    batch = {"input_ids": ids, "attention_mask": mask}
    if "visual" in spec:
        v = spec["visual"]
        n_img, (gh, gw), (wh, ww), F = v["images"], v["grid"], v["pool_window"], v["feature_dim"]
        tokens = n_img * (gh - wh + 1) * (gw - ww + 1)
        batch["vis_feats"] = np.abs(rng.standard_normal((B, n_img, gh, gw, F))).astype(np.float32)
        x1 = 0.5 * rng.random((B, tokens))
        x2 = x1 + 0.1 + 0.4 * rng.random((B, tokens))
        y1 = 0.5 * rng.random((B, tokens))
        y2 = y1 + 0.1 + 0.4 * rng.random((B, tokens))
        batch["vis_boxes"] = np.stack([x1, x2, y1, y2], axis=-1).astype(np.float32)
    batch["labels"] = labels
    if spec["loss"] == "score_weighted":
        batch["scores"] = (0.3 + 0.7 * rng.random(B)).astype(np.float32)
    batch["dropout_seed"] = np.array(1234, dtype=np.int64)
    return batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    spec = json.loads(args.spec.read_text())
    config = json.loads((args.spec.parent / spec["backbone"]).read_text())
    batch = make_batch(spec, config, args.seed)
    save_file(batch, str(args.out))
    for k, v in batch.items():
        print(f"  {k}: {v.dtype} {list(v.shape)}")


if __name__ == "__main__":
    main()
