#!/usr/bin/env python3
"""Make the golden training trajectory the `adamw` pass is checked against.

    /work/venv/bin/python tools/reference/make_adamw_golden.py [--out DIR]

The model is Tests/GranulePassesTests/Goldens/adamw/model.tir, mirrored here by hand in PyTorch
(functional form, same parameter names, float32, dropout none). The script writes into DIR
(default: that directory):

  inputs.safetensors      the batch (`features`, `labels`) and every parameter's initial value
  trajectory.safetensors  per step k = 0..19: `loss` (before the update), `grad_norm` (before
                          clipping), `lr` (the learning rate the step used), `clipped` (1 if the norm
                          exceeded the clip norm); `final.<name>` for every trainable parameter after
                          20 steps; the recipe in `__metadata__`

The recipe is the VL-PET one (spec section 6.1) at a larger learning rate so that weights move:
loss.backward(); torch.nn.utils.clip_grad_norm_(trainable, 5.0); AdamW.step(); scheduler.step(),
with `get_linear_schedule_with_warmup(warmup=2, total=20)` from transformers and peak lr 1e-2.

The optimizer is Hugging Face's `transformers.optimization.AdamW` (correct_bias=True). It was
removed in transformers 5 (this venv has 5.24.0), so `HFAdamW` below re-implements its documented
algorithm: bias-corrected step size lr·sqrt(1−β2^t)/(1−β1^t), eps added to sqrt(v) (not to the
bias-corrected sqrt(v̂)), then decoupled weight decay p ← p − lr·wd·p applied *after* the Adam
update, with two groups: names containing `bias` or `LayerNorm.weight` get weight decay 0. It
differs from `torch.optim.AdamW` (which decays before the update and puts eps after the bias
correction); the script prints how far the torch.optim trajectory (and an unclipped one) ends up,
to show what the test's tolerance can tell apart.

CI never runs this script; the goldens are committed. Deterministic: fixed seed, one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import get_linear_schedule_with_warmup  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "Tests" / "GranulePassesTests" / "Goldens" / "adamw"

STEPS = 20
WARMUP = 2
PEAK_LR = 1e-2
MAX_NORM = 5.0
BETAS = (0.9, 0.999)
EPS = 1e-6
WEIGHT_DECAY = 0.01
NO_DECAY = ["bias", "LayerNorm.weight"]
LOSS_SCALE = 8.0

# name -> (shape, trainable), in the order of model.tir's parameters.
PARAMETERS = {
    "proj.weight": ((8, 6), False),
    "proj.bias": ((8,), False),
    "x.LayerNorm.weight": ((8,), True),
    "x.LayerNorm.bias": ((8,), True),
    "fc1.weight": ((16, 8), True),
    "fc1.bias": ((16,), True),
    "fc2.weight": ((8, 16), True),
    "fc2.bias": ((8,), False),
    "gate": ((), True),
    "out.layer_norm.weight": ((8,), True),
    "out.layer_norm.bias": ((8,), True),
    "head.weight": ((5, 8), True),
    "head.bias": ((5,), True),
    "mix.weight": ((8, 8), True),
    "mix.bias": ((8,), True),
}


def initial_values(generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=generator, dtype=torch.float32) * std + mean

    values = {}
    for name, (shape, _) in PARAMETERS.items():
        if name.endswith("norm.weight") or name.endswith("LayerNorm.weight"):
            values[name] = normal(shape, 0.1, 1.0)
        elif name == "gate":
            values[name] = torch.tensor(0.3, dtype=torch.float32)
        elif name.endswith("bias"):
            values[name] = normal(shape, 0.1)
        else:
            values[name] = normal(shape, 1.0 / math.sqrt(shape[1]))
    features = normal((8, 6), 1.0)
    labels = torch.randint(0, 5, (8,), generator=generator, dtype=torch.int64)
    return values, features, labels


def loss_fn(p: dict[str, torch.Tensor], features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """model.tir's @loss, op for op."""
    h = F.layer_norm(features @ p["proj.weight"].T + p["proj.bias"], (8,), p["x.LayerNorm.weight"], p["x.LayerNorm.bias"], 1e-5)
    a = F.gelu(h @ p["fc1.weight"].T + p["fc1.bias"], approximate="tanh")
    b = torch.tanh(a @ p["fc2.weight"].T + p["fc2.bias"])
    r = h + b * torch.sigmoid(p["gate"])
    o = F.layer_norm(r, (8,), p["out.layer_norm.weight"], p["out.layer_norm.bias"], 1e-5)
    c = torch.relu(o @ p["mix.weight"].T + p["mix.bias"])
    logits = c @ p["head.weight"].T + p["head.bias"]
    return F.cross_entropy(logits, labels, reduction="mean") * LOSS_SCALE


class HFAdamW(torch.optim.Optimizer):
    """transformers.optimization.AdamW (4.x) with correct_bias=True, written from its documentation."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                denominator = v.sqrt().add_(group["eps"])
                t = state["step"]
                step_size = group["lr"] * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                p.addcdiv_(m, denominator, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])


def groups(named: dict[str, torch.Tensor]):
    decay = [p for n, p in named.items() if not any(nd in n for nd in NO_DECAY)]
    no_decay = [p for n, p in named.items() if any(nd in n for nd in NO_DECAY)]
    return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]


def train(values, features, labels, optimizer_kind: str, max_norm: float = MAX_NORM):
    params = {n: v.clone().requires_grad_(PARAMETERS[n][1]) for n, v in values.items()}
    trainable = {n: p for n, p in params.items() if PARAMETERS[n][1]}
    if optimizer_kind == "hf":
        optimizer = HFAdamW(groups(trainable), lr=PEAK_LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    else:
        optimizer = torch.optim.AdamW(groups(trainable), lr=PEAK_LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=WARMUP, num_training_steps=STEPS)
    losses, norms, lrs = [], [], []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(params, features, labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(trainable.values()), max_norm)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        norms.append(norm.item())
    return losses, norms, lrs, {n: p.detach().clone() for n, p in trainable.items()}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(20260)
    values, features, labels = initial_values(generator)

    losses, norms, lrs, final = train(values, features, labels, "hf")
    _, _, _, final_torch = train(values, features, labels, "torch")
    _, _, _, final_unclipped = train(values, features, labels, "hf", max_norm=math.inf)
    clipped = [n > MAX_NORM for n in norms]
    assert sum(clipped) >= 1, "the clip never triggers: raise LOSS_SCALE"
    assert not all(clipped), "every step clips: lower LOSS_SCALE"
    moved = max(relative(final[n], values[n]) for n in final)
    assert moved > 0.05, f"weights barely moved ({moved})"

    args.out.mkdir(parents=True, exist_ok=True)
    inputs = {"features": features, "labels": labels}
    inputs.update({n: v.contiguous() for n, v in values.items()})
    save_file(inputs, str(args.out / "inputs.safetensors"))
    os.chmod(args.out / "inputs.safetensors", 0o644)
    trajectory = {
        "loss": torch.tensor(losses, dtype=torch.float64),
        "grad_norm": torch.tensor(norms, dtype=torch.float64),
        "lr": torch.tensor(lrs, dtype=torch.float64),
        "clipped": torch.tensor(clipped, dtype=torch.int64),
    }
    trajectory.update({"final." + n: p.contiguous() for n, p in final.items()})
    metadata = {
        "recipe": json.dumps({
            "steps": STEPS, "warmup": WARMUP, "peak_lr": PEAK_LR, "max_grad_norm": MAX_NORM, "betas": list(BETAS),
            "eps": EPS, "weight_decay": WEIGHT_DECAY, "no_decay": NO_DECAY, "loss_scale": LOSS_SCALE,
            "optimizer": "transformers.optimization.AdamW(correct_bias=True), re-implemented (removed in transformers 5)",
            "schedule": "transformers.get_linear_schedule_with_warmup",
            "versions": f"torch {torch.__version__}, transformers {transformers.__version__}",
        }, sort_keys=True),
    }  # one key: safetensors orders several metadata keys differently from run to run
    save_file(trajectory, str(args.out / "trajectory.safetensors"), metadata=metadata)
    os.chmod(args.out / "trajectory.safetensors", 0o644)

    for k in range(STEPS):
        print(f"step {k:2d}  lr {lrs[k]:.6f}  loss {losses[k]:.6f}  grad_norm {norms[k]:8.4f}{'  clipped' if clipped[k] else ''}")
    print(f"{sum(clipped)} of {STEPS} steps clipped; weights moved up to {moved:.3f} (relative, max |Δ| / max |w|)")
    gap = max(relative(final_torch[n], final[n]) for n in final)
    print(f"torch.optim.AdamW ends {gap:.2e} away from HF AdamW (relative, worst tensor)")
    gap = max(relative(final_unclipped[n], final[n]) for n in final)
    print(f"without clipping HF AdamW ends {gap:.2e} away (relative, worst tensor)")
    print(f"wrote {args.out}/inputs.safetensors, trajectory.safetensors")


if __name__ == "__main__":
    main()
