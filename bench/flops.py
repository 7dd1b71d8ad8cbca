"""Hand count of the matmul FLOPs of VL-BART / VL-T5 with VL-PET or LoRA, to cross-check the counts
`granule stats` prints (bench/bench.py compares it with the sum of the `gemm` lines of `granule
stats SPEC --schedule` for the same function).

    python bench/flops.py SPEC.json      # prints the count for @loss, @loss_grad, @encode, @decode_step

A GEMM of [M, K] x [K, N] is 2·M·K·N FLOPs; elementwise work, softmax, normalisation, the loss and
the optimizer update are not counted (about 1% of a training step). The forward pass is walked once
with, for every tensor, whether it depends on a trainable parameter ("requires grad"), and backward
follows the rules of Granule's autodiff:

* a GEMM gets one backward GEMM (as many FLOPs as the forward one) per operand that requires grad:
  the input gradient when its input depends on a trainable parameter, the weight gradient when its
  weight is trainable; attention's Q·Kᵀ and P·V get one per operand that depends on a trainable
  parameter (0, 1 or 2);
* nothing upstream of the first trainable parameter is differentiated (e.g. with VL-PET the decoder's
  token embeddings and its first self-attention block are frozen and independent of every trainable
  parameter, so decoder layer 0's self-attention has no backward, and its cross-attention needs dK,
  dV but no dQ); the visual projections need no input gradient (their inputs are the batch).

Trainable sets are the official code's (tools/reference/vl_models.py `trainable_names`): VL-PET:
the PET modules, the encoder's norms and the visual embedding; LoRA: lora_A / lora_B, every
parameter whose name contains "bias" (BART: all linear and LayerNorm biases; T5, which has no
biases: the relative-attention bias tables) and the visual embedding.

Functions (Granule's names): @loss (forward: loss and logits), @loss_grad (forward + backward),
@encode (the encoder plus every decoder layer's cross-attention keys and values, VL-PET's value
adapter included, for generation), @decode_step (one token of B rows against a self-attention cache
of batch.target_length positions, all of them computed, masked). A generation of n tokens is
@encode + n × @decode_step.

For BART-base VL-PET-large at batch 4 (20 text + 36 visual tokens, 10 targets) this gives forward
31.976 + backward 33.996 = 65.972 GFLOP for @loss_grad, exactly the sum of its `gemm` lines; the
@loss_grad total `granule stats` prints (66.73-66.77 GFLOP, depending on the build) adds the
elementwise, normalisation, softmax and loss work this count leaves out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


class _Count:
    """Forward and backward GEMM FLOPs of one walk through the model."""

    def __init__(self) -> None:
        self.forward = 0.0
        self.backward = 0.0

    def gemm(self, m: int, k: int, n: int, a_req: bool, b_req: bool, batch: int = 1) -> bool:
        """[m, k]·[k, n] (batch of them); returns whether the product requires grad."""
        f = 2.0 * batch * m * k * n
        self.forward += f
        self.backward += f * (int(a_req) + int(b_req))
        return a_req or b_req

    def linear(self, rows: int, din: int, dout: int, x_req: bool, w_trainable: bool, bias_trainable: bool = False) -> bool:
        return self.gemm(rows, din, dout, x_req, w_trainable) or bias_trainable


def _dims(spec: dict, config: dict) -> dict:
    kind = config["model_type"]
    b = spec["batch"]
    v = spec.get("visual")
    nv = 0 if v is None else v["images"] * (v["grid"][0] - v["pool_window"][0] + 1) * (v["grid"][1] - v["pool_window"][1] + 1)
    if kind == "bart":
        d, heads = config["d_model"], config["encoder_attention_heads"]
        return dict(kind=kind, d=d, heads=heads, hd=d // heads, f_enc=config["encoder_ffn_dim"], f_dec=config["decoder_ffn_dim"],
                    Le=config["encoder_layers"], Ld=config["decoder_layers"], V=spec.get("resize_vocab", config["vocab_size"]),
                    B=b["size"], L=b["text_length"], T=b["target_length"], Nv=nv, Fv=0 if v is None else v["feature_dim"])
    if kind == "t5":
        d, heads = config["d_model"], config["num_heads"]
        return dict(kind=kind, d=d, heads=heads, hd=config["d_kv"], f_enc=config["d_ff"], f_dec=config["d_ff"],
                    Le=config["num_layers"], Ld=config.get("num_decoder_layers", config["num_layers"]),
                    V=spec.get("resize_vocab", config["vocab_size"]), B=b["size"], L=b["text_length"], T=b["target_length"],
                    Nv=nv, Fv=0 if v is None else v["feature_dim"])
    raise ValueError(f"the hand formula covers BART and T5, not {kind!r}")


def _pet(spec: dict) -> dict:
    pet = dict(spec["pet"])
    m = pet["method"]
    if m == "vl-pet":
        if pet.get("base", "adapter") != "adapter" or pet.get("granularity") != "large":
            raise ValueError("the hand formula covers VL-PET-large with the adapter base only")
    elif m != "lora":
        raise ValueError(f"the hand formula covers VL-PET-large and LoRA, not {m!r}")
    return pet


def count(spec: dict, config: dict, function: str) -> dict[str, float]:
    """GEMM FLOPs of one call of a Granule function: {"forward", "backward", "total"}."""
    g = _dims(spec, config)
    pet = _pet(spec)
    lora, vlpet = pet["method"] == "lora", pet["method"] == "vl-pet"
    bart = g["kind"] == "bart"
    d, H, hd, B, L, T, V = g["d"], g["heads"], g["hd"], g["B"], g["L"], g["T"], g["V"]
    inner = H * hd
    N = L + g["Nv"]
    Me = B * N
    c = _Count()

    def proj(rows, din, dout, x_req, lora_here=False, bias=bart):
        """A frozen backbone projection (+ LoRA on q and v when lora_here)."""
        out = c.linear(rows, din, dout, x_req, False, bias and lora)       # LoRA: every bias is trainable
        if lora_here and lora:
            a = c.linear(rows, din, pet["r"], x_req, True)
            c.linear(rows, pet["r"], dout, a, True)
            out = True
        return out

    def vlpet_branch(rows, x_req, h_req):
        """VL-PET-large's ΔH on H and gate on X (trainable): output requires grad."""
        a = c.linear(rows, d, pet["r"], h_req, True)
        c.linear(rows, pet["r"], d, a, True)
        a = c.linear(rows, d, pet["gate_r"], x_req, True)
        c.linear(rows, pet["gate_r"], d, a, True)
        return True

    def attention(rows_q, n_q, n_k, x_req, kv_req, bias_req=False, cache=None, kv_rows=None):
        """Attention of n_q queries over n_k keys per row, with its own projections (of kv_rows
        rows, default B·n_k; decode_step projects one new token per row into a cache of n_k);
        cache: cross-attention's keys and values given, as (K requires grad, V requires grad)."""
        q = proj(rows_q, d, inner, x_req, lora_here=True)
        if cache is None:
            k = proj(kv_rows or B * n_k, d, inner, kv_req)
            v = proj(kv_rows or B * n_k, d, inner, kv_req, lora_here=True)
        else:
            k, v = cache
        s = c.gemm(n_q, hd, n_k, q, k, batch=B * H) or bias_req
        o = c.gemm(n_q, n_k, hd, s, v, batch=B * H)
        return proj(rows_q, inner, d, o)

    def ffn(rows, f, x_req):
        h = proj(rows, d, f, x_req)
        return proj(rows, f, d, h)

    # ----- encoder ------------------------------------------------------------------------
    def encoder() -> bool:
        # Text: BART's layernorm_embedding is trainable with VL-PET (encoder norm) and LoRA (its
        # bias); T5's text embeddings are frozen. Visual embedding: trainable, inputs from the batch.
        x = bart
        if g["Nv"]:
            c.linear(B * g["Nv"], g["Fv"], d, False, True)
            c.linear(B * g["Nv"], 5, d, False, True)
            x = True
        for _ in range(g["Le"]):
            h = attention(Me, N, N, x, x, bias_req=lora and not bart)     # T5: one bias table, every layer
            x = (vlpet_branch(Me, x, h) if vlpet else h) or x
            h = ffn(Me, g["f_enc"], x)
            x = (vlpet_branch(Me, x, h) if vlpet else h) or x
        return x

    def cross_kv(e_req: bool) -> tuple[bool, bool]:
        k = proj(Me, d, inner, e_req)
        v = proj(Me, d, inner, e_req, lora_here=True)
        if vlpet:
            a = c.linear(Me, d, pet["value_r"], e_req, True)
            c.linear(Me, pet["value_r"], inner, a, True)
            v = True
        return k, v

    # ----- decoder ------------------------------------------------------------------------
    def decoder(e_req: bool, rows: int, n_q: int, n_self: int, caches: list | None) -> bool:
        """The decoder on rows = B·n_q positions; caches: decode_step (one token per row, a
        self-attention cache of n_self positions, cross-attention keys and values from @encode)."""
        # BART: layernorm_embedding's bias is trainable with LoRA. T5: frozen embeddings.
        y = bart and lora
        for layer in range(g["Ld"]):
            h = attention(rows, n_q, n_self, y, y, bias_req=lora and not bart, kv_rows=rows)
            y = h or y
            kv = caches[layer] if caches is not None else cross_kv(e_req)
            h = attention(rows, n_q, N, y, e_req, cache=kv)
            y = h or y
            y = ffn(rows, g["f_dec"], y) or y
        return c.gemm(rows, d, V, y, False)            # LM head: tied, frozen

    if function in ("loss", "loss_grad"):
        e = encoder()
        decoder(e, B * T, T, T, None)
        fwd, bwd = c.forward, c.backward if function == "loss_grad" else 0.0
        return {"forward": fwd, "backward": bwd, "total": fwd + bwd}
    if function == "encode":
        encoder()
        for _ in range(g["Ld"]):
            cross_kv(False)
        return {"forward": c.forward, "backward": 0.0, "total": c.forward}
    if function == "decode_step":
        decoder(False, B, 1, T, [(False, False)] * g["Ld"])
        return {"forward": c.forward, "backward": 0.0, "total": c.forward}
    raise ValueError(f"no hand count for @{function}")


def generation_flops(spec: dict, config: dict, tokens: int) -> float:
    """@encode + tokens × @decode_step."""
    return count(spec, config, "encode")["total"] + tokens * count(spec, config, "decode_step")["total"]


def bart_vlpet_step_flops(spec: dict, config: dict) -> dict[str, float]:
    """@loss_grad of a VL-BART VL-PET-large spec (the name bench.py used first)."""
    return count(spec, config, "loss_grad")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", type=Path)
    args = ap.parse_args()
    spec = json.loads(args.spec.read_text())
    config = json.loads((args.spec.parent / spec["backbone"]).read_text())
    for f in ("loss", "loss_grad", "encode", "decode_step"):
        r = count(spec, config, f)
        print(f"@{f}: {r['total'] / 1e9:.3f} GFLOP (forward {r['forward'] / 1e9:.3f}, backward {r['backward'] / 1e9:.3f})")


if __name__ == "__main__":
    main()
