#!/usr/bin/env python3
"""How much of a float32 gradient's distance from float64 is ReLU sign decisions.

T5's feed-forward layers apply ReLU. A pre-activation within rounding of zero can come out on
either side in float32, and its unit's gradient is then on or off: a discrete change, far larger
than rounding, that the float64 reference does not share. This script measures that on a training
workload `bench/run` has already prepared and checked (it reads out/bench/MODEL.*):

1. PyTorch's float32 gradients against float64 ones, then against float64 ones computed with the
   ReLU masks of PyTorch's float32 forward pass (every other step in float64);
2. Granule's gradients (the check's `MODEL.granule-grads.safetensors`) against float64 ones;
3. which sign decisions Granule took differently: the float64 gradient change of flipping each
   candidate (pre-activations with |x| < --decoder-below / --encoder-below times the layer's
   largest), fitted to Granule's error by least squares on 400k sampled gradient elements; the
   float64 gradients with the flips whose coefficient exceeds 0.5, against Granule's.

Each gradient is measured as max |error| / max |float64 gradient| per tensor; the median and the
worst over the trainable tensors are printed. When step 3 leaves Granule above PyTorch's residual
of step 1, some decisions lie outside the bounds: widen them (T5-base LoRA b4 needed
--decoder-below 3e-5 --encoder-below 1e-5: 475 candidates, 25 min).

    bench/relu_flips.py t5-base-vlpet-large-b4 [--decoder-below 1e-5] [--encoder-below 1e-6] [--python PY]

Takes ~1 min for steps 1-2 and ~3 s per candidate (2 threads): T5-base VL-PET-large b4 has 101
candidates at the defaults (6 min in all). BART's GELU has no kink: the script is for T5 workloads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a prepared workload tag, e.g. t5-base-vlpet-large-b4")
    ap.add_argument("--decoder-below", type=float, default=1e-5)
    ap.add_argument("--encoder-below", type=float, default=1e-6)
    ap.add_argument("--python", default=os.environ.get("BENCH_PYTHON", "/work/venv/bin/python"))
    args = ap.parse_args()
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        os.execv(args.python, [args.python, __file__, *sys.argv[1:]])
    needed = [OUT / f"{args.model}.{suffix}" for suffix in ("json", "batch.safetensors", "granule-grads.safetensors")]
    needed.append(OUT / f"{args.model.rsplit('-b', 1)[0]}.weights.safetensors")
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        print(f"relu_flips: missing {', '.join(missing)}: run the model's training workload with bench/run first "
              "(names: bench/run --list)", file=sys.stderr)
        return 2
    analyse(args)
    return 0


def analyse(args) -> None:
    import numpy as np
    import torch
    from safetensors.numpy import load_file

    sys.path.insert(0, str(ROOT / "bench"))
    import torch_step

    torch.set_num_threads(2)
    spec = OUT / f"{args.model}.json"
    weights = OUT / f"{args.model.rsplit('-b', 1)[0]}.weights.safetensors"

    class RecordingReLU(torch.nn.Module):
        """ReLU that keeps its input; with `mask` set it passes exactly the masked elements."""

        def __init__(self):
            super().__init__()
            self.pre, self.mask = None, None

        def forward(self, x):
            self.pre = x.detach().clone()
            return torch.relu(x) if self.mask is None else x * self.mask.to(x.dtype)

    def build(dtype):
        model, mode = torch_step.model_from_spec(spec)
        if model.kind != "t5":
            raise SystemExit("relu_flips: only T5 workloads have ReLU feed-forward layers")
        torch_step.load_weights(model, weights)
        model.hf.eval()
        if dtype == torch.float64:
            model.hf.double()
        relus = {}
        for side in ("encoder", "decoder"):
            for i, block in enumerate(getattr(model.hf, side).block):
                relus[f"{side}.{i}"] = block.layer[-1].DenseReluDense.act = RecordingReLU()
        params, trainable = model.named_params(), model.trainable_names()
        for name in trainable:
            params[name].requires_grad_(True)
        return model, mode, relus, params, trainable

    batch = torch_step.load_batch(OUT / f"{args.model}.batch.safetensors")  # the check's batch

    def gradients(model, mode, params, trainable, batch, masks=None, relus=None):
        for relu_name, relu in (relus or {}).items():
            relu.mask = (masks or {}).get(relu_name)
        for name in trainable:
            params[name].grad = None
        model.loss(batch, mode)[1].backward()
        for relu in (relus or {}).values():
            relu.mask = None
        return {name: params[name].grad.detach().double().numpy().copy() for name in trainable}

    model, mode, relus, params, trainable = build(torch.float32)
    g32 = gradients(model, mode, params, trainable, batch, relus=relus)
    pre32 = {name: relu.pre.double() for name, relu in relus.items()}
    del model
    model, mode, relus, params, _ = build(torch.float64)
    batch64 = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}

    def grad64(masks=None):
        return gradients(model, mode, params, trainable, batch64, masks, relus)

    g64 = grad64()
    pre64 = {name: relu.pre for name, relu in relus.items()}
    granule_file = load_file(str(OUT / f"{args.model}.granule-grads.safetensors"))
    granule = {name: granule_file[f"grad.{name}"].astype(np.float64) for name in trainable}

    def errors(g, reference):
        return [float(np.abs(g[n] - reference[n]).max() / max(np.abs(reference[n]).max(), 1e-300)) for n in trainable]

    def line(label, g, reference):
        e = errors(g, reference)
        print(f"{label}: median {np.median(e):.2e}, worst {max(e):.2e}", flush=True)

    flips32 = {name: int(((pre32[name] > 0) != (pre64[name] > 0)).sum()) for name in pre64}
    print(f"{args.model}: {len(trainable)} trainable tensors; PyTorch float32 ReLU decisions unlike float64's: "
          + (", ".join(f"{name} {count}" for name, count in flips32.items() if count) or "none"))
    line("1. PyTorch float32 against float64", g32, g64)
    line("   against float64 with PyTorch float32's ReLU masks", g32, grad64({n: pre32[n] > 0 for n in pre64}))
    line("2. Granule against float64", granule, g64)

    sample = None

    def flat(g):
        nonlocal sample
        v = np.concatenate([g[n].ravel() / max(np.abs(g64[n]).max(), 1e-300) for n in trainable])
        if sample is None:
            sample = np.random.default_rng(0).choice(v.size, min(v.size, 400_000), replace=False)
        return v[sample]

    target = flat(granule) - flat(g64)
    candidates = []
    for name, pre in pre64.items():
        below = args.decoder_below if name.startswith("decoder") else args.encoder_below
        relative = pre.abs().flatten() / pre.abs().max()
        candidates += [(name, i) for i in (relative < below).nonzero().flatten().tolist()]
    started = time.time()

    def flipped(choice):
        masks = {}
        for name, i in choice:
            mask = masks.get(name, pre64[name] > 0).flatten().clone()
            mask[i] = ~mask[i]
            masks[name] = mask.reshape(pre64[name].shape)
        return grad64(masks)

    changes = np.stack([flat(flipped([c])) - flat(g64) for c in candidates], 1)
    coefficients = np.linalg.lstsq(changes, target, rcond=None)[0]
    chosen = [c for c, k in zip(candidates, coefficients) if k > 0.5]
    print(f"3. {len(candidates)} candidate decisions ({time.time() - started:.0f} s); fitted to Granule's error, "
          f"{len(chosen)} with coefficient > 0.5:")
    for j in np.argsort(-coefficients)[:len(chosen)]:
        name, i = candidates[j]
        print(f"     {name}[{i}]  coefficient {coefficients[j]:.2f}  float64 pre-activation {float(pre64[name].flatten()[i]):.2e}"
              f" (layer's largest {float(pre64[name].abs().max()):.2f})")
    line("   Granule against float64 with those decisions flipped", granule, flipped(chosen))


if __name__ == "__main__":
    sys.exit(main())
