#!/usr/bin/env python3
"""PyTorch side of the benchmark: one training step, or one forward pass, of the reference VL-BART /
VL-T5 model (tools/reference/vl_models.py) on the weights and batch Granule uses.

    python bench/torch_step.py --spec SPEC.json --weights W.safetensors --batch B.safetensors \
        [--function grad|train|loss] [--compile] [--steps 10] [--warmup 2] [--threads 2] \
        [--lr 1e-4] [--adamw fused|foreach|for-loop] [--grads-out G.safetensors [--check-only] [--float64]]

Run by bench/run in its own process (so its peak RSS is its own). Prints one JSON line.

* The model is built on the `meta` device and its parameters are replaced by the tensors of
  W.safetensors (names match by design: HF state-dict names + Granule's PET names), so the process
  holds the weights once, as Granule's mapped file does; tied aliases (embed_tokens, lm_head)
  point at the same tensor.
* Trainable set: `VLModel.trainable_names()` (the rules of the official code); frozen parameters
  have requires_grad False, so autograd computes no weight gradient for them (as Granule).
* --function (Granule's function in brackets), each call timed alone:
  - grad [@loss_grad]: gradients set to None (as `optimizer.zero_grad()` does; untimed), then
    timed: forward, loss, `loss.backward()`. No optimizer step.
  - train [@loss_train_step]: the same, then `torch.nn.utils.clip_grad_norm_(trainable, 5.0)` and
    `torch.optim.AdamW.step()` (lr --lr, betas (0.9, 0.999), eps 1e-6, weight decay 0.01 except
    for names containing "bias" or "LayerNorm.weight": the official recipe's hyper-parameters and
    groups; the implementation is chosen by --adamw, default "fused": on this CPU the fastest of the
    three; clipping + step for BART-base VL-PET's 6M trainable elements, measured under load:
    fused 15-110 ms, the for-loop one PyTorch uses on CPU when none is asked for 90-320, "foreach"
    130-450). Its
    update differs from Granule's HF-AdamW in where eps and the decay enter (see
    tools/reference/make_adamw_golden.py), not in cost. The weights change from step to step (in
    Granule's `bench` too: its AdamW updates run in place); the cost does not depend on them.
  - loss [@loss]: under `torch.no_grad()`: forward, logits and loss.
* --compile: the loss function (forward + loss) goes through `torch.compile` (inductor, default
  mode); backward is the compiled graph's (AOTAutograd); clipping and AdamW stay eager. The first
  call compiles: its wall time is reported as compile_s (and it is one of the warm-up calls, so
  --warmup must be >= 1; a second warm-up call is advisable).
* Dropout is off (the reference's layer code has none; the HF modules are in eval mode).
* --grads-out (grad and train): before the warm-up, one untimed forward + backward whose loss and
  gradients (before clipping) are written there, for the equivalence check. --check-only: only
  that, no timing (prints {"loss": ...}); --float64: the model and batch in float64 (the reference
  bench/run compares both float32 systems with when they differ by more than its tolerance).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "reference"))
from pet import PETConfig  # noqa: E402
from vl_models import VisualSpec, build_model  # noqa: E402


def cpu_ms() -> float:
    """CPU time (user + system, all threads) of this process so far, ms."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return (u.ru_utime + u.ru_stime) * 1e3


def rss_mib() -> float:
    """Peak RSS of this process so far, MiB (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def model_from_spec(spec_path: Path):
    """(model, loss mode) for a Granule model spec, built on the meta device."""
    spec = json.loads(spec_path.read_text())
    config = json.loads((spec_path.parent / spec["backbone"]).read_text())
    if "resize_vocab" in spec:
        config["vocab_size"] = spec["resize_vocab"]
    kind = config["model_type"]
    p = dict(spec["pet"])
    method = p.pop("method")
    known = {"granularity", "r", "heads", "gate_r", "scale", "value_r", "base", "phm_n", "alpha", "length", "mid_dim"}
    p.pop("zero_init", None)             # initialisation only: the weights come from the file
    unknown = set(p) - known
    if unknown:
        raise SystemExit(f"torch_step: PET fields not supported by the reference: {sorted(unknown)}")
    pet = PETConfig(method, **p)
    visual = None
    if "visual" in spec:
        v = spec["visual"]
        visual = VisualSpec(feature_dim=v["feature_dim"], grid=tuple(v["grid"]),
                            pool_window=tuple(v["pool_window"]), images=v["images"])
    with torch.device("meta"):
        model = build_model(kind, config, pet, visual)
    return model, spec["loss"]


def load_weights(model, path: Path) -> None:
    """Replace every (meta) parameter and contract buffer by the file's tensor of the same name."""
    params = model.named_params()                     # first name of every parameter
    buffers = model.named_buffers_contract()
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        missing = (set(params) | set(buffers)) - keys
        extra = keys - set(params) - set(buffers)
        if missing or extra:
            raise SystemExit(f"torch_step: weight names differ: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}")
        new = {}
        for name, p in params.items():
            t = f.get_tensor(name)
            if t.dtype != torch.float32 or tuple(t.shape) != tuple(p.shape):
                raise SystemExit(f"torch_step: {name}: file has {t.dtype} {list(t.shape)}, model {list(p.shape)}")
            new[id(p)] = nn.Parameter(t, requires_grad=False)
        # Every alias (tied embeddings, lm_head) of a parameter gets the same new Parameter.
        for mname, module in model.hf.named_modules(remove_duplicate=False):
            for pname, p in list(module.named_parameters(recurse=False)):
                setattr(module, pname, new[id(p)])
        for name, b in buffers.items():
            mname, bname = name.rsplit(".", 1) if "." in name else ("", name)
            owner = model.hf.get_submodule(mname) if mname else model.hf
            owner.register_buffer(bname, f.get_tensor(name).reshape(b.shape).contiguous())
    left = [n for n, p in model.hf.named_parameters(remove_duplicate=False) if p.is_meta]
    left += [n for n, b in model.hf.named_buffers() if b.is_meta]
    if left:
        raise SystemExit(f"torch_step: still on the meta device after loading: {left[:5]}")


def load_batch(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


NO_DECAY = ("bias", "LayerNorm.weight")        # the official code's two parameter groups


def median_of(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def make_optimizer(trainable: list[str], params: dict, lr: float, implementation: str) -> torch.optim.Optimizer:
    decay = [params[n] for n in trainable if not any(k in n for k in NO_DECAY)]
    no_decay = [params[n] for n in trainable if any(k in n for k in NO_DECAY)]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = {"foreach": True} if implementation == "foreach" else {"fused": True} if implementation == "fused" else {"foreach": False}
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6, **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--batch", type=Path, required=True)
    ap.add_argument("--function", choices=("grad", "train", "loss"), default="grad")
    ap.add_argument("--compile", action="store_true", help="torch.compile the loss function (inductor)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4, help="train: AdamW learning rate (default 1e-4)")
    ap.add_argument("--adamw", choices=("foreach", "fused", "for-loop"), default="fused",
                    help="train: torch.optim.AdamW implementation (default fused)")
    ap.add_argument("--grads-out", type=Path, help="write the loss and every trainable gradient here")
    ap.add_argument("--check-only", action="store_true", help="only write --grads-out, no timing")
    ap.add_argument("--float64", action="store_true", help="run the model in float64 (with --check-only)")
    args = ap.parse_args()
    if (args.check_only or args.float64) and args.grads_out is None:
        raise SystemExit("torch_step: --check-only and --float64 need --grads-out")
    if args.compile and args.warmup < 1:
        raise SystemExit("torch_step: --compile needs --warmup >= 1 (the first call compiles)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model, loss_mode = model_from_spec(args.spec)
    load_weights(model, args.weights)
    model.hf.eval()
    if args.float64:
        model.hf.double()
    params = model.named_params()
    trainable = model.trainable_names()
    backward = args.function in ("grad", "train")
    if backward:
        for n in trainable:
            params[n].requires_grad_(True)
    train_params = [params[n] for n in trainable]
    batch = load_batch(args.batch)
    if args.float64:
        batch = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    optimizer = make_optimizer(trainable, params, args.lr, args.adamw) if args.function == "train" else None

    def loss_of(b):
        return model.loss(b, loss_mode)[1]

    loss_fn = torch.compile(loss_of) if args.compile else loss_of
    setup_s = time.perf_counter() - t0
    rss_setup = rss_mib()

    if args.grads_out is not None:
        if not backward:
            raise SystemExit("torch_step: --grads-out needs --function grad or train")
        loss = loss_of(batch)                          # eager, untimed
        loss.backward()
        out = {"loss": loss.detach().reshape(())}
        for n, p in zip(trainable, train_params):
            out[f"grad.{n}"] = p.grad.detach().contiguous()
            p.grad = None
        save_file(out, str(args.grads_out))
        if args.check_only:
            print(json.dumps({"loss": out["loss"].item(), "float64": args.float64}))
            return

    def step():
        if not backward:
            with torch.no_grad():
                return loss_fn(batch)
        loss = loss_fn(batch)
        loss.backward()
        if optimizer is not None:
            torch.nn.utils.clip_grad_norm_(train_params, 5.0)
            optimizer.step()
        return loss

    times, cpu, starts = [], [], []
    compile_s = None
    first_loss = None
    for i in range(args.warmup + args.steps):
        for p in train_params:
            p.grad = None
        cpu_start = cpu_ms()
        monotonic_start = time.monotonic() * 1e3        # CLOCK_MONOTONIC, as `MODEL bench` reports
        start = time.perf_counter()
        loss = step()
        elapsed = (time.perf_counter() - start) * 1e3
        cpu_elapsed = cpu_ms() - cpu_start
        if i == 0:
            first_loss = loss.item()
            if args.compile:
                compile_s = elapsed / 1e3
        if i >= args.warmup:
            times.append(elapsed)
            cpu.append(cpu_elapsed)
            starts.append(monotonic_start)

    s = sorted(times)
    n = len(s)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "function": args.function,
        "compiled": args.compile, "compile_s": None if compile_s is None else round(compile_s, 2),
        "adamw": args.adamw if optimizer is not None else None, "lr": args.lr if optimizer is not None else None,
        "warmup": args.warmup, "steps": n,
        "median_ms": round(median_of(times), 3), "min_ms": round(s[0], 3), "max_ms": round(s[-1], 3),
        "mean_ms": round(sum(s) / n, 3), "cpu_ms": round(median_of(cpu), 3), "times_ms": [round(t, 3) for t in times],
        "starts_ms": [round(t, 3) for t in starts],
        "peak_rss_mb": round(rss_mib(), 1), "rss_after_setup_mb": round(rss_setup, 1), "setup_s": round(setup_s, 2),
        "loss": first_loss, "trainable": trainable,
    }))


if __name__ == "__main__":
    main()
