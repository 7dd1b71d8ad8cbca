#!/usr/bin/env python3
"""Count trainable / total parameters of the real-size models (spec section 5.2) with the PET
modules and trainable-set rules of this reference, and assert the exact numbers of that table.

    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/reference/check_param_counts.py

Models are built on the `meta` device: shapes only, nothing is allocated. Counting is over
`named_parameters()` of the final model object (tied embeddings once, buffers such as
`final_logits_bias` excluded), as the official `print_trainable_params_percentage` does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_goldens import BART_CONFIG, T5_CONFIG  # noqa: E402
from pet import PETConfig  # noqa: E402
from vl_models import VisualSpec, build_model  # noqa: E402

BART_BASE = dict(BART_CONFIG, d_model=768, encoder_layers=6, decoder_layers=6,
                 encoder_attention_heads=12, decoder_attention_heads=12,
                 encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                 vocab_size=50265 + 200, max_position_embeddings=1024)
T5_BASE = dict(T5_CONFIG, d_model=768, d_kv=64, num_heads=12, d_ff=3072, num_layers=12,
               num_decoder_layers=12, vocab_size=32200, relative_attention_num_buckets=32,
               relative_attention_max_distance=128)
VISUAL = VisualSpec(feature_dim=2048, grid=(7, 7), pool_window=(2, 2), images=1)


def vlpet(g: str, r: int, rg: int, s: float = 1.0, base: str | None = None) -> PETConfig:
    return PETConfig("vl-pet", granularity=g, r=r, heads=4, gate_r=rg if g == "large" else 0,
                     scale=s, value_r=96, base=base, phm_n=2)


# (label, backbone, config, pet, expected trainable, expected total, paper %)
ROWS = [
    ("BART VL-PET-small", "bart", BART_BASE, vlpet("small", 96, 96), 4_291_020, 143_845_068, 2.98),
    ("BART VL-PET-middleX", "bart", BART_BASE, vlpet("middlex", 96, 96), 4_281_804, 143_835_852, 2.98),
    ("BART VL-PET-middleY", "bart", BART_BASE, vlpet("middley", 96, 96), 4_281_792, 143_835_840, 2.98),
    ("BART VL-PET-large", "bart", BART_BASE, vlpet("large", 96, 96), 6_052_416, 145_606_464, 4.16),
    ("T5 VL-PET-small", "t5", T5_BASE, vlpet("small", 192, 192, 0.3), 10_518_168, 233_457_816, 4.51),
    ("T5 VL-PET-middleX", "t5", T5_BASE, vlpet("middlex", 192, 192, 0.3), 10_499_736, 233_439_384, 4.50),
    ("T5 VL-PET-middleY", "t5", T5_BASE, vlpet("middley", 192, 192, 0.3), 10_499_712, 233_439_360, 4.50),
    ("T5 VL-PET-large", "t5", T5_BASE, vlpet("large", 192, 192, 0.3), 17_582_208, 240_521_856, 7.31),
    ("BART VL-Adapter", "bart", BART_BASE, PETConfig("vl-adapter", r=96), 6_081_600, 145_606_464, 4.18),
    ("BART BitFit", "bart", BART_BASE, PETConfig("bitfit"), 1_708_800, 141_156_864, 1.21),
    ("BART LoRA", "bart", BART_BASE, PETConfig("lora", r=128, alpha=32.0), 8_786_688, 148_234_752, 5.93),
    ("BART prompt tuning", "bart", BART_BASE, PETConfig("prompt-tuning", length=40, mid_dim=800),
     2_843_936, 142_417_952, 2.00),
    ("BART Compacter", "bart", BART_BASE, PETConfig("compacter", r=96, phm_n=2), 3_870_240, 143_395_104, 2.70),
    ("BART Compacter + G_small + LW", "bart", BART_BASE, vlpet("small", 96, 96, base="compacter"),
     2_964_204, None, 2.08),
    ("BART Compacter + G_middleX + LW", "bart", BART_BASE, vlpet("middlex", 96, 96, base="compacter"),
     2_954_988, None, 2.07),
    ("BART Compacter + G_middleY + LW", "bart", BART_BASE, vlpet("middley", 96, 96, base="compacter"),
     2_954_976, None, 2.07),
    ("BART Compacter + G_large + LW", "bart", BART_BASE, vlpet("large", 96, 96, base="compacter"),
     4_725_600, None, 3.28),
    ("BART full fine-tuning", "bart", BART_BASE, PETConfig("full"), None, 141_156_864, 100.0),
    # Not in table 5.2 (printed only): T5 baselines of this reference.
    ("T5 VL-Adapter (all norms, see README)", "t5", T5_BASE, PETConfig("vl-adapter", r=96), None, None, None),
    ("T5 LoRA r=128", "t5", T5_BASE, PETConfig("lora", r=128, alpha=32.0), None, None, None),
]

BART_BASE_PARAMS = 139_420_416 + 200 * 768
T5_BASE_PARAMS = 222_903_552 + 72 * 768


def count(kind: str, config: dict, pet: PETConfig, visual: VisualSpec | None) -> tuple[int, int]:
    with torch.device("meta"):
        model = build_model(kind, config, pet, visual)
    params = model.named_params()
    trainable = model.trainable_names()
    return sum(params[n].numel() for n in trainable), sum(p.numel() for p in params.values())


def main() -> None:
    failures = []
    # Backbones alone (resized vocabulary, no visual embedding, nothing added).
    for kind, config, expected in (("bart", BART_BASE, BART_BASE_PARAMS), ("t5", T5_BASE, T5_BASE_PARAMS)):
        _, total = count(kind, config, PETConfig("none"), None)
        status = "ok " if total == expected else "FAIL"
        if total != expected:
            failures.append(f"{kind} backbone: {total} != {expected}")
        print(f"{status} {kind}-base backbone (resized vocab): {total:,} parameters")
    print(f"{'':4s}{'model':40s} {'trainable':>12s} {'total':>13s} {'%':>7s}  paper")
    for label, kind, config, pet, exp_tr, exp_tot, paper in ROWS:
        tr, tot = count(kind, config, pet, VISUAL)
        pct = 100.0 * tr / tot
        ok = True
        if exp_tr is not None and tr != exp_tr:
            ok = False
            failures.append(f"{label}: trainable {tr:,} != {exp_tr:,}")
        if exp_tot is not None and tot != exp_tot:
            ok = False
            failures.append(f"{label}: total {tot:,} != {exp_tot:,}")
        if paper is not None and round(pct, 2) != paper:
            ok = False
            failures.append(f"{label}: {pct:.3f}% does not round to the paper's {paper}")
        checked = exp_tr is not None or exp_tot is not None or paper is not None
        status = ("ok  " if ok else "FAIL") if checked else "    "
        print(f"{status}{label:40s} {tr:12,d} {tot:13,d} {pct:7.3f}  {paper if paper is not None else '-'}")
    if failures:
        raise SystemExit("parameter-count mismatches:\n  " + "\n  ".join(failures))
    print("all parameter counts match spec table 5.2")


if __name__ == "__main__":
    main()
