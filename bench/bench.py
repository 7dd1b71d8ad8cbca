#!/usr/bin/env python3
"""Granule vs PyTorch, side by side on this machine (see BENCHMARKS.md). Run through bench/run.

    bench/run [--quick] [--only SUBSTRING ...] [--steps 10] [--warmup 2] [--threads 2] [--seed 0]
              [--rounds 3] [--clean-threshold 0.2] [--max-wait 15] [--budget S] [--no-build]
              [--torch-compile [--torch-compile-limit 600]] [--list] [--results PATH]

Workloads (issue 5): BART-base and T5-base (real sizes, random weights) with VL-PET-large and with
LoRA, at batch 4 and 32 (20 text + 36 visual encoder tokens, 10 decoder tokens), each as

* a training step (forward + backward + AdamW: Granule's @loss_train_step; PyTorch: forward,
  `loss.backward()`, `clip_grad_norm_`, `torch.optim.AdamW.step()`),
* the forward-only loss (@loss; PyTorch under `torch.no_grad()`),
* greedy generation of 10 tokens (Granule's `MODEL generate`: @encode + 10 × @decode_step;
  PyTorch: bench/torch_generate.py, greedy decoding with a KV cache on the reference modules;
  and Hugging Face's own `generate`: bench/hf_generate.py, the reference encoder then
  `generate(encoder_outputs=...)` on the Hugging Face model holding the same weights, whose
  decoder lacks the PET deltas — in its favour; generation rows also get "ratio_to_hf_generate",
  and the rows of a workload with a compiled torch.compile row "ratio_to_torch_compile"),

plus the row `bench/run --quick` measures alone: the BART-base VL-PET-large training step without
optimizer (@loss_grad: forward + backward) at batch 4. Systems: Granule's compiled binary,
PyTorch eager running the reference implementation (tools/reference/) on the same weights and
batch, and with --torch-compile also `torch.compile` (training step and forward loss; a row is
"not compiled" when the first call does not finish within --torch-compile-limit seconds).

For each model: a copy of its spec with "dropout": 0 (the reference has no dropout) and the batch
size of the row under out/bench/ (T5-base LoRA has no bundled spec: its copy is made from
bart-base-lora.json with the t5-base backbone and vocabulary 32200), `granule compile` of each
copy (timed: the compile time of the row), `granule init` random weights (--seed; PET matrices
that start at zero, LoRA's lora_B and T5 VL-PET's up-projections, are then drawn from N(0, 0.02²)
so that every gradient path is non-trivial), the batch (bench/make_batch.py), `granule stats
--schedule` for the FLOPs (cross-checked against the hand count of bench/flops.py). For the
BART-base VL-PET-large model the bundled spec is compiled too (timed; as before). Then, per
workload, the same computation is checked (training: the trainable sets are equal, the losses
agree to 1e-4 and every gradient to 1e-3 relative L2, from Granule's `MODEL run --function
loss_grad` and PyTorch's first step, or else both are compared with PyTorch in float64 and
Granule must be within twice PyTorch float32's error; forward: the losses; generation: the
generated tokens are equal, and PyTorch's cached decoding agrees with the reference's full
forward; torch.compile: its loss within 1e-3 of eager's), and --rounds rounds are timed, each
system in its own process after waiting (at most --max-wait s) for the machine to go quiet, while
a sampler records how many cores other processes used during every timed step. Statistics are over the steps during which other
processes used < --clean-threshold cores, pooled over the rounds (every step, flagged
"contended", when a system has fewer than max(3, steps/2) such steps); the ratio is the ratio of
the medians. bench/results.json gets one object per row (workload × system), also when a check
fails (its "check_ok" is false and the run exits with status 1).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flops import count as hand_count  # noqa: E402
from make_batch import make_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
RESULTS = ROOT / "bench" / "results.json"
SPECS = ROOT / "examples" / "specs"
PEAK_GFLOPS = 232.0          # FP32 FMA peak of the 2 cores (issue 5)
LOSS_RTOL = 1e-4
GRAD_RTOL = 1e-3
ZERO_GRAD = 1e-6             # a gradient below this fraction of the whole gradient's norm is zero but for rounding
COMPILED_LOSS_RTOL = 1e-3    # torch.compile reorders floating-point work
GEN_TOKENS = 10              # generated tokens (max_length 11 with the decoder start token)
LEARNING_RATE = 1e-4         # AdamW, both systems (constant: the schedule is the driver's)

# (name, backbone, PET, bundled spec or None, how to derive the spec when there is none)
MODELS = [
    ("bart-base-vlpet-large", "bart-base", "vl-pet-large", "bart-base-vlpet-large.json", None),
    ("bart-base-lora", "bart-base", "lora", "bart-base-lora.json", None),
    ("t5-base-vlpet-large", "t5-base", "vl-pet-large", "t5-base-vlpet-large.json", None),
    ("t5-base-lora", "t5-base", "lora", None,
     {"from": "bart-base-lora.json", "backbone": "../backbones/t5-base/config.json", "resize_vocab": 32200}),
]
BATCHES = (4, 32)
TASKS = {
    # task: (Granule function, description in the workload name, PyTorch function)
    "grad": ("loss_grad", "train step (fwd+bwd, no optimizer)", "grad"),
    "train": ("loss_train_step", "train step (fwd+bwd+AdamW)", "train"),
    "loss": ("loss", "forward loss", "loss"),
    "generate": (None, f"greedy generation of {GEN_TOKENS} tokens", "generate"),
}
QUICK = ("bart-base-vlpet-large", 4, "grad")


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


def git_state() -> str:
    """HEAD's short hash, plus the modified compiler/runtime files when the tree is dirty."""
    try:
        head = run(["git", "rev-parse", "--short", "HEAD"], quiet=True).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--", "Sources", "Runtime", "Package.swift"], quiet=True).stdout
    except SystemExit:
        return "unknown"
    files = [line[3:] for line in dirty.splitlines()]
    return head + (f" + uncommitted changes to {', '.join(files)}" if files else "")


# ---- load sampling ---------------------------------------------------------------------------

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
            # The process and its children (torch.compile's workers): the process's own time plus
            # its waited-for children's; live workers count as "other" load, which errs on the
            # safe side.
            with open(f"/proc/{self.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            own = (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / self.tick
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
        if not valid:
            return 0.0
        before = [s for s in valid if s[0] <= start_ms]
        after = [s for s in valid if s[0] >= end_ms]
        a = before[-1] if before else valid[0]
        b = after[0] if after else valid[-1]
        if b[0] <= a[0]:
            return 0.0
        return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / ((b[0] - a[0]) / 1e3))


def run_sampled(cmd: list, env: dict, timeout: float | None = None) -> dict | None:
    """Runs a benchmark process whose last stdout line is JSON with times_ms and starts_ms, and
    adds other_load: the cores other processes used during each timed step. Returns None when the
    process did not finish within `timeout` seconds (it and its children are then killed)."""
    if own_rss_mib() > 400:
        log(f"WARNING: this script holds {own_rss_mib():.0f} MiB: the benchmark process's peak RSS will be at least that")
    proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env=env, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = LoadSampler(proc.pid)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)          # its own session: the process and its workers
        proc.communicate()
        sampler.stop()
        return None
    sampler.stop()
    if proc.returncode != 0:
        sys.stderr.write(out + err)
        raise SystemExit(f"bench: command failed with status {proc.returncode}: {' '.join(str(c) for c in cmd)}")
    r = json.loads(out.splitlines()[-1])
    r["stdout"] = out
    r["sampler"] = sampler
    return r


def in_child(fn, *args):
    """Runs fn(*args) in a forked child and returns its (JSON-able) result. Heavy file work (whole
    weights files, generation data) happens there so that this process stays small: Linux carries
    a process's peak RSS across fork and exec (`ru_maxrss` of a child is at least its parent's RSS
    at the fork), so a large parent would inflate every benchmark process's peak RSS."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        status = 0
        try:
            payload = json.dumps({"result": fn(*args)})
        except BaseException as e:                   # noqa: BLE001 -- reported by the parent
            payload, status = json.dumps({"error": f"{type(e).__name__}: {e}"}), 1
        with os.fdopen(write, "w") as f:
            f.write(payload)
        os._exit(status)
    os.close(write)
    with os.fdopen(read) as f:
        payload = f.read()
    os.waitpid(pid, 0)
    answer = json.loads(payload) if payload else {"error": "the child died"}
    if "error" in answer:
        raise SystemExit(f"bench: {fn.__name__}: {answer['error']}")
    return answer["result"]


def own_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


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


# ---- models ----------------------------------------------------------------------------------

def parse_type(text: str) -> tuple[str, list[int]]:
    m = re.fullmatch(r"(\w+)\[([0-9,]*)\]", text)
    if m is None:
        raise SystemExit(f"bench: cannot parse the type {text!r} in `MODEL info`")
    return m.group(1), [int(x) for x in m.group(2).split(",") if x]


def function_params(program: Path, function: str) -> list[tuple[str, str, list[int], str]]:
    """(name, dtype, shape, role) of every parameter of a function, from `MODEL info`."""
    params, inside = [], False
    for line in run([program, "info"], quiet=True).stdout.splitlines():
        if line.startswith("@"):
            inside = line.startswith(f"@{function} ")
        elif inside and line.startswith("  %"):
            name, rest = line[3:].split(": ", 1)
            type_text, role = rest.split(" ", 1)
            dtype, shape = parse_type(type_text)
            params.append((name, dtype, shape, role))
    return params


class Model:
    """One (backbone, PET) model at one batch size: its bench spec, program, weights and batch."""

    def __init__(self, name: str, backbone: str, pet: str, bundled: str | None, derive: dict | None, batch: int):
        self.name, self.backbone, self.pet, self.batch = name, backbone, pet, batch
        self.bundled = SPECS / bundled if bundled else None
        source = SPECS / (bundled or derive["from"])
        spec = json.loads(source.read_text())
        if derive:
            spec["backbone"] = derive["backbone"]
            spec["resize_vocab"] = derive["resize_vocab"]
            spec["description"] = f"{backbone} with {spec['pet']['method']} (bench-only spec derived from {source.name})"
        spec["backbone"] = os.path.relpath((SPECS / spec["backbone"]).resolve(), OUT)
        spec["dropout"] = 0
        spec["batch"] = dict(spec["batch"], size=batch)
        spec["description"] = spec.get("description", "") + f" -- bench copy with dropout 0, batch {batch}"
        self.spec_dict = spec
        self.config = json.loads((OUT / spec["backbone"]).read_text())
        self.tag = f"{name}-b{batch}"
        self.spec = OUT / f"{self.tag}.json"
        self.program = OUT / self.tag
        self.weights = OUT / f"{name}.weights.safetensors"
        self.batch_file = OUT / f"{self.tag}.batch.safetensors"
        self.compile_s = None
        self.compile_other_load = None
        self.stats: dict[str, float] = {}
        self.gemm: dict[str, float] = {}

    def write_spec(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        self.spec.write_text(json.dumps(self.spec_dict, indent=2) + "\n")

    def read_stats(self, granule: Path) -> None:
        """granule stats --schedule: every function's FLOPs and the sum of its GEMMs."""
        function = None
        for line in run([granule, "stats", self.spec, "--schedule"], quiet=True).stdout.splitlines():
            m = re.match(r"^@(\w+): .*?([0-9.]+) GFLOP", line)
            if m:
                function = m.group(1)
                self.stats[function] = float(m.group(2))
                self.gemm[function] = 0.0
                continue
            m = re.match(r"\s+gemm \S+ = (?:(\d+) × )?\[(\d+)×(\d+)\]·\[(\d+)×(\d+)\]", line)
            if function and m:
                b = int(m.group(1) or 1)
                rows, inner, _, cols = (int(x) for x in m.group(2, 3, 4, 5))
                self.gemm[function] += 2 * b * rows * inner * cols / 1e9

    def flops(self, task: str, tokens: int = GEN_TOKENS) -> tuple[float, float, float | None]:
        """(granule stats GFLOP, sum of the schedule's GEMMs, hand count of the GEMMs or None)."""
        spec, config = self.spec_dict, self.config

        def hand(function):
            try:
                return hand_count(spec, config, function)["total"] / 1e9
            except ValueError:
                return None
        if task == "generate":
            stats = self.stats["encode"] + tokens * self.stats["decode_step"]
            gemm = self.gemm["encode"] + tokens * self.gemm["decode_step"]
            e, d = hand("encode"), hand("decode_step")
            return stats, gemm, None if e is None or d is None else e + tokens * d
        function = TASKS[task][0]
        # AdamW adds no GEMM: the hand count of @loss_train_step is @loss_grad's.
        return self.stats[function], self.gemm[function], hand("loss_grad" if task == "train" else function)


FILL_VERSION = 1


def fill_zero_pet_matrices(weights: Path, seed: int) -> int:
    """PET methods start some matrices at zero (LoRA's lora_B; T5 VL-PET's up-projections,
    zero_init): then the gradients of the matrices before them are exactly zero and the check
    cannot see them. Fills every all-zero PET weight matrix with N(0, 0.02²) values (as after some
    training); the work of either system does not depend on the values."""
    from safetensors import safe_open
    with safe_open(str(weights), "np") as f:
        metadata = f.metadata()
        zero = [k for k in sorted(f.keys()) if any(s in k for s in ("lora", "adapter", "gating"))
                and len(f.get_slice(k).get_shape()) >= 2 and not f.get_tensor(k).any()]
        tensors = {k: f.get_tensor(k) for k in f.keys()} if zero else {}
    rng = np.random.default_rng(seed + 1)
    filled = 0
    for name in zero:
        t = tensors[name]
        tensors[name] = (0.02 * rng.standard_normal(t.shape)).astype(t.dtype)
        filled += 1
    if filled:
        tmp = weights.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.replace(weights)
    return filled


# ---- checks ------------------------------------------------------------------------------------

def trainable_of(program: Path, function: str = "loss_grad") -> list[str]:
    return sorted(name for name, _, _, role in function_params(program, function) if role == "trainable")


def compare_grads(granule_out: Path, torch_out: Path, trainable: list[str]) -> dict:
    """Losses to LOSS_RTOL; each gradient to GRAD_RTOL relative L2, where a gradient that is zero in
    exact arithmetic is compared against ZERO_GRAD × the norm of all gradients instead of its own
    rounding noise (attention's key biases: softmax ignores a shift shared by all keys, so both
    systems give ~1e-10 there, in different directions)."""
    g, t = load_file(str(granule_out)), load_file(str(torch_out))
    loss_g, loss_t = float(g["loss"]), float(t["loss"])
    loss_rel = abs(loss_g - loss_t) / abs(loss_t)
    pairs = {}
    for name in trainable:
        a = g[f"grad.{name}"].astype(np.float64)
        b = t[f"grad.{name}"].astype(np.float64)
        if a.shape != b.shape:
            raise SystemExit(f"bench: gradient {name}: Granule {a.shape}, PyTorch {b.shape}")
        pairs[name] = (float(np.linalg.norm(a - b)), float(np.linalg.norm(b)))
    floor = ZERO_GRAD * float(np.sqrt(sum(nb * nb for _, nb in pairs.values())))
    errors = {name: diff / max(nb, floor, 1e-30) for name, (diff, nb) in pairs.items()}
    zero = sorted(name for name, (_, nb) in pairs.items() if nb < floor)
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    return {
        "loss_granule": loss_g, "loss_pytorch": loss_t, "loss_rel_diff": loss_rel,
        "gradients_compared": len(errors), "grad_worst": worst,
        "zero_gradients": len(zero), "zero_gradient_examples": zero[:4],
        "ok": loss_rel <= LOSS_RTOL and max(errors.values()) <= GRAD_RTOL,
    }


def compare_with_float64(granule_out: Path, torch_out: Path, f64_out: Path, trainable: list[str]) -> dict:
    """When the two float32 systems differ by more than the tolerances (T5: a ReLU pre-activation
    within rounding of zero lands on either side in float32 and switches its unit's gradient, so
    both are ~2-4e-3 from the exact gradients of its norm weights; bench/relu_flips.py): each system
    against PyTorch in float64. Granule passes when its loss error is within max(LOSS_RTOL, 2 ×
    PyTorch float32's) and every gradient's error within max(GRAD_RTOL, 2 × PyTorch float32's worst
    gradient error): no further from the exact values than PyTorch's own float32 rounding allows
    (per tensor, the two float32 errors are alike but not in a fixed ratio)."""
    g, t, r = load_file(str(granule_out)), load_file(str(torch_out)), load_file(str(f64_out))
    loss_r = float(r["loss"])
    loss_g, loss_t = abs(float(g["loss"]) - loss_r) / abs(loss_r), abs(float(t["loss"]) - loss_r) / abs(loss_r)
    norms = {name: float(np.linalg.norm(r[f"grad.{name}"])) for name in trainable}
    floor = ZERO_GRAD * float(np.sqrt(sum(v * v for v in norms.values())))
    worst = []
    for name in trainable:
        ref = r[f"grad.{name}"]
        scale = max(norms[name], floor, 1e-30)
        eg = float(np.linalg.norm(g[f"grad.{name}"].astype(np.float64) - ref)) / scale
        et = float(np.linalg.norm(t[f"grad.{name}"].astype(np.float64) - ref)) / scale
        worst.append((name, eg, et))
    bound = max(GRAD_RTOL, 2 * max(x[2] for x in worst))
    bad = [name for name, eg, _ in worst if eg > bound]
    worst.sort(key=lambda x: -x[1])
    return {
        "loss_rel_err_granule": loss_g, "loss_rel_err_pytorch_f32": loss_t,
        "grad_worst_granule_vs_f64": worst[:3],
        "max_grad_err_granule": worst[0][1], "max_grad_err_pytorch_f32": max(x[2] for x in worst),
        "failing": bad[:5],
        "ok": not bad and loss_g <= max(LOSS_RTOL, 2 * loss_t),
    }


# ---- one workload ------------------------------------------------------------------------------

class Workload:
    def __init__(self, model: Model, task: str):
        self.model, self.task = model, task
        self.function, what, self.torch_function = TASKS[task]
        self.name = f"{model.backbone} {model.pet} {what} b{model.batch}"


def prepare_inputs(w: Workload, args) -> dict:
    """Files the systems read for this workload (written by a forked child); returns their paths."""
    return {k: Path(v) for k, v in in_child(_prepare_inputs, w, args).items()}


def _prepare_inputs(w: Workload, args) -> dict:
    m = w.model
    files = {"batch": m.batch_file}
    if w.task == "train":
        # @loss_train_step's extra parameters in a copy of the batch file: the learning rate, the
        # step counter and the zero moments (the state before a first step). `MODEL bench` calls
        # it with the same state every time (results are not written back): the same work.
        path = OUT / f"{m.tag}.train-batch.safetensors"
        tensors = dict(load_file(str(m.batch_file)))
        for name, dtype, shape, role in function_params(m.program, "loss_train_step"):
            if name == "learning_rate":
                tensors[name] = np.array(LEARNING_RATE, dtype=np.float32)
            elif role == "state":
                tensors[name] = np.zeros(shape, dtype={"f32": np.float32, "i64": np.int64}[dtype])
        save_file(tensors, str(path))
        files["granule_batch"] = path
    elif w.task == "generate":
        # (warmup + steps) copies of the batch's @encode inputs: one timed call = one batch.
        path = OUT / f"{m.tag}.generate-data.safetensors"
        b = load_file(str(m.batch_file))
        n = args.warmup + args.steps
        save_file({k: np.concatenate([b[k]] * n) for k in ("input_ids", "attention_mask", "vis_feats", "vis_boxes")}, str(path))
        files["data"] = path
        if m.config["model_type"] == "bart":
            # A random BART echoes its input token: from the start token </s> it emits </s> and
            # stops. final_logits_bias[</s>] = -1e9 (HF's min_new_tokens=10 on this model) makes
            # both systems decode all 10 steps; Granule reads it as a --checkpoint override.
            eos = m.config["eos_token_id"]
            from safetensors import safe_open
            with safe_open(str(m.weights), "np") as f:
                bias = f.get_tensor("final_logits_bias").copy()
            bias[..., eos] = -1e9
            path = OUT / f"{m.name}.no-eos.safetensors"
            save_file({"final_logits_bias": bias}, str(path))
            files["override"] = path
    else:
        files["granule_batch"] = m.batch_file
    return {k: str(v) for k, v in files.items()}


def commands(w: Workload, files: dict, args, system: str, first_round: bool) -> list:
    m = w.model
    t = args.threads
    if system == "granule":
        if w.task == "generate":
            cmd = [m.program, "generate", "--weights", m.weights, "--data", files["data"], "--max-length", GEN_TOKENS + 1,
                   "--no-repeat-ngram-size", 0, "--threads", t, "--time", "--predictions", OUT / f"{m.tag}.predictions.jsonl"]
            return cmd + (["--checkpoint", files["override"]] if "override" in files else [])
        return [m.program, "bench", "--function", w.function, "--weights", m.weights, "--batch", files["granule_batch"],
                "--steps", args.steps, "--warmup", args.warmup, "--threads", t, "--json"]
    if system == "hf-generate":
        cmd = [sys.executable, ROOT / "bench" / "hf_generate.py", "--spec", m.spec, "--weights", m.weights,
               "--batch", m.batch_file, "--new-tokens", GEN_TOKENS, "--steps", args.steps, "--warmup", args.warmup,
               "--threads", t]
        return cmd + (["--override", files["override"]] if "override" in files else [])
    if w.task == "generate":
        cmd = [sys.executable, ROOT / "bench" / "torch_generate.py", "--spec", m.spec, "--weights", m.weights,
               "--batch", m.batch_file, "--max-length", GEN_TOKENS + 1, "--steps", args.steps, "--warmup", args.warmup,
               "--threads", t, "--tokens-out", OUT / f"{m.tag}.pytorch-tokens.json"]
        cmd += ["--override", files["override"]] if "override" in files else []
        return cmd + (["--check"] if first_round else [])
    cmd = [sys.executable, ROOT / "bench" / "torch_step.py", "--spec", m.spec, "--weights", m.weights,
           "--batch", m.batch_file, "--function", w.torch_function, "--steps", args.steps,
           "--warmup", max(args.warmup, 2) if system == "pytorch-compile" else args.warmup, "--threads", t,
           "--lr", LEARNING_RATE]
    if system == "pytorch-compile":
        cmd.append("--compile")
    elif first_round and w.task in ("grad", "train"):
        cmd += ["--grads-out", OUT / f"{m.tag}.pytorch-grads.safetensors"]
    return cmd


def normalise(r: dict, system: str, w: Workload, args) -> dict:
    """Granule's generate reports every batch: drop the warm-up ones; then per-step load."""
    if system == "granule" and w.task == "generate":
        k = args.warmup
        r["times_ms"], r["starts_ms"] = r["times_ms"][k:], r["starts_ms"][k:]
        t = r["times_ms"]
        r.update(steps=len(t), warmup=k, threads=args.threads, median_ms=median(t), min_ms=min(t), max_ms=max(t),
                 cpu_ms=None)
        lines = (OUT / f"{w.model.tag}.predictions.jsonl").read_text().splitlines()[:w.model.batch]
        r["tokens"] = [json.loads(line)["tokens"] for line in lines]
    sampler = r.pop("sampler")
    r.pop("stdout", None)
    r["other_load"] = [round(sampler.load_between(s, s + t), 3) for s, t in zip(r["starts_ms"], r["times_ms"])]
    return r


def measure(w: Workload, args, env: dict, systems: list[str], granule: Path, started: float, state: dict) -> list[dict]:
    m = w.model
    log(f"workload: {w.name} ({', '.join(systems)})")
    files = prepare_inputs(w, args)
    check: dict = {}
    granule_grads = OUT / f"{m.tag}.granule-grads.safetensors"
    if w.task in ("grad", "train"):
        run([m.program, "run", "--function", "loss_grad", "--inputs", m.weights, "--inputs", m.batch_file,
             "--out", granule_grads, "--threads", args.threads])
    rounds: dict[str, list] = {s: [] for s in systems}
    not_compiled: dict[str, float] = {}
    round_s = 0.0
    for k in range(args.rounds):
        elapsed = time.perf_counter() - started
        if k > 0 and args.budget and elapsed + 1.25 * round_s > args.budget:
            log(f"timing: stopping after {k} round(s): another (~{round_s:.0f} s) would pass the {args.budget:.0f} s budget")
            break
        round_start = time.perf_counter()
        for system in systems:
            if system in not_compiled:
                continue
            waited, _ = wait_quiet(args.max_wait)
            timeout = None
            if system == "pytorch-compile":
                eager = rounds.get("pytorch-eager")
                per_step = eager[-1]["median_ms"] / 1e3 if eager else 10.0
                timeout = args.torch_compile_limit + 60 + 3 * per_step * (args.steps + args.warmup + 1)
            r = run_sampled(commands(w, files, args, system, k == 0), env, timeout)
            if r is None:
                log(f"round {k + 1} {system}: did not finish within {timeout:.0f} s "
                    f"(torch.compile limit {args.torch_compile_limit:.0f} s); no row")
                not_compiled[system] = timeout
                continue
            r = normalise(r, system, w, args)
            rounds[system].append(r)
            clean = sum(1 for x in r["other_load"] if x < args.clean_threshold)
            extra = f", compile {r['compile_s']:.1f} s" if r.get("compile_s") else ""
            log(f"round {k + 1} {system:15s}: median {r['median_ms']:8.1f} ms, min {r['min_ms']:8.1f}, "
                f"max {r['max_ms']:8.1f}, peak RSS {r['peak_rss_mb']:5.0f} MiB{extra}; "
                f"{clean}/{len(r['other_load'])} steps clean, others used up to {max(r['other_load']):.2f} cores "
                f"(waited {waited:.0f} s)")
        round_s = time.perf_counter() - round_start

    # The same computation.
    g, p = rounds["granule"][0], rounds["pytorch-eager"][0]
    if w.task in ("grad", "train"):
        trainable = trainable_of(m.program)
        if trainable != sorted(p["trainable"]):
            only_g = sorted(set(trainable) - set(p["trainable"]))
            only_t = sorted(set(p["trainable"]) - set(trainable))
            check = {"ok": False, "trainable_differ": {"only_granule": only_g[:5], "only_pytorch": only_t[:5]}}
        else:
            torch_grads = OUT / f"{m.tag}.pytorch-grads.safetensors"
            check = compare_grads(granule_grads, torch_grads, trainable)
            if not check["ok"]:
                log(f"check: float32 gradients differ beyond the tolerance (worst {check['grad_worst'][0][0]} "
                    f"{check['grad_worst'][0][1]:.1e}); both against PyTorch in float64")
                f64 = OUT / f"{m.tag}.pytorch-f64-grads.safetensors"
                run([sys.executable, ROOT / "bench" / "torch_step.py", "--spec", m.spec, "--weights", m.weights,
                     "--batch", m.batch_file, "--function", "grad", "--threads", args.threads, "--grads-out", f64,
                     "--check-only", "--float64"], env=env)
                check["float64"] = compare_with_float64(granule_grads, torch_grads, f64, trainable)
                check["ok"] = check["float64"]["ok"]
            check["trainable_tensors"] = len(trainable)
            check["trainable_elements"] = int(sum(int(np.prod(s)) for n, _, s, role in function_params(m.program, "loss_grad")
                                                  if role == "trainable"))
        if w.task == "train":
            step_rel = abs(g["loss"] - p["loss"]) / abs(p["loss"])
            check["train_step_loss_rel_diff"] = step_rel
            check["ok"] = check["ok"] and step_rel <= LOSS_RTOL
    elif w.task == "loss":
        loss_rel = abs(g["loss"] - p["loss"]) / abs(p["loss"])
        check = {"loss_granule": g["loss"], "loss_pytorch": p["loss"], "loss_rel_diff": loss_rel, "ok": loss_rel <= LOSS_RTOL}
    else:
        t_tokens = json.loads((OUT / f"{m.tag}.pytorch-tokens.json").read_text())
        same = g["tokens"] == t_tokens
        check = {"tokens_equal": same, "generated_tokens": [len(t) for t in g["tokens"]], "pytorch_cache_check": p["check"],
                 "ok": same and bool(p["check"] and p["check"]["ok"])}
    if "pytorch-compile" in rounds and rounds["pytorch-compile"]:
        c = rounds["pytorch-compile"][0]
        c_rel = abs(c["loss"] - p["loss"]) / abs(p["loss"])
        check["compiled_loss_rel_diff"] = c_rel
        check["ok"] = check["ok"] and c_rel <= COMPILED_LOSS_RTOL
    (OUT / f"{m.tag}.{w.task}.check.json").write_text(json.dumps(check, indent=2) + "\n")
    summary = {k: v for k, v in check.items() if k in ("loss_rel_diff", "gradients_compared", "zero_gradients",
                                                        "train_step_loss_rel_diff",
                                                        "tokens_equal", "generated_tokens", "compiled_loss_rel_diff")}
    if "grad_worst" in check:
        summary["worst gradient"] = f"{check['grad_worst'][0][0]} {check['grad_worst'][0][1]:.1e}"
    if "float64" in check:
        f = check["float64"]
        summary["vs float64"] = (f"Granule max {f['max_grad_err_granule']:.1e}, PyTorch float32 max "
                                 f"{f['max_grad_err_pytorch_f32']:.1e}")
    if check.get("pytorch_cache_check"):
        summary["PyTorch cache vs full forward"] = check["pytorch_cache_check"]
    log(f"check: {'ok' if check['ok'] else 'FAILED'}: {summary}")
    if not check["ok"]:
        state["failed"].append(w.name)

    # FLOPs. Generation: @encode + (decode steps run) × @decode_step.
    tokens = max(len(t) for t in g["tokens"]) if w.task == "generate" else GEN_TOKENS
    gflop, gemm_gflop, hand_gflop = m.flops(w.task, tokens)
    flop_note = None
    if hand_gflop is not None and abs(gemm_gflop - hand_gflop) / hand_gflop > 0.005:
        flop_note = f"the compiled GEMMs differ from the hand count by {100 * (gemm_gflop / hand_gflop - 1):+.1f}%"
        log(f"WARNING: {flop_note}")

    # Rows.
    steps = {s: [(t, x) for r in rs for t, x in zip(r["times_ms"], r["other_load"])] for s, rs in rounds.items() if rs}
    clean = {s: [t for t, x in st if x < args.clean_threshold] for s, st in steps.items()}
    min_clean = max(3, args.steps // 2)
    contended = any(len(c) < min_clean for c in clean.values())
    if contended:
        log(f"WARNING: fewer than {min_clean} timed steps of "
            + " and ".join(f"{s} ({len(c)})" for s, c in clean.items() if len(c) < min_clean)
            + " ran on a quiet machine; the figures use every step and include contention")
    pooled = {s: ([t for t, _ in steps[s]] if contended else clean[s]) for s in steps}
    eager_median = median(pooled["pytorch-eager"])
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    rows = []
    for system in systems:
        results = rounds.get(system) or []
        base = {"workload": w.name, "system": system, "model": m.backbone, "pet": m.pet, "batch": m.batch, "task": w.task,
                "function": w.function or "encode + decode_step", "check_ok": check["ok"]}
        if not results:
            rows.append(dict(base, median_ms=None, min_ms=None, max_ms=None, gflops=None, peak_fraction=None,
                             peak_rss_mb=None, ratio_to_eager=None, compile_s=None,
                             note=f"torch.compile did not finish within {not_compiled.get(system, 0):.0f} s "
                                  f"(limit {args.torch_compile_limit:.0f} s for compiling)"))
            continue
        times = pooled[system]
        med = median(times)
        row = dict(base, median_ms=round(med, 1), min_ms=round(min(times), 1), max_ms=round(max(times), 1),
                   gflops=round(gflop / (med / 1e3), 1), peak_fraction=round(gflop / (med / 1e3) / PEAK_GFLOPS, 3),
                   peak_rss_mb=max(r["peak_rss_mb"] for r in results),
                   ratio_to_eager=round(med / eager_median, 3) if system != "pytorch-eager" else 1.0)
        if system == "granule":
            row["compile_s"] = m.compile_s
            if m.name == "bart-base-vlpet-large" and m.batch == 4 and state.get("compile_bundled_s") is not None:
                row["compile_bundled_s"] = state["compile_bundled_s"]
        elif system == "pytorch-compile":
            row["compile_s"] = results[0]["compile_s"]
            row["round_compile_s"] = [r["compile_s"] for r in results]
        else:
            row["compile_s"] = None
        row.update({
            "steps_used": len(times), "steps_timed": len(steps[system]), "contended": contended,
            "rounds": len(results), "steps": results[0]["steps"], "warmup": results[0]["warmup"],
            "threads": results[0]["threads"], "reduced": args.steps < 10 or args.warmup < 2 or args.rounds < 3,
            "round_median_ms": [round(r["median_ms"], 2) for r in results],
            "cpu_ms": round(median([r["cpu_ms"] for r in results]), 1) if results[0].get("cpu_ms") is not None else None,
            "times_ms": [t for r in results for t in r["times_ms"]],
            "other_load_cores": [x for r in results for x in r["other_load"]],
            "model_gflop": round(gflop, 3), "gemm_gflop": round(gemm_gflop, 3),
            "hand_gemm_gflop": None if hand_gflop is None else round(hand_gflop, 3),
            "loss": results[0].get("loss"), "date": date,
        })
        if flop_note:
            row["flop_note"] = flop_note
        if w.task == "generate":
            row["generated_tokens"] = tokens
        if system == "granule":
            row["granule_source"] = state["source"]
            row["granule_built"] = state["built"]
            # `MODEL bench` says whether mapped weights stayed resident (its default releases them
            # between distant reads since 6a6d19f; rows carry the field since 589b6a2).
            if "resident_weights" in results[0]:
                row["resident_weights"] = results[0]["resident_weights"]
        else:
            row["torch"] = results[0]["torch"]
            if w.task == "train":
                row["adamw"] = f"torch.optim.AdamW ({results[0]['adamw']}), lr {results[0]['lr']}, clip_grad_norm_ 5.0"
        if system != "pytorch-eager" and len(results) == len(rounds["pytorch-eager"]):
            row["round_ratio_to_eager"] = [round(a["median_ms"] / b["median_ms"], 3)
                                           for a, b in zip(results, rounds["pytorch-eager"])]
        rows.append(row)
    # Issue 5 states its generation target against Hugging Face's generate and its training
    # targets against torch.compile as well as eager.
    for reference, field in (("hf-generate", "ratio_to_hf_generate"), ("pytorch-compile", "ratio_to_torch_compile")):
        if pooled.get(reference):
            reference_median = median(pooled[reference])
            for row in rows:
                if row.get("median_ms") is not None:
                    row[field] = round(row["median_ms"] / reference_median, 3)
    return rows


# ---- main ------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="only the BART-base VL-PET-large batch-4 training step (fwd+bwd) vs eager (< 5 min)")
    ap.add_argument("--only", action="append", default=[], metavar="SUBSTRING",
                    help="only the workloads whose name contains SUBSTRING (repeatable: any of them); see --list")
    ap.add_argument("--list", action="store_true", help="print the workloads of the full run and exit")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per system and round (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="threads for Granule and PyTorch (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and batch (default 0)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the systems (default 3)")
    ap.add_argument("--clean-threshold", type=float, default=0.2,
                    help="a timed step counts only if other processes used fewer cores than this during it (default 0.2)")
    ap.add_argument("--max-wait", type=float, default=15.0,
                    help="seconds to wait before each process for other processes to go quiet (default 15)")
    ap.add_argument("--budget", type=float, default=None,
                    help="start no further round of a workload once the run would pass this many seconds "
                         "(default 270 with --quick, else none)")
    ap.add_argument("--torch-compile", action="store_true",
                    help="also time torch.compile (training steps and forward loss; not generation)")
    ap.add_argument("--torch-compile-limit", type=float, default=600.0,
                    help="seconds torch.compile may take before its row is given up (default 600)")
    ap.add_argument("--no-build", action="store_true", help="use .build/release/granule as it is")
    ap.add_argument("--results", type=Path, default=RESULTS, help=f"where to write the rows (default {rel(RESULTS)})")
    args = ap.parse_args()
    if args.budget is None:
        args.budget = 270.0 if args.quick else 0.0
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        raise SystemExit("bench: --steps >= 1, --warmup >= 0 and --rounds >= 1")

    # The workloads, grouped by program. Model() resolves the backbone through OUT (a relative
    # path from the spec copies), so OUT must exist before the first one, even on a fresh clone.
    OUT.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[Model, list[str]]] = []
    for name, backbone, pet, bundled, derive in MODELS:
        for b in BATCHES:
            tasks = (["grad"] if (name, b) == QUICK[:2] else []) + ["train", "loss", "generate"]
            if args.quick:
                tasks = [QUICK[2]] if (name, b) == QUICK[:2] else []
            model = Model(name, backbone, pet, bundled, derive, b)
            tasks = [t for t in tasks if not args.only or any(s in Workload(model, t).name for s in args.only)]
            if tasks:
                plan.append((model, tasks))
    if args.list:
        for model, tasks in plan:
            for t in tasks:
                print(Workload(model, t).name)
        return
    if not plan:
        raise SystemExit("bench: no workload matches --only " + " ".join(repr(s) for s in args.only) + " (see --list)")

    started = time.perf_counter()
    source = git_state()
    log(f"granule source: {source}")
    log(f"workloads: {sum(len(t) for _, t in plan)} ({'quick' if args.quick else 'full run'}"
        + (f", --only {' '.join(args.only)}" if args.only else "") + ")")
    OUT.mkdir(parents=True, exist_ok=True)
    granule = ROOT / ".build" / "release" / "granule"

    # Build.
    if args.no_build:
        if not granule.exists():
            raise SystemExit(f"bench: --no-build, but {rel(granule)} does not exist")
        log(f"build: skipped (--no-build), using {rel(granule)}")
    else:
        log("build: swift build -c release --product granule")
        t = time.perf_counter()
        run(["swift", "build", "-c", "release", "--product", "granule"], env=swift_env())
        log(f"build: done in {time.perf_counter() - t:.1f} s")
    state = {"source": source, "failed": [], "compile_bundled_s": None,
             "built": datetime.datetime.fromtimestamp(granule.stat().st_mtime).astimezone().isoformat(timespec="seconds")}

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if args.torch_compile:
        # A fresh inductor cache per run: the first round's compile time is a cold compile.
        env["TORCHINDUCTOR_CACHE_DIR"] = str(OUT / f"inductor-cache-{os.getpid()}")
    systems = ["granule", "pytorch-eager"]
    rows: list[dict] = []
    weights_done: set[str] = set()
    for model, tasks in plan:
        # Compile time of the bundled spec (BART-base VL-PET-large, as the first version of this script).
        if model.name == QUICK[0] and model.batch == 4 and state["compile_bundled_s"] is None:
            bundled_program = OUT / "model"
            waited, _ = wait_quiet(args.max_wait)
            log(f"compile: granule compile {rel(model.bundled)} -o {rel(bundled_program)} (after waiting {waited:.0f} s)")
            t = time.perf_counter()
            with OtherLoad() as load:
                run([granule, "compile", model.bundled, "-o", bundled_program])
            state["compile_bundled_s"] = round(time.perf_counter() - t, 2)
            log(f"compile: {state['compile_bundled_s']:.2f} s (wall); other processes used {load.cores:.2f} cores meanwhile")
        model.write_spec()
        waited, _ = wait_quiet(args.max_wait)
        t = time.perf_counter()
        with OtherLoad() as load:
            run([granule, "compile", model.spec, "-o", model.program])
        model.compile_s = round(time.perf_counter() - t, 2)
        model.compile_other_load = round(load.cores, 2)
        log(f"compile: {rel(model.spec)} in {model.compile_s:.2f} s (wall; other processes used {load.cores:.2f} cores)")
        model.read_stats(granule)
        log("flops (granule stats): " + ", ".join(f"@{f} {v:.3f}" for f, v in model.stats.items()) + " GFLOP")
        if model.name not in weights_done:
            # `granule init` is deterministic: a file made by the same granule binary from the same
            # spec (batch size aside) and seed is reused.
            key = json.dumps({"spec": dict(model.spec_dict, batch=None, description=None), "seed": args.seed,
                              "granule": state["built"], "filled": FILL_VERSION}, sort_keys=True)
            stamp = model.weights.with_suffix(".key.json")
            if model.weights.exists() and stamp.exists() and stamp.read_text() == key:
                log(f"init: reusing {rel(model.weights)} (same granule binary, spec and seed {args.seed})")
            else:
                log(f"init: random weights for {model.name}, seed {args.seed}")
                t = time.perf_counter()
                stamp.unlink(missing_ok=True)
                run([granule, "init", model.spec, "--seed", args.seed, "-o", model.weights])
                filled = in_child(fill_zero_pet_matrices, model.weights, args.seed)
                if filled:
                    log(f"init: {filled} zero-initialised PET matrices filled with N(0, 0.02²)")
                stamp.write_text(key)
                log(f"init: {time.perf_counter() - t:.1f} s, {model.weights.stat().st_size / 2**20:.0f} MiB")
            weights_done.add(model.name)
        batch = make_batch(model.spec_dict, model.config, args.seed)
        save_file(batch, str(model.batch_file))
        for task in tasks:
            w = Workload(model, task)
            use = systems + (["pytorch-compile"] if args.torch_compile and task != "generate" else [])
            use += ["hf-generate"] if task == "generate" else []
            rows += measure(w, args, env, use, granule, started, state)
            args.results.write_text(json.dumps(rows, indent=2) + "\n")       # after every workload

    # Table.
    print()
    print(f"{'workload':66s} {'system':15s} {'median':>9s} {'min':>9s} {'max':>9s} {'GFLOP/s':>8s} {'%peak':>6s} "
          f"{'RSS MiB':>8s} {'ratio':>6s} {'compile s':>9s}")
    for r in rows:
        if r["median_ms"] is None:
            print(f"{r['workload']:66s} {r['system']:15s} {r['note']}")
            continue
        c = f"{r['compile_s']:9.1f}" if r.get("compile_s") is not None else f"{'-':>9s}"
        print(f"{r['workload']:66s} {r['system']:15s} {r['median_ms']:9.1f} {r['min_ms']:9.1f} {r['max_ms']:9.1f} "
              f"{r['gflops']:8.1f} {100 * r['peak_fraction']:5.1f}% {r['peak_rss_mb']:8.0f} {r['ratio_to_eager']:6.3f} {c}"
              + ("" if r["check_ok"] else "  CHECK FAILED") + ("  (contended)" if r["contended"] else ""))
    if state["compile_bundled_s"] is not None:
        print(f"compile of the bundled {QUICK[0]}.json (with dropout): {state['compile_bundled_s']:.2f} s")
    print(f"wrote {rel(args.results.resolve())} ({len(rows)} rows) in {time.perf_counter() - started:.0f} s")
    if state["failed"]:
        print("CHECK FAILED (Granule and PyTorch do not compute the same thing) for: " + "; ".join(state["failed"]),
              file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
