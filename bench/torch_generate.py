#!/usr/bin/env python3
"""PyTorch eager side of the generation benchmark: greedy decoding of the reference VL-BART / VL-T5
model (tools/reference/vl_models.py) with a key/value cache, on the weights and batch Granule uses.

    python bench/torch_generate.py --spec SPEC.json --weights W.safetensors --batch B.safetensors \\
        [--override O.safetensors] [--max-length 11] [--steps 10] [--warmup 2] [--threads 2] \\
        [--tokens-out T.json] [--check]

Run by bench/run in its own process. Prints one JSON line (as bench/torch_step.py).

The reference has no generate(): it computes the decoder over all target positions at once. This
script decodes the way Hugging Face `generate(num_beams=1, do_sample=False, use_cache=True)` runs
such a model, with the reference's own modules (projections, norms, PET modules, LM head):

* @encode's work once per batch: the encoder, then every decoder layer's cross-attention keys and
  values (VL-PET's value-path adapter included; HF computes them at the first step and caches
  them, the same work);
* then one decoder step per position on one new token per row: self-attention keys and values
  appended to a per-layer cache (torch.cat, as HF's DynamicCache), attention over the positions so
  far (T5: the relative-position bias row of that position), cross-attention on the cached keys
  and values, the LM head; the next token is the argmax, rows that emitted </s> get <pad>, and the
  loop stops when every row has finished or after max_length − 1 steps (HF's greedy semantics;
  no logits processors: no n-gram ban, no forced tokens, as Granule's generate with
  --no-repeat-ngram-size 0).

One timed call = one batch: the encoder pass and all decoder steps, under `torch.no_grad()`.
--override: tensors replacing the weights of the same name (bench/run uses it to set BART's
final_logits_bias of </s> to −1e9, so that the random model decodes all 10 steps; Granule gets the
same file through generate --checkpoint). --check: once, untimed, the reference's full (teacher
forced) forward on the generated tokens must give the same argmax at every generated position
(the cache is right). --tokens-out: the generated tokens of the last call, for the comparison
with Granule's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_step import cpu_ms, load_batch, load_weights, median_of, model_from_spec, rss_mib  # noqa: E402
from vl_models import key_mask  # noqa: E402


def _heads(x: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    B, n, _ = x.shape
    return x.view(B, n, heads, head_dim).transpose(1, 2)


def _attend(q, k, v, scaling: float, add=None) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling
    if add is not None:
        scores = scores + add
    out = torch.matmul(torch.softmax(scores, dim=-1), v)
    B, H, n, hd = out.shape
    return out.transpose(1, 2).reshape(B, n, H * hd)


class Greedy:
    """Greedy decoding with a KV cache on a VLBart / VLT5 of tools/reference/vl_models.py."""

    def __init__(self, model):
        self.m = model
        self.bart = model.kind == "bart"
        self.vl_pet = model.pet.method == "vl-pet"
        cfg = model.cfg
        self.start, self.eos, self.pad = cfg.decoder_start_token_id, cfg.eos_token_id, cfg.pad_token_id
        if self.bart:
            self.dec = model.hf.model.decoder
            self.W = model.hf.model.shared.weight
            self.layers = list(self.dec.layers)
        else:
            self.dec = model.hf.decoder
            self.W = model.hf.shared.weight
            self.layers = list(self.dec.block)

    def _cross_attn(self, layer):
        return layer.encoder_attn if self.bart else layer.layer[1].EncDecAttention

    def _cross_kv(self, E: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        caches = []
        for layer in self.layers:
            a = self._cross_attn(layer)
            if self.bart:
                heads, hd, k_lin, v_lin = a.num_heads, a.head_dim, a.k_proj, a.v_proj
            else:
                heads, hd, k_lin, v_lin = a.n_heads, a.key_value_proj_dim, a.k, a.v
            v = v_lin(E)
            if self.vl_pet:
                v = v + a.attn_value_parallel_adapter.delta(E)
            caches.append((_heads(k_lin(E), heads, hd), _heads(v, heads, hd)))
        return caches

    def _self(self, a, x, cache, i, t, bias=None):
        """Self-attention of one new position t with the cache of layer i."""
        if self.bart:
            heads, hd, q_lin, k_lin, v_lin, o_lin, scaling = a.num_heads, a.head_dim, a.q_proj, a.k_proj, a.v_proj, a.out_proj, a.scaling
        else:
            heads, hd, q_lin, k_lin, v_lin, o_lin, scaling = a.n_heads, a.key_value_proj_dim, a.q, a.k, a.v, a.o, 1.0
        q, k, v = _heads(q_lin(x), heads, hd), _heads(k_lin(x), heads, hd), _heads(v_lin(x), heads, hd)
        if t > 0:
            k = torch.cat([cache[i][0], k], dim=2)
            v = torch.cat([cache[i][1], v], dim=2)
        cache[i] = (k, v)
        return o_lin(_attend(q, k, v, scaling, bias))

    def _cross(self, a, x, kv, mask):
        if self.bart:
            heads, hd, q_lin, o_lin, scaling = a.num_heads, a.head_dim, a.q_proj, a.out_proj, a.scaling
        else:
            heads, hd, q_lin, o_lin, scaling = a.n_heads, a.key_value_proj_dim, a.q, a.o, 1.0
        return o_lin(_attend(_heads(q_lin(x), heads, hd), kv[0], kv[1], scaling, mask))

    @torch.no_grad()
    def generate(self, batch: dict, max_length: int, record: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(sequences [B, max_length] starting with the start token, lengths [B] with it);
        record: a list that gets every step's logits [B, V]."""
        m = self.m
        E, enc_mask = m.encode(batch)
        B = E.shape[0]
        cross = self._cross_kv(E)
        cross_mask = key_mask(enc_mask)
        cache: list = [None] * len(self.layers)
        if not self.bart:
            rel = self.dec.block[0].layer[0].SelfAttention
            rel_bias = rel.compute_bias(max_length - 1, max_length - 1)       # [1, H, T, T]
        seq = torch.full((B, max_length), self.pad, dtype=torch.long)
        seq[:, 0] = self.start
        lengths = torch.ones(B, dtype=torch.long)
        finished = torch.zeros(B, dtype=torch.bool)
        for length in range(1, max_length):
            t = length - 1
            tok = seq[:, t:t + 1]
            if self.bart:
                y = F.embedding(tok, self.W) * m.embed_scale + self.dec.embed_positions.weight[2 + t]
                y = self.dec.layernorm_embedding(y)
                for i, layer in enumerate(self.layers):
                    y = layer.self_attn_layer_norm(y + self._self(layer.self_attn, y, cache, i, t))
                    y = layer.encoder_attn_layer_norm(y + self._cross(layer.encoder_attn, y, cross[i], cross_mask))
                    y = layer.final_layer_norm(y + layer.fc2(layer.activation_fn(layer.fc1(y))))
                logits = m.hf.lm_head(y) + m.hf.final_logits_bias
            else:
                y = F.embedding(tok, self.W)
                bias = rel_bias[:, :, t:t + 1, :t + 1]
                for i, block in enumerate(self.layers):
                    sa, ca, ff = block.layer[0], block.layer[1], block.layer[2]
                    y = y + self._self(sa.SelfAttention, sa.layer_norm(y), cache, i, t, bias)
                    y = y + self._cross(ca.EncDecAttention, ca.layer_norm(y), cross[i], cross_mask)
                    y = y + ff.DenseReluDense(ff.layer_norm(y))
                y = self.dec.final_layer_norm(y)
                if m.tied:
                    y = y * (m.cfg.d_model ** -0.5)
                logits = m.hf.lm_head(y)
            if record is not None:
                record.append(logits[:, 0].clone())
            nxt = logits[:, 0].argmax(dim=-1)
            nxt = torch.where(finished, torch.full_like(nxt, self.pad), nxt)
            seq[:, length] = nxt
            lengths = torch.where(finished, lengths, torch.full_like(lengths, length + 1))
            finished = finished | (nxt == self.eos)
            if bool(finished.all()):
                break
        return seq, lengths


def check_against_full_forward(model, greedy: Greedy, batch: dict, max_length: int) -> dict:
    """Generates once more, keeping every step's logits, and runs the reference's teacher-forced
    forward on the generated tokens: at every generated position the argmax must be the generated
    token and the logits must agree (relative L2 error of each position's logits; the cache is
    right)."""
    steps: list = []
    seq, lengths = greedy.generate(batch, max_length, record=steps)
    labels = seq[:, 1:].clone()
    with torch.no_grad():
        logits = model.forward(dict(batch, labels=labels))
    pred = logits.argmax(dim=-1)
    positions = mismatches = 0
    worst = 0.0
    for b in range(seq.shape[0]):
        n = int(lengths[b]) - 1
        positions += n
        mismatches += int((pred[b, :n] != labels[b, :n]).sum())
        for t in range(n):
            full, cached = logits[b, t].double(), steps[t][b].double()
            worst = max(worst, float((full - cached).norm() / full.norm().clamp(min=1e-30)))
    return {"positions": positions, "argmax_mismatches": mismatches, "logits_worst_rel_l2": worst,
            "ok": mismatches == 0 and worst < 1e-4}


def generation_model(spec: Path, weights: Path, override: Path | None, tool: str):
    """The reference model on `weights`, with `override`'s tensors replacing those of the same names."""
    model, _ = model_from_spec(spec)
    load_weights(model, weights)
    model.hf.eval()
    if override is not None:
        targets = dict(model.named_params())
        targets.update(model.named_buffers_contract())
        with safe_open(str(override), framework="pt") as f, torch.no_grad():
            for name in f.keys():
                if name not in targets:
                    raise SystemExit(f"{tool}: --override: no weight named {name}")
                targets[name].copy_(f.get_tensor(name).reshape(targets[name].shape))
    return model


def generation_batch(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_batch(path).items() if k in ("input_ids", "attention_mask", "vis_feats", "vis_boxes")}


def timed_calls(call, warmup: int, steps: int):
    """Runs `call` warmup + steps times; returns the timed calls' ms, CPU ms, monotonic starts and
    the last call's result."""
    times, cpu, starts = [], [], []
    result = None
    for i in range(warmup + steps):
        cpu_start = cpu_ms()
        monotonic_start = time.monotonic() * 1e3
        start = time.perf_counter()
        result = call()
        elapsed = (time.perf_counter() - start) * 1e3
        cpu_elapsed = cpu_ms() - cpu_start
        if i >= warmup:
            times.append(elapsed)
            cpu.append(cpu_elapsed)
            starts.append(monotonic_start)
    return times, cpu, starts, result


def timing_summary(times: list[float], cpu: list[float], starts: list[float]) -> dict:
    """The figures bench/run reads from every benchmark process."""
    s = sorted(times)
    n = len(s)
    return {"steps": n, "median_ms": round(median_of(times), 3), "min_ms": round(s[0], 3), "max_ms": round(s[-1], 3),
            "mean_ms": round(sum(s) / n, 3), "cpu_ms": round(median_of(cpu), 3), "times_ms": [round(t, 3) for t in times],
            "starts_ms": [round(t, 3) for t in starts], "peak_rss_mb": round(rss_mib(), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--batch", type=Path, required=True)
    ap.add_argument("--override", type=Path, help="tensors replacing the weights of the same names")
    ap.add_argument("--max-length", type=int, default=11, help="tokens with the decoder start token (default 11)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens-out", type=Path, help="write the generated tokens (JSON) here")
    ap.add_argument("--check", action="store_true", help="check the cached decoding against the full forward, once")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = generation_model(args.spec, args.weights, args.override, "torch_generate")
    batch = generation_batch(args.batch)
    greedy = Greedy(model)
    setup_s = time.perf_counter() - t0
    rss_setup = rss_mib()

    times, cpu, starts, (seq, lengths) = timed_calls(lambda: greedy.generate(batch, args.max_length), args.warmup, args.steps)
    check = check_against_full_forward(model, greedy, batch, args.max_length) if args.check else None
    tokens = [seq[b, 1:int(lengths[b])].tolist() for b in range(seq.shape[0])]
    if args.tokens_out is not None:
        args.tokens_out.write_text(json.dumps(tokens) + "\n")

    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "function": "generate",
        "compiled": False, "warmup": args.warmup, "max_length": args.max_length, **timing_summary(times, cpu, starts),
        "rss_after_setup_mb": round(rss_setup, 1), "setup_s": round(setup_s, 2),
        "generated_tokens": [len(t) for t in tokens], "check": check,
    }))


if __name__ == "__main__":
    main()
