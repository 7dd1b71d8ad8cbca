#!/usr/bin/env python3
"""Granule vs PyTorch, side by side on this machine (see BENCHMARKS.md). Run through bench/run.

    bench/run [--quick] [--steps 10] [--warmup 2] [--threads 2] [--seed 0] [--rounds 3]
              [--clean-threshold 0.2] [--max-wait 20] [--no-build]

Today both modes measure the one workload that exists end to end: the BART-base VL-PET-large
training step (@loss_grad: forward + backward, no optimizer) at batch 4, Granule's compiled
binary against PyTorch eager running the reference implementation (tools/reference/) on the same
weights and batch. The full run will add the rows listed in PENDING once they exist.

Steps: build granule (release) if needed; time `granule compile` of the bundled spec; compile a
copy with "dropout": 0 (the binary that is timed: the reference has no dropout); `granule init`
random weights with a fixed seed; write the batch; `granule stats` for the FLOP count (checked
against the hand count of bench/flops.py); `MODEL run --function loss_grad` once (loss and
gradients for the equivalence check); then --rounds rounds, each `MODEL bench --function
loss_grad --json` then bench/torch_step.py in its own process, each after waiting (at most
--max-wait s) for the other
users of this shared machine to go quiet, while a sampler thread records from /proc how many
cores everything else used during every timed step; check that the trainable sets are equal,
that the losses agree to 1e-4 relative and every gradient to 1e-3 (relative L2); write
bench/results.json (one object per row, statistics over the timed steps during which other
processes used < --clean-threshold cores, pooled over the rounds; the ratio is the ratio of the
two medians) and print the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flops import bart_vlpet_step_flops  # noqa: E402
from make_batch import make_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
RESULTS = ROOT / "bench" / "results.json"
SPEC = ROOT / "examples" / "specs" / "bart-base-vlpet-large.json"
PEAK_GFLOPS = 232.0          # FP32 FMA peak of the 2 cores (issue 5)
LOSS_RTOL = 1e-4
GRAD_RTOL = 1e-3

PENDING = [
    "training step with AdamW (no optimizer in the compiled programs yet)",
    "batch 32",
    "forward-only loss (@loss)",
    "greedy generation of 10 tokens (@encode + @decode_step) vs Hugging Face generate",
    "T5-base VL-PET-large, and LoRA on both backbones",
    "torch.compile (inductor)",
]


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(cmd: list, *, env: dict | None = None, quiet: bool = False) -> subprocess.CompletedProcess:
    shown = " ".join(str(c) for c in cmd)
    if not quiet:
        print(f"    $ {shown}", flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, text=True, capture_output=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"bench: command failed with status {result.returncode}: {shown}")
    return result


def rel(path: Path) -> str:
    return os.path.relpath(path, ROOT)


def swift_env() -> dict:
    env = dict(os.environ)
    if shutil.which("swift") is None and Path("/opt/swift/usr/bin/swift").exists():
        env["PATH"] = "/opt/swift/usr/bin:" + env.get("PATH", "")
    return env


def stats_gflop(granule: Path, spec: Path, function: str = "loss_grad") -> float:
    out = run([granule, "stats", spec], quiet=True).stdout
    m = re.search(rf"^@{function}: .*?([0-9.]+) GFLOP", out, re.M)
    if m is None:
        raise SystemExit(f"bench: no @{function} FLOP count in `granule stats` output:\n{out}")
    return float(m.group(1))


def schedule_gemm_gflop(granule: Path, spec: Path, function: str = "loss_grad") -> float:
    """Sum of 2·b·m·k·n over the `gemm` lines of `granule stats --schedule` for one function."""
    total, inside = 0, False
    for line in run([granule, "stats", spec, "--schedule"], quiet=True).stdout.splitlines():
        if line.startswith("@"):
            inside = line.startswith(f"@{function}:")
            continue
        m = re.match(r"\s+gemm \S+ = (?:(\d+) × )?\[(\d+)×(\d+)\]·\[(\d+)×(\d+)\]", line)
        if inside and m:
            b = int(m.group(1) or 1)
            rows, inner, _, cols = (int(x) for x in m.group(2, 3, 4, 5))
            total += 2 * b * rows * inner * cols
    return total / 1e9


def git_state() -> str:
    """HEAD's short hash, plus the modified compiler/runtime files when the tree is dirty."""
    try:
        head = run(["git", "rev-parse", "--short", "HEAD"], quiet=True).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--", "Sources", "Runtime", "Package.swift"], quiet=True).stdout
    except SystemExit:
        return "unknown"
    files = [line[3:] for line in dirty.splitlines()]
    return head + (f" + uncommitted changes to {', '.join(files)}" if files else "")


class OtherLoad:
    """Cores' worth of CPU used by everything except this script's children while a phase runs,
    from /proc/stat (busy and steal jiffies) minus the children's own CPU time: ~0 on a quiet
    machine; near the core count when another job competed for every core."""

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        tick = os.sysconf("SC_CLK_TCK")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ((user + nice + system + irq + softirq + steal) / tick, time.perf_counter(),
                children.ru_utime + children.ru_stime)

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        end = self._sample()
        busy, wall, ours = (e - s for e, s in zip(end, self.start))
        self.cores = max(0.0, (busy - ours) / wall) if wall > 0 else 0.0
        return False


class LoadSampler(threading.Thread):
    """Every 50 ms: the monotonic time, the busy (and steal) CPU seconds of the whole machine and
    the CPU seconds of one process (all its threads) from /proc; load_between() then gives the
    cores' worth of CPU everything else used during any interval of that process's life."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def _sample(self) -> tuple[float, float, float | None]:
        now = time.monotonic() * 1e3
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        busy = (user + nice + system + irq + softirq + steal) / self.tick
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            own = (int(rest[11]) + int(rest[12])) / self.tick          # utime, stime
        except (OSError, IndexError, ValueError):
            own = None
        return now, busy, own

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(self._sample())
            self.done.wait(0.05)

    def stop(self) -> None:
        self.done.set()
        self.join()

    def load_between(self, start_ms: float, end_ms: float) -> float:
        valid = [s for s in self.samples if s[2] is not None]
        before = [s for s in valid if s[0] <= start_ms]
        after = [s for s in valid if s[0] >= end_ms]
        a = before[-1] if before else valid[0]
        b = after[0] if after else valid[-1]
        if b[0] <= a[0]:
            return 0.0
        return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / ((b[0] - a[0]) / 1e3))


def run_sampled(cmd: list, env: dict) -> dict:
    """Runs a benchmark process whose last stdout line is JSON with times_ms and starts_ms, and
    adds other_load: the cores other processes used during each timed step."""
    proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = LoadSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        sys.stderr.write(out + err)
        raise SystemExit(f"bench: command failed with status {proc.returncode}: {' '.join(str(c) for c in cmd)}")
    r = json.loads(out.splitlines()[-1])
    r["other_load"] = [round(sampler.load_between(s, s + t), 3) for s, t in zip(r["starts_ms"], r["times_ms"])]
    return r


def median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def wait_quiet(max_wait: float, threshold: float = 0.25) -> tuple[float, float]:
    """Waits until other processes use less than `threshold` cores over two consecutive 1 s
    windows, or max_wait seconds; returns (seconds waited, their load in the last window)."""
    start, calm, load = time.perf_counter(), 0, 0.0
    while True:
        with OtherLoad() as window:
            time.sleep(1.0)
        load = window.cores
        calm = calm + 1 if load < threshold else 0
        waited = time.perf_counter() - start
        if calm >= 2 or waited >= max_wait:
            return waited, load


def trainable_of(model: Path, function: str = "loss_grad") -> list[str]:
    """Trainable parameters of a function, from `MODEL info`."""
    names, inside = [], False
    for line in run([model, "info"], quiet=True).stdout.splitlines():
        if line.startswith("@"):
            inside = line.startswith(f"@{function} ")
        elif inside and line.startswith("  %") and line.endswith(" trainable"):
            names.append(line[3:].split(": ")[0])
    return sorted(names)


def compare(granule_out: Path, torch_out: Path, trainable: list[str]) -> dict:
    g, t = load_file(str(granule_out)), load_file(str(torch_out))
    loss_g, loss_t = float(g["loss"]), float(t["loss"])
    loss_rel = abs(loss_g - loss_t) / abs(loss_t)
    errors = {}
    for name in trainable:
        a = g[f"grad.{name}"].astype(np.float64)
        b = t[f"grad.{name}"].astype(np.float64)
        if a.shape != b.shape:
            raise SystemExit(f"bench: gradient {name}: Granule {a.shape}, PyTorch {b.shape}")
        errors[name] = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    shown = [n for n in trainable if any(k in n for k in (
        "feat_embedding.0.weight", "layernorm_embedding.weight", "layers.0.attn_adapter_multihead_down.weight",
        "layers.5.encoder_ff_adapter_gating_large_x_up.weight",
        "decoder.layers.5.encoder_attn.attn_value_parallel_adapter.adapters.shared.down_sampler.weight"))]
    return {
        "loss_granule": loss_g, "loss_pytorch": loss_t, "loss_rel_diff": loss_rel,
        "gradients_compared": len(errors), "grad_worst": worst,
        "grad_examples": {n: errors[n] for n in shown},
        "ok": loss_rel <= LOSS_RTOL and max(errors.values()) <= GRAD_RTOL,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the BART-base VL-PET-large batch-4 training step vs eager")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per system (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="threads for Granule and PyTorch (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and batch (default 0)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of both systems (default 3)")
    ap.add_argument("--clean-threshold", type=float, default=0.2,
                    help="a timed step counts only if other processes used fewer cores than this during it (default 0.2)")
    ap.add_argument("--max-wait", type=float, default=15.0,
                    help="seconds to wait before each run for other processes to go quiet (default 15)")
    ap.add_argument("--budget", type=float, default=270.0,
                    help="start no further round once the run would pass this many seconds (default 270)")
    ap.add_argument("--no-build", action="store_true", help="use .build/release/granule as it is")
    args = ap.parse_args()
    started = time.perf_counter()
    source = git_state()
    log(f"granule source: {source}")
    OUT.mkdir(parents=True, exist_ok=True)
    granule = ROOT / ".build" / "release" / "granule"

    # (a) Build.
    if args.no_build:
        if not granule.exists():
            raise SystemExit(f"bench: --no-build, but {rel(granule)} does not exist")
        log(f"build: skipped (--no-build), using {rel(granule)}")
    else:
        log("build: swift build -c release --product granule")
        t = time.perf_counter()
        run(["swift", "build", "-c", "release", "--product", "granule"], env=swift_env())
        log(f"build: done in {time.perf_counter() - t:.1f} s")

    # (b) Compile time of the bundled spec, then the dropout-free copy that is timed.
    model = OUT / "model"
    waited, other = wait_quiet(args.max_wait)
    log(f"compile: granule compile {rel(SPEC)} -o {rel(model)} (after waiting {waited:.0f} s for a quiet machine)")
    t = time.perf_counter()
    with OtherLoad() as load_compile:
        run([granule, "compile", SPEC, "-o", model])
    compile_s = time.perf_counter() - t
    log(f"compile: {compile_s:.2f} s (wall); other processes used {load_compile.cores:.2f} cores meanwhile")
    spec = json.loads(SPEC.read_text())
    spec["backbone"] = os.path.relpath((SPEC.parent / spec["backbone"]).resolve(), OUT)
    spec["dropout"] = 0
    spec["description"] = spec.get("description", "") + " -- bench copy with dropout 0"
    spec_copy = OUT / "bart-base-vlpet-large-nodropout.json"
    spec_copy.write_text(json.dumps(spec, indent=2) + "\n")
    bench_model = OUT / "model-nodropout"
    t = time.perf_counter()
    run([granule, "compile", spec_copy, "-o", bench_model])
    compile_nodropout_s = time.perf_counter() - t
    log(f"compile: dropout-free copy {compile_nodropout_s:.2f} s")

    # FLOPs: granule stats, checked against the hand count of the GEMMs.
    gflop = stats_gflop(granule, spec_copy)
    gflop_bundled = stats_gflop(granule, SPEC)
    config = json.loads((spec_copy.parent / spec["backbone"]).read_text())
    hand = bart_vlpet_step_flops(spec, config)
    log(f"flops: granule stats @loss_grad {gflop:.3f} GFLOP (bundled spec with dropout: {gflop_bundled:.3f}); "
        f"hand count of the GEMMs {hand['total'] / 1e9:.3f} (forward {hand['forward'] / 1e9:.3f}, "
        f"backward {hand['backward'] / 1e9:.3f})")
    gemm_gflop = schedule_gemm_gflop(granule, spec_copy)
    log(f"flops: the GEMMs of @loss_grad's schedule sum to {gemm_gflop:.3f} GFLOP "
        f"({'equal to' if abs(gemm_gflop * 1e9 - hand['total']) < 1e6 else 'NOT equal to'} the hand count; "
        f"the rest of the {gflop:.3f} is elementwise/normalisation work)")
    if abs(gemm_gflop * 1e9 - hand["total"]) / hand["total"] > 0.005:
        log(f"WARNING: the compiled step does {100 * (gemm_gflop * 1e9 / hand['total'] - 1):+.1f}% GEMM FLOPs "
            "relative to the hand count of the model's GEMMs; GFLOP/s below use granule stats' figure")

    # (c) Weights, (d) batch.
    weights = OUT / "weights.safetensors"
    log(f"init: random weights, seed {args.seed}")
    t = time.perf_counter()
    run([granule, "init", spec_copy, "--seed", args.seed, "-o", weights])
    log(f"init: {time.perf_counter() - t:.1f} s, {weights.stat().st_size / 2**20:.0f} MiB")
    batch_path = OUT / "batch.safetensors"
    batch = make_batch(spec, config, args.seed)
    save_file(batch, str(batch_path))
    log("batch: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in batch.items()))

    # (e) Granule: one step for the equivalence check. (f) Then the timed rounds: Granule's
    # `MODEL bench` and PyTorch eager in its own process, alternating, each round after waiting
    # (up to --max-wait s) for the other users of the machine to go quiet.
    granule_grads = OUT / "granule-grads.safetensors"
    torch_grads = OUT / "pytorch-grads.safetensors"
    run([bench_model, "run", "--function", "loss_grad", "--inputs", weights, "--inputs", batch_path,
         "--out", granule_grads, "--threads", args.threads])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    granule_cmd = [bench_model, "bench", "--function", "loss_grad", "--weights", weights, "--batch", batch_path,
                   "--steps", args.steps,
                   "--warmup", args.warmup, "--threads", args.threads, "--json"]
    torch_cmd = [sys.executable, ROOT / "bench" / "torch_step.py", "--spec", spec_copy, "--weights", weights,
                 "--batch", batch_path, "--steps", args.steps, "--warmup", args.warmup, "--threads", args.threads]
    log(f"timing: {args.rounds} round(s) of Granule then PyTorch eager, each {args.warmup} warm-up + "
        f"{args.steps} timed steps of forward + backward, {args.threads} threads")
    rounds = {"granule": [], "pytorch-eager": []}
    round_s = 0.0
    for k in range(args.rounds):
        elapsed = time.perf_counter() - started
        if k > 0 and elapsed + round_s > args.budget:
            log(f"timing: stopping after {k} round(s): another (~{round_s:.0f} s) would pass the {args.budget:.0f} s budget")
            break
        round_start = time.perf_counter()
        for system in ("granule", "pytorch-eager"):
            waited, other = wait_quiet(args.max_wait)
            cmd = granule_cmd if system == "granule" else torch_cmd + (["--grads-out", torch_grads] if k == 0 else [])
            r = run_sampled(cmd, env)
            rounds[system].append(r)
            clean = sum(1 for x in r["other_load"] if x < args.clean_threshold)
            log(f"round {k + 1} {system:13s}: median {r['median_ms']:7.1f} ms, min {r['min_ms']:7.1f}, "
                f"max {r['max_ms']:7.1f}, CPU {r['cpu_ms']:6.0f} ms/step, peak RSS {r['peak_rss_mb']:5.0f} MiB; "
                f"{clean}/{len(r['other_load'])} steps clean, others used up to {max(r['other_load']):.2f} cores "
                f"(waited {waited:.0f} s)")
        round_s = time.perf_counter() - round_start
    p = rounds["pytorch-eager"][0]

    # (g) The same computation: trainable sets, loss, gradients.
    trainable = trainable_of(bench_model)
    if trainable != sorted(p["trainable"]):
        only_g = sorted(set(trainable) - set(p["trainable"]))
        only_t = sorted(set(p["trainable"]) - set(trainable))
        raise SystemExit(f"bench: trainable sets differ: only Granule {only_g[:5]}, only PyTorch {only_t[:5]}")
    check = compare(granule_grads, torch_grads, trainable)
    check["trainable_tensors"] = len(trainable)
    log(f"check: {len(trainable)} trainable tensors in both; loss Granule {check['loss_granule']:.7f}, "
        f"PyTorch {check['loss_pytorch']:.7f} (rel. diff {check['loss_rel_diff']:.1e}, tolerance {LOSS_RTOL:.0e})")
    log(f"check: {check['gradients_compared']} gradients, relative L2 error: worst "
        + ", ".join(f"{n} {e:.1e}" for n, e in check["grad_worst"]) + f" (tolerance {GRAD_RTOL:.0e})")
    for n, e in check["grad_examples"].items():
        print(f"    {n}: {e:.1e}")
    (OUT / "check.json").write_text(json.dumps(check, indent=2) + "\n")
    if not check["ok"]:
        raise SystemExit("bench: Granule and PyTorch do not compute the same step; no results written")

    # Rows: the clean timed steps of every round (while each ran, other processes used fewer than
    # --clean-threshold cores), pooled; every step of both systems when either has fewer than
    # max(3, steps/2) clean ones. The ratio is the ratio of the two systems' medians.
    workload = "bart-base vl-pet-large train step (fwd+bwd, no optimizer) b4"
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    steps = {system: [(t, x) for r in results for t, x in zip(r["times_ms"], r["other_load"])]
             for system, results in rounds.items()}
    clean = {system: [t for t, x in s if x < args.clean_threshold] for system, s in steps.items()}
    min_clean = max(3, args.steps // 2)
    contended = any(len(c) < min_clean for c in clean.values())
    if contended:
        log(f"WARNING: fewer than {min_clean} timed steps of "
            + " and ".join(f"{system} ({len(c)})" for system, c in clean.items() if len(c) < min_clean)
            + " ran on a quiet machine; the figures below use every step and include contention")
    pooled = {system: ([t for t, _ in steps[system]] if contended else clean[system], len(steps[system]))
              for system in steps}
    ratio = median(pooled["granule"][0]) / median(pooled["pytorch-eager"][0])
    rows = []
    for system, results in rounds.items():
        times, total = pooled[system]
        med = median(times)
        rows.append({
            "workload": workload, "system": system,
            "median_ms": round(med, 1), "min_ms": round(min(times), 1), "max_ms": round(max(times), 1),
            "gflops": round(gflop / (med / 1e3), 1),
            "peak_fraction": round(gflop / (med / 1e3) / PEAK_GFLOPS, 3),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "ratio_to_eager": round(ratio, 3) if system == "granule" else 1.0,
            "steps_used": len(times), "steps_timed": total, "contended": contended,
            "rounds": len(results), "steps": results[0]["steps"], "warmup": results[0]["warmup"],
            "threads": results[0]["threads"],
            "round_median_ms": [r["median_ms"] for r in results],
            "cpu_ms": round(median([r["cpu_ms"] for r in results]), 1),
            "times_ms": [t for r in results for t in r["times_ms"]],
            "other_load_cores": [x for r in results for x in r["other_load"]],
            "model_gflop": gflop, "gemm_gflop": gemm_gflop,
            "hand_gemm_gflop": round(hand["total"] / 1e9, 3), "loss": results[0]["loss"],
            "date": date, "granule_source": source,
            "granule_built": datetime.datetime.fromtimestamp(granule.stat().st_mtime).astimezone().isoformat(timespec="seconds"),
        })
    rows[0]["round_ratio_to_eager"] = [round(g["median_ms"] / t["median_ms"], 3)
                                       for g, t in zip(rounds["granule"], rounds["pytorch-eager"])]
    rows[0]["compile_s"] = round(compile_s, 2)
    rows[0]["compile_other_load_cores"] = round(load_compile.cores, 2)
    rows[0]["compile_nodropout_s"] = round(compile_nodropout_s, 2)
    rows[1]["torch"] = p["torch"]
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")

    print()
    print(f"{'workload':62s} {'system':14s} {'median':>9s} {'min':>9s} {'max':>9s} {'GFLOP/s':>8s} {'%peak':>6s} "
          f"{'RSS MiB':>8s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['workload']:62s} {r['system']:14s} {r['median_ms']:9.1f} {r['min_ms']:9.1f} {r['max_ms']:9.1f} "
              f"{r['gflops']:8.1f} {100 * r['peak_fraction']:5.1f}% {r['peak_rss_mb']:8.0f} {r['ratio_to_eager']:6.3f}")
    print(f"steps used (quiet machine): Granule {rows[0]['steps_used']}/{rows[0]['steps_timed']}, "
          f"PyTorch {rows[1]['steps_used']}/{rows[1]['steps_timed']}; per-round ratios of all steps' medians: "
          + ", ".join(f"{x:.3f}" for x in rows[0]["round_ratio_to_eager"]))
    print(f"compile (granule compile {rel(SPEC)}): {compile_s:.2f} s;  model: {gflop:.3f} GFLOP per step")
    print(f"wrote {rel(RESULTS)} ({len(rows)} rows) in {time.perf_counter() - started:.0f} s")
    if not args.quick:
        print("\nnot measured yet (future rows of the full run):")
        for item in PENDING:
            print(f"  - {item}")


if __name__ == "__main__":
    main()
