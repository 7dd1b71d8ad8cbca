#!/usr/bin/env python3
"""Make the small golden test cases the Swift frontend is checked against.

    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/reference/make_goldens.py [--out DIR] [--only CASE ...]

For every case it writes DIR/<case>/{config.json, spec.json, golden.safetensors} (default DIR:
Tests/GranuleFrontendTests/Goldens next to this repository's tools/). Before writing anything it
asserts that
  1. the hand-written layer code equals the Hugging Face forward pass (text only, no PET) for BART,
     T5 and T5 v1.1 (logits and token-mean loss);
  2. our LoRA equals PEFT's LoRA (q/v of every attention, text only) for BART and T5;
  3. every PET method with its output-side weights zeroed (ΔH up-projection, z, VPA up, adapter up,
     LoRA B) reduces to the plain VL backbone with the same weights (insertion points are neutral).
Everything runs on the CPU in float32 with fixed seeds, dropout off; see README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pet import PETConfig  # noqa: E402
from vl_models import VLModel, VisualSpec, build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "Tests" / "GranuleFrontendTests" / "Goldens"

B, L, T = 2, 6, 4

# ---------------------------------------------------------------------------------------------
# Tiny backbones (written verbatim as each case's config.json)
# ---------------------------------------------------------------------------------------------

BART_CONFIG = {
    "model_type": "bart",
    "architectures": ["BartForConditionalGeneration"],
    "vocab_size": 64,
    "d_model": 16,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_ffn_dim": 32,
    "max_position_embeddings": 32,
    "activation_function": "gelu",
    "scale_embedding": False,
    "add_final_layer_norm": False,
    "normalize_before": False,
    "normalize_embedding": True,
    "add_bias_logits": False,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.1,
    "encoder_layerdrop": 0.0,
    "decoder_layerdrop": 0.0,
    "init_std": 0.02,
    "is_encoder_decoder": True,
    "tie_word_embeddings": True,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "decoder_start_token_id": 2,
    "forced_eos_token_id": 2,
}

T5_CONFIG = {
    "model_type": "t5",
    "architectures": ["T5ForConditionalGeneration"],
    "vocab_size": 64,
    "d_model": 16,
    "d_kv": 8,
    "d_ff": 32,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 2,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 20,
    "feed_forward_proj": "relu",
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
    "initializer_factor": 1.0,
    "is_encoder_decoder": True,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}

T5V11_CONFIG = dict(T5_CONFIG, feed_forward_proj="gated-gelu", dense_act_fn="gelu_new",
                    is_gated_act=True, tie_word_embeddings=False)

BACKBONES = {"bart": ("bart", BART_CONFIG), "t5": ("t5", T5_CONFIG), "t5v11": ("t5", T5V11_CONFIG)}


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

def vlpet(g: str, *, t5: bool = False, base: str | None = None) -> PETConfig:
    return PETConfig("vl-pet", granularity=g, r=8, heads=2, gate_r=4 if g == "large" else 0,
                     scale=0.3 if t5 else 1.0, value_r=4, base=base, phm_n=2)


@dataclass
class Case:
    name: str
    backbone: str                  # bart | t5 | t5v11
    pet: PETConfig
    images: int | None = 1         # None: text only (no visual embedding at all)
    loss: str = "sample_mean"
    notes: list[str] = field(default_factory=list)


CASES = [
    Case("bart-vlpet-small", "bart", vlpet("small")),
    Case("bart-vlpet-middlex", "bart", vlpet("middlex")),
    Case("bart-vlpet-middley", "bart", vlpet("middley")),
    Case("bart-vlpet-large", "bart", vlpet("large")),
    Case("bart-vlpet-large-nlvr", "bart", vlpet("large"), images=2),
    Case("bart-vlpet-large-textonly", "bart", vlpet("large"), images=None),
    Case("bart-vlpet-large-score", "bart", vlpet("large"), loss="score_weighted"),
    Case("bart-vl-adapter", "bart", PETConfig("vl-adapter", r=4)),
    Case("bart-lora", "bart", PETConfig("lora", r=4, alpha=1.0)),
    Case("bart-compacter", "bart", PETConfig("compacter", r=4, phm_n=2)),
    Case("bart-bitfit", "bart", PETConfig("bitfit")),
    Case("bart-prompt-tuning", "bart", PETConfig("prompt-tuning", length=3, mid_dim=10)),
    Case("bart-full", "bart", PETConfig("full"), loss="token_mean"),
    Case("bart-vlpet-large-compacter", "bart", vlpet("large", base="compacter")),
    Case("t5-vlpet-small", "t5", vlpet("small", t5=True)),
    Case("t5-vlpet-middlex", "t5", vlpet("middlex", t5=True)),
    Case("t5-vlpet-middley", "t5", vlpet("middley", t5=True)),
    Case("t5-vlpet-large", "t5", vlpet("large", t5=True)),
    Case("t5-vl-adapter", "t5", PETConfig("vl-adapter", r=4)),
    Case("t5-lora", "t5", PETConfig("lora", r=4, alpha=1.0)),
    Case("t5v11-vlpet-large", "t5v11", vlpet("large", t5=True)),
]


def seed_of(text: str) -> int:
    return zlib.crc32(text.encode())


# ---------------------------------------------------------------------------------------------
# Weights and batches
# ---------------------------------------------------------------------------------------------

def randomize(model: VLModel, seed: int, scale=lambda name: 0.2, buffer_scale: float = 0.1) -> None:
    """Every weight random and non-trivial: norm weights 1 + 0.2·N(0,1), biases 0.1·N(0,1),
    everything else (incl. PET weights, PHM rules, z) scale(name)·N(0,1), buffers
    (final_logits_bias) buffer_scale·N(0,1). Drawn in sorted-name order from one generator."""
    g = torch.Generator().manual_seed(seed)
    params = model.named_params()
    norms = model.norm_param_names()
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            z = torch.randn(p.shape, generator=g)
            if name in norms and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * z)
            elif name.rsplit(".", 1)[-1] == "bias":
                p.copy_(0.1 * z)
            else:
                p.copy_(scale(name) * z)
        for name, buf in sorted(model.named_buffers_contract().items()):
            buf.copy_(buffer_scale * torch.randn(buf.shape, generator=g))


def make_batch(kind: str, images: int | None, loss: str, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(3, 56, (B, L), generator=g)        # avoid special ids and the visual rows
    if kind == "bart":                                        # <s> w w w w </s> / <s> w w </s> <pad> <pad>
        bos, eos, pad = 0, 2, 1
        ids = [[bos, *words[0, :4].tolist(), eos], [bos, *words[1, :2].tolist(), eos, pad, pad]]
        labels = [[5, 9, 7, eos], [6, eos, -100, -100]]
    else:                                                     # w w w w w </s> / w w w </s> <pad> <pad>
        eos, pad = 1, 0
        ids = [[*words[0, :5].tolist(), eos], [*words[1, :3].tolist(), eos, pad, pad]]
        labels = [[5, 9, 7, eos], [6, eos, -100, -100]]
    batch = {
        "input_ids": torch.tensor(ids, dtype=torch.int64),
        "attention_mask": torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]], dtype=torch.int64),
    }
    if images is not None:
        n = images * 4
        batch["vis_feats"] = torch.randn(B, images, 3, 3, 12, generator=g)
        x1 = 0.5 * torch.rand(B, n, generator=g)
        x2 = x1 + 0.1 + 0.4 * torch.rand(B, n, generator=g)
        y1 = 0.5 * torch.rand(B, n, generator=g)
        y2 = y1 + 0.1 + 0.4 * torch.rand(B, n, generator=g)
        batch["vis_boxes"] = torch.stack([x1, x2, y1, y2], dim=-1)   # (x1, x2, y1, y2)
    batch["labels"] = torch.tensor(labels, dtype=torch.int64)
    if loss == "score_weighted":
        batch["scores"] = 0.2 + 0.8 * torch.rand(B, generator=g)
    return batch


def build_case_model(case: Case) -> VLModel:
    kind, config = BACKBONES[case.backbone]
    visual = VisualSpec(images=case.images) if case.images is not None else None
    model = build_model(kind, config, case.pet, visual)
    randomize(model, seed_of(case.name))
    return model


# ---------------------------------------------------------------------------------------------
# Assertions against Hugging Face and PEFT
# ---------------------------------------------------------------------------------------------

def close(a: torch.Tensor, b: torch.Tensor, what: str, atol: float = 2e-6) -> float:
    err = (a - b).abs().max().item()
    if not err <= atol:
        raise AssertionError(f"{what}: max abs difference {err:.3e} > {atol:.1e}")
    return err


def check_hf_text_only() -> list[str]:
    """Our layer code without PET/visual == the HF model's own forward (eager attention)."""
    out = []
    for bb, (kind, config) in BACKBONES.items():
        model = build_model(kind, config, PETConfig("none"), None)
        randomize(model, seed_of(f"hf-check-{bb}"))
        batch = make_batch(kind, None, "token_mean", seed_of(f"hf-check-batch-{bb}"))
        with torch.no_grad():
            ours, our_loss = model.loss(batch, "token_mean")
            ref = model.hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"], use_cache=False)
        e1 = close(ours, ref.logits, f"HF text-only logits ({bb})")
        e2 = close(our_loss, ref.loss, f"HF text-only loss ({bb})")
        out.append(f"HF text-only {bb}: logits max|Δ| {e1:.1e}, loss |Δ| {e2:.1e}")
    return out


def check_peft_lora() -> list[str]:
    from peft import LoraConfig, get_peft_model

    out = []
    for bb, targets in (("bart", ["q_proj", "v_proj"]), ("t5", ["q", "v"])):
        kind, config = BACKBONES[bb]
        ours = build_model(kind, config, PETConfig("lora", r=4, alpha=1.0), None)
        randomize(ours, seed_of(f"peft-check-{bb}"))
        mine = ours.named_params()
        plain = build_model(kind, config, PETConfig("none"), None)
        with torch.no_grad():
            for n, p in plain.named_params().items():
                p.copy_(mine[n])
            for n, b in plain.named_buffers_contract().items():
                b.copy_(ours.named_buffers_contract()[n])
        peft_model = get_peft_model(plain.hf, LoraConfig(r=4, lora_alpha=1.0, lora_dropout=0.0,
                                                         target_modules=targets, bias="none"))
        peft_model.eval()
        copied = 0
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_" in n:
                    ours_name = n.removeprefix("base_model.model.").replace(".default", "")
                    p.copy_(mine[ours_name])
                    copied += 1
        expected = sum(1 for n in mine if "lora_" in n)
        assert copied == expected, f"PEFT LoRA ({bb}): {copied} LoRA tensors, ours has {expected}"
        batch = make_batch(kind, None, "token_mean", seed_of(f"peft-check-batch-{bb}"))
        with torch.no_grad():
            ref = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             labels=batch["labels"], use_cache=False).logits
            got = ours.forward(batch)
        e = close(got, ref, f"PEFT LoRA logits ({bb})")
        out.append(f"PEFT LoRA {bb}: {copied} LoRA tensors, logits max|Δ| {e:.1e}")
    return out


def check_neutral_pet() -> list[str]:
    """With output-side PET weights zeroed, every method reduces to the plain VL backbone."""
    zero_if = {
        "vl-pet": lambda n: ("adapter_multihead_up" in n or "gating_middle_ia3_add" in n
                             or ("parallel_adapter" in n and "up_sampler" in n)
                             or ("_adapter.up_sampler" in n)),
        "vl-adapter": lambda n: "up_sampler" in n,
        "compacter": lambda n: "up_sampler" in n,
        "lora": lambda n: "lora_B" in n,
    }
    out = []
    checks = [("bart", vlpet("middley")), ("t5", vlpet("middley")),   # s = 1 so that G·H' = H
              ("bart", vlpet("middley", base="compacter")),
              ("bart", PETConfig("vl-adapter", r=4)), ("t5", PETConfig("vl-adapter", r=4)),
              ("bart", PETConfig("compacter", r=4)), ("bart", PETConfig("lora", r=4)),
              ("t5", PETConfig("lora", r=4)), ("t5v11", PETConfig("vl-adapter", r=4))]
    for bb, pet in checks:
        kind, config = BACKBONES[bb]
        vis = VisualSpec(images=2)
        model = build_model(kind, config, pet, vis)
        randomize(model, seed_of(f"neutral-{bb}-{pet.method}-{pet.base}"))
        params = model.named_params()
        plain = build_model(kind, config, PETConfig("none"), vis)
        with torch.no_grad():
            for n, p in params.items():
                if zero_if[pet.method](n):
                    p.zero_()
            for n, p in plain.named_params().items():
                p.copy_(params[n])
            for n, b in plain.named_buffers_contract().items():
                b.copy_(model.named_buffers_contract()[n])
            batch = make_batch(kind, 2, "sample_mean", seed_of(f"neutral-batch-{bb}"))
            e = close(model.forward(batch), plain.forward(batch),
                      f"neutral {pet.method}/{pet.base} ({bb})")
        label = pet.method + (f"+{pet.base}" if pet.base else "") + (f"-{pet.granularity}" if pet.granularity else "")
        out.append(f"neutral {label} {bb}: max|Δ| {e:.1e}")
    return out


# ---------------------------------------------------------------------------------------------
# Golden writing
# ---------------------------------------------------------------------------------------------

_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Byte-reproducible safetensors writer: header keys sorted, data in sorted-name order,
    header padded with spaces to a multiple of 8 (the library's writer orders the metadata
    map randomly, so its files differ from run to run)."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for raw in chunks:
            f.write(raw)
    back = load_file(str(path))                                   # round-trip check
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)


def spec_json(case: Case) -> dict:
    d = {"backbone": "config.json", "pet": case.pet.to_json()}
    if case.images is not None:
        d["visual"] = VisualSpec(images=case.images).to_json()
    d["batch"] = {"size": B, "text_length": L, "target_length": T}
    d["loss"] = case.loss
    d["dropout"] = 0.0
    return d


def make_case(case: Case, out_dir: Path) -> tuple[int, int, int]:
    kind, config = BACKBONES[case.backbone]
    model = build_case_model(case)
    batch = make_batch(kind, case.images, case.loss, seed_of(case.name + ":batch"))
    params = model.named_params()
    trainable = model.trainable_names()
    if not trainable:
        raise AssertionError(f"{case.name}: empty trainable set")
    for p in params.values():
        p.requires_grad_(False)
    for n in trainable:
        params[n].requires_grad_(True)
    logits, loss = model.loss(batch, case.loss)
    grads = torch.autograd.grad(loss, [params[n] for n in trainable])

    tensors: dict[str, torch.Tensor] = {}
    for n, p in params.items():
        tensors[f"param:{n}"] = p.detach().to(torch.float32).contiguous()
    for n, b in model.named_buffers_contract().items():
        tensors[f"param:{n}"] = b.detach().to(torch.float32).contiguous()
    for n, v in batch.items():
        tensors[f"input:{n}"] = v.contiguous()
    tensors["expect:logits"] = logits.detach().contiguous()
    tensors["expect:loss"] = loss.detach().reshape(()).contiguous()
    for n, g in zip(trainable, grads):
        if not torch.isfinite(g).all():
            raise AssertionError(f"{case.name}: non-finite gradient for {n}")
        tensors[f"expect:grad.{n}"] = g.contiguous()

    cdir = out_dir / case.name
    if cdir.exists():
        shutil.rmtree(cdir)
    cdir.mkdir(parents=True)
    (cdir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (cdir / "spec.json").write_text(json.dumps(spec_json(case), indent=2) + "\n")
    metadata = {"trainable": json.dumps(trainable), "case": case.name, "loss": case.loss,
                "generator": "tools/reference/make_goldens.py"}
    save_safetensors(tensors, cdir / "golden.safetensors", metadata)
    size = sum(f.stat().st_size for f in cdir.iterdir())
    n_train = sum(params[n].numel() for n in trainable)
    n_total = sum(p.numel() for p in params.values())
    print(f"  {case.name:28s} loss {loss.item():.6f}  trainable {len(trainable):3d} tensors "
          f"({n_train}/{n_total} elements)  {size / 1024:.0f} KiB")
    return size, n_train, n_total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    ap.add_argument("--skip-checks", action="store_true", help="skip the HF/PEFT/neutrality assertions")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)

    if not args.skip_checks:
        print("assertions:")
        for line in check_hf_text_only() + check_peft_lora() + check_neutral_pet():
            print("  ok  " + line)

    cases = CASES if not args.only else [c for c in CASES if c.name in set(args.only)]
    if args.only and len(cases) != len(set(args.only)):
        known = {c.name for c in CASES}
        raise SystemExit(f"unknown case(s): {sorted(set(args.only) - known)}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"goldens → {args.out}")
    total = 0
    for case in cases:
        size, _, _ = make_case(case, args.out)
        total += size
    print(f"total {total / 1024:.0f} KiB in {len(cases)} cases")


if __name__ == "__main__":
    main()
