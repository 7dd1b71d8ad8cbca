#!/usr/bin/env python3
"""Make the program-level training golden: 20 AdamW steps of a tiny VL-BART with VL-PET-large.

    /work/venv/bin/python tools/reference/make_training_golden.py [--out DIR]

The model is the frontend golden `bart-vlpet-large-score` (tools/reference/make_goldens.py: tiny
random BART, VL-PET large, one image, score-weighted loss, dropout 0); its weights are the ones in
Tests/GranuleFrontendTests/Goldens/bart-vlpet-large-score/golden.safetensors (checked equal). The
script writes DIR (default Tests/GranuleCodegenTests/Goldens/train-bart-vlpet-large-score/):

  spec.json, config.json   the case's Granule spec (batch 2 × text 6 × target 4, dropout 0.0) and
                           its HF config, as in the frontend golden
  weights.safetensors      every parameter (frozen and trainable, and `final_logits_bias`) by its
                           Granule name: `MODEL train --weights`
  data.safetensors         a dataset of N = 6 examples in the format `MODEL train --data` reads:
                           every batch input of the train step (`input_ids`, `attention_mask`,
                           `vis_feats`, `vis_boxes`, `labels`, `scores`) with a leading axis of N
  trajectory.safetensors   per step k = 0..19: `loss` (f32, before the update, as the log's
                           "loss"), `grad_norm` (f32, before clipping), `lr` (f64, the rate the
                           step used), `clipped` (i64, 1 if the norm exceeded 5.0), `order`
                           (i64 [20, 2]: the example indices of the step's batch); `final.<name>`
                           for every trainable parameter after 20 steps; the recipe and the
                           trainable names in `__metadata__`

Data order: N = 6 and B = 2 make 3 steps per epoch, so the 20 steps run 7 epochs, each in a new
order. The order is Granule's (`Runtime/main/train.c`, `Runtime/README.md` "Order"), reimplemented
below: SplitMix64, `train_hash`, Fisher–Yates with rejection sampling, one task, seed SEED.

Recipe (the VL-PET one, spec 6.1, at a larger learning rate so that weights move): per step
loss.backward(); torch.nn.utils.clip_grad_norm_(trainable, 5.0); HF AdamW step; scheduler step,
with `get_linear_schedule_with_warmup(int(0.1·20) = 2, 20)` and peak lr 1e-2. HF AdamW is
`HFAdamW` of make_adamw_golden.py (transformers.optimization.AdamW with correct_bias=True, removed
in transformers 5): betas (0.9, 0.999), eps 1e-6, weight decay 0.01 except for names containing
`bias` or `LayerNorm.weight` (Granule's `AdamW.noDecayPatterns`; BART's norms are `layer_norm` /
`layernorm_embedding`, so they are decayed, as in the official runs).

Clipping: the per-example VQA scores are mostly ≤ 1 but two examples have scores 12 and 20 (the
score multiplies that example's loss), so most steps whose batch holds one of them have gradient
norms above 5 and are clipped (9 of 20), the others are not (asserted: at least 3 of each, and no norm
within 5% of 5.0, so float32 differences cannot flip a decision).

Before writing, the script prints how far other trajectories end up (worst per-step loss relative
error and worst final-weight relative error max|Δ| / max|w| per tensor), to show what the test's
tolerances (loss 1e-4, weights 1e-3) can tell apart: the same recipe in float64 (the float32 noise
floor), torch.optim.AdamW, no clipping, the data in file order, no weight decay.

CI never runs this script; the golden is committed. Deterministic: fixed seeds, one thread, the
byte-reproducible safetensors writer of make_goldens.py.
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
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import get_linear_schedule_with_warmup  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_goldens as mg  # noqa: E402
from make_adamw_golden import HFAdamW  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CASE = "bart-vlpet-large-score"
DEFAULT_OUT = REPO / "Tests" / "GranuleCodegenTests" / "Goldens" / f"train-{CASE}"
FRONTEND_GOLDEN = REPO / "Tests" / "GranuleFrontendTests" / "Goldens" / CASE

STEPS = 20
WARMUP_RATIO = 0.1
PEAK_LR = 1e-2
SEED = 7
MAX_NORM = 5.0
BETAS = (0.9, 0.999)
EPS = 1e-6
WEIGHT_DECAY = 0.01
NO_DECAY = ["bias", "LayerNorm.weight"]
N = 6
SCORES = [0.8, 0.5, 12.0, 1.0, 0.3, 20.0]   # per example; 12 and 20 make most of their steps clip

mg._DTYPES.setdefault(torch.float64, "F64")   # the golden writer, extended to f64 (lr)


# ---------------------------------------------------------------------------------------------
# Granule's data order (Runtime/main/train.c)
# ---------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def splitmix64(state: list[int]) -> int:
    state[0] = (state[0] + 0x9E3779B97F4A7C15) & MASK64
    z = state[0]
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def train_hash(seed: int, stream: int, index: int) -> int:
    s = [seed & MASK64]
    s[0] = splitmix64(s) ^ stream
    s[0] = splitmix64(s) ^ index
    return splitmix64(s)


def uniform(state: list[int], bound: int) -> int:
    threshold = ((1 << 64) - bound) % bound          # (0 - bound) % bound in uint64
    while True:
        r = splitmix64(state)
        if r >= threshold:
            return r % bound


def shuffle(items: list[int], state: int) -> list[int]:
    items, s = list(items), [state]
    for i in range(len(items) - 1, 0, -1):
        j = uniform(s, i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def step_examples(seed: int, steps: int, n: int, batch: int) -> list[list[int]]:
    """The example indices of each global step's batch, one task (the task list is all zeros)."""
    per_epoch = n // batch
    out = []
    for k in range(steps):
        epoch, position = divmod(k, per_epoch)
        order = shuffle(list(range(n)), train_hash(train_hash(seed, 1, epoch), 0, 0))
        out.append(order[position * batch:(position + 1) * batch])
    return out


def check_generator() -> None:
    """SplitMix64's published first outputs for seed 0 (also Runtime/tests and SeededGenerator)."""
    s = [0]
    got = [splitmix64(s) for _ in range(3)]
    assert got == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F], [hex(x) for x in got]


# ---------------------------------------------------------------------------------------------
# Model, data, training
# ---------------------------------------------------------------------------------------------

def build() -> tuple[mg.Case, mg.VLModel]:
    case = next(c for c in mg.CASES if c.name == CASE)
    model = mg.build_case_model(case)
    golden = load_file(str(FRONTEND_GOLDEN / "golden.safetensors"))
    mine = dict(model.named_params())
    mine.update(model.named_buffers_contract())
    for name, value in mine.items():
        assert torch.equal(value.detach(), golden[f"param:{name}"]), f"{name} differs from the frontend golden"
    assert sorted(k for k in golden if k.startswith("param:")) == sorted(f"param:{n}" for n in mine)
    return case, model


def make_data(seed: int) -> dict[str, torch.Tensor]:
    """N BART examples `<s> w… </s> <pad>…` (1–4 words), labels of 1–3 words + </s> then −100,
    one 3×3×12 image grid, boxes (x1, x2, y1, y2), and SCORES."""
    g = torch.Generator().manual_seed(seed)
    L, T = mg.L, mg.T
    bos, eos, pad = 0, 2, 1
    ids, mask, labels = [], [], []
    for i in range(N):
        n_words = 1 + i % 4
        words = torch.randint(3, 56, (n_words,), generator=g).tolist()
        row = [bos, *words, eos]
        ids.append(row + [pad] * (L - len(row)))
        mask.append([1] * len(row) + [0] * (L - len(row)))
        n_labels = 1 + (i * 2) % 3
        target = torch.randint(3, 56, (n_labels,), generator=g).tolist() + [eos]
        labels.append(target + [-100] * (T - len(target)))
    n = 4                                                     # pooled tokens of one image
    x1 = 0.5 * torch.rand(N, n, generator=g)
    x2 = x1 + 0.1 + 0.4 * torch.rand(N, n, generator=g)
    y1 = 0.5 * torch.rand(N, n, generator=g)
    y2 = y1 + 0.1 + 0.4 * torch.rand(N, n, generator=g)
    return {
        "input_ids": torch.tensor(ids, dtype=torch.int64),
        "attention_mask": torch.tensor(mask, dtype=torch.int64),
        "vis_feats": torch.randn(N, 1, 3, 3, 12, generator=g),
        "vis_boxes": torch.stack([x1, x2, y1, y2], dim=-1),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(SCORES, dtype=torch.float32),
    }


def groups(named: dict[str, torch.Tensor], weight_decay: float):
    decay = [p for n, p in named.items() if not any(nd in n for nd in NO_DECAY)]
    no_decay = [p for n, p in named.items() if any(nd in n for nd in NO_DECAY)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(case: mg.Case, initial: dict[str, torch.Tensor], data: dict[str, torch.Tensor],
          order: list[list[int]], *, optimizer: str = "hf", max_norm: float = MAX_NORM,
          dtype: torch.dtype = torch.float32, weight_decay: float = WEIGHT_DECAY):
    model = mg.build_case_model(case).to(dtype)
    params = model.named_params()
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(initial[name])
        for name, b in model.named_buffers_contract().items():
            b.copy_(initial[name])
    names = model.trainable_names()
    for p in params.values():
        p.requires_grad_(False)
    trainable = {n: params[n] for n in names}
    for p in trainable.values():
        p.requires_grad_(True)
    kind = HFAdamW if optimizer == "hf" else torch.optim.AdamW
    opt = kind(groups(trainable, weight_decay), lr=PEAK_LR, betas=BETAS, eps=EPS, weight_decay=weight_decay)
    warmup = int(WARMUP_RATIO * STEPS)
    scheduler = get_linear_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=STEPS)
    losses, norms, lrs = [], [], []
    for examples in order:
        index = torch.tensor(examples)
        batch = {k: v[index].to(dtype) if v.is_floating_point() else v[index] for k, v in data.items()}
        opt.zero_grad(set_to_none=True)
        _, loss = model.loss(batch, case.loss)
        loss.backward()
        missing = [n for n, p in trainable.items() if p.grad is None]
        assert not missing, f"trainable parameters the loss does not reach: {missing}"
        norm = torch.nn.utils.clip_grad_norm_(list(trainable.values()), max_norm)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
        losses.append(loss.item())
        norms.append(norm.item())
    final = {n: p.detach().to(torch.float32).clone() for n, p in trainable.items()}
    return losses, norms, lrs, final, names


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a − b| / max|b| (the test's definition)."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def gap(reference, other) -> tuple[float, float]:
    losses = max(abs(a - b) / abs(b) for a, b in zip(other[0], reference[0]))
    weights = max(relative(other[3][n], reference[3][n]) for n in reference[3])
    return losses, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    check_generator()

    case, model = build()
    initial = {n: p.detach().clone() for n, p in model.named_params().items()}
    initial.update({n: b.detach().clone() for n, b in model.named_buffers_contract().items()})
    data = make_data(zlib.crc32(f"train-{CASE}:data".encode()))
    order = step_examples(SEED, STEPS, N, mg.B)

    reference = train(case, initial, data, order)
    losses, norms, lrs, final, names = reference
    clipped = [x > MAX_NORM for x in norms]
    assert sum(clipped) >= 3 and len(clipped) - sum(clipped) >= 3, f"clipped steps: {clipped}"
    closest = min(abs(x - MAX_NORM) / MAX_NORM for x in norms)
    assert closest > 0.05, f"a gradient norm is within {closest:.3f} of the clip norm"
    moved = {n: relative(final[n], initial[n]) for n in names}
    assert min(moved.values()) > 1e-2, f"a weight barely moved: {min(moved, key=moved.get)}"
    assert all(math.isfinite(x) for x in losses)

    for k in range(STEPS):
        print(f"step {k:2d}  examples {order[k]}  lr {lrs[k]:.6f}  loss {losses[k]:.6f}  "
              f"grad_norm {norms[k]:8.4f}{'  clipped' if clipped[k] else ''}")
    print(f"{sum(clipped)} of {STEPS} steps clipped; every trainable tensor moved by "
          f"{min(moved.values()):.3f}–{max(moved.values()):.3f} (relative to its max |w|)")
    print("other trajectories (worst per-step loss relative error, worst final-weight relative error):")
    others = {
        "float64": dict(dtype=torch.float64),
        "torch.optim.AdamW": dict(optimizer="torch"),
        "no clipping": dict(max_norm=math.inf),
        "no weight decay": dict(weight_decay=0.0),
    }
    for label, options in others.items():
        e_loss, e_weight = gap(reference, train(case, initial, data, order, **options))
        print(f"  {label:20s} loss {e_loss:.2e}  weights {e_weight:.2e}")
    per_epoch = N // mg.B
    file_order = [[(k % per_epoch) * mg.B + j for j in range(mg.B)] for k in range(STEPS)]
    e_loss, e_weight = gap(reference, train(case, initial, data, file_order))
    print(f"  {'data in file order':20s} loss {e_loss:.2e}  weights {e_weight:.2e}")

    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(FRONTEND_GOLDEN / "config.json", out / "config.json")
    spec = json.loads((FRONTEND_GOLDEN / "spec.json").read_text())
    assert spec["dropout"] == 0.0 and spec["loss"] == case.loss and spec["batch"]["size"] == mg.B
    (out / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    generator = {"generator": "tools/reference/make_training_golden.py", "case": CASE}
    mg.save_safetensors({n: v.contiguous() for n, v in initial.items()}, out / "weights.safetensors", generator)
    mg.save_safetensors(data, out / "data.safetensors", generator)
    trajectory = {
        "loss": torch.tensor(losses, dtype=torch.float32),
        "grad_norm": torch.tensor(norms, dtype=torch.float32),
        "lr": torch.tensor(lrs, dtype=torch.float64),
        "clipped": torch.tensor(clipped, dtype=torch.int64),
        "order": torch.tensor(order, dtype=torch.int64),
    }
    trajectory.update({"final." + n: p.contiguous() for n, p in final.items()})
    recipe = {
        "steps": STEPS, "warmup_ratio": WARMUP_RATIO, "warmup_steps": int(WARMUP_RATIO * STEPS),
        "peak_lr": PEAK_LR, "seed": SEED, "max_grad_norm": MAX_NORM, "betas": list(BETAS), "eps": EPS,
        "weight_decay": WEIGHT_DECAY, "no_decay": NO_DECAY, "examples": N, "batch_size": mg.B,
        "optimizer": "transformers.optimization.AdamW(correct_bias=True), re-implemented (removed in transformers 5)",
        "schedule": "transformers.get_linear_schedule_with_warmup",
        "order": "Granule's train order (Runtime/main/train.c) for --seed",
        "command": (f"MODEL train --weights weights.safetensors --data data.safetensors --steps {STEPS} "
                    f"--lr {PEAK_LR} --warmup-ratio {WARMUP_RATIO} --seed {SEED}"),
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__}",
    }
    metadata = dict(generator, recipe=json.dumps(recipe, sort_keys=True), trainable=json.dumps(sorted(names)))
    mg.save_safetensors(trajectory, out / "trajectory.safetensors", metadata)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({size / 1024:.0f} KiB): {len(names)} trainable tensors, "
          f"{sum(final[n].numel() for n in names)} elements")


if __name__ == "__main__":
    main()
