#!/usr/bin/env python3
"""One core, GEMMs with few rows or a small B: OpenBLAS, Granule's kernel and PyTorch (torch.mm) in one run.

The shapes are BART-base's GEMMs as one thread of Granule's pool gets them (a GEMM wider than
tall is split by columns over the two threads). A·Bᵀ ("nt", gr_sgemm_nt): the decoder at batch 4
(40 rows) and batch 32 (320 rows, the code generator leaves these to OpenBLAS), generation steps
(4 and 32 rows), the LM head, attention scores, and the encoder's 224 rows for contrast; the code
generator sends A·Bᵀ with at most 64 rows per call and k <= 1024 to gr_sgemm_nt
(ProgramEmitter.usesFewRowKernel). A·B and Aᵀ·B ("nn", "tn", gr_sgemm_small): attention's per-head
products with the probabilities and a generation step's; the code generator sends those with at
most 64 rows per call and a B of at most 8192 floats to gr_sgemm_small (usesSmallKernel). Each
shape multiplies the same matrices over and over (in cache).

    bench/gemm_few_rows.py [--python PY]      prints a Markdown table; writes out/bench/gemm_few_rows.json
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench"

# (layout, rows, k, columns per thread, what it is)
SHAPES = [
    ("nt", 4, 768, 384, "generation step, b4: q/k/v/o projection"),
    ("nt", 4, 768, 25233, "generation step, b4: LM head"),
    ("nt", 32, 768, 384, "generation step, b32: q/k/v/o projection"),
    ("nt", 32, 768, 25233, "generation step, b32: LM head"),
    ("nt", 40, 768, 384, "decoder, b4: q/k/v/o projection"),
    ("nt", 40, 768, 1536, "decoder, b4: FFN up"),
    ("nt", 40, 3072, 384, "decoder, b4: FFN down (k > 1024: OpenBLAS)"),
    ("nt", 40, 768, 25233, "decoder, b4: LM head"),
    ("nt", 10, 64, 56, "cross-attention scores, one head"),
    ("nt", 56, 64, 56, "encoder self-attention scores, one head"),
    ("nt", 64, 768, 384, "64 rows: the threshold"),
    ("nt", 128, 768, 384, "128 rows (OpenBLAS)"),
    ("nt", 224, 768, 384, "encoder, b4: 224 rows (OpenBLAS)"),
    ("nn", 56, 56, 64, "encoder self-attention P·V and dS·K, one head"),
    ("tn", 56, 56, 64, "encoder self-attention Pᵀ·dO and dSᵀ·Q, one head"),
    ("nn", 10, 56, 64, "cross-attention P·V, one head"),
    ("tn", 56, 10, 64, "cross-attention Pᵀ·dO, one head"),
    ("nn", 10, 10, 64, "decoder self-attention P·V, one head"),
    ("nn", 1, 11, 64, "generation step: self-attention P·V, one head"),
    ("nn", 1, 56, 64, "generation step: cross-attention P·V, one head"),
]


def build() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    program = OUT / "gemm_few_rows"
    sources = [ROOT / "bench" / "gemm_few_rows.c", ROOT / "Runtime" / "src" / "gemm.c", ROOT / "Runtime" / "src" / "gemm_small.c"]
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-I", ROOT / "Runtime" / "include", *sources,
                    "-o", program, "-lopenblas", "-lm"], check=True)
    return program


def torch_gflops(python: str) -> dict:
    script = r"""
import json, sys, time, torch
torch.set_num_threads(1)
for layout, m, k, n in json.loads(sys.argv[1]):
    a = torch.randn(k, m).t() if layout == "tn" else torch.randn(m, k)
    b = torch.randn(n, k).t() if layout == "nt" else torch.randn(k, n)
    calls = int(3e8 / (2 * m * k * n)) + 2
    best = 1e30
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t) / calls)
    print(json.dumps({"layout": layout, "m": m, "k": k, "n": n, "torch_gflops": round(2 * m * k * n / best * 1e-9, 2)}), flush=True)
"""
    shapes = json.dumps([[layout, m, k, n] for layout, m, k, n, _ in SHAPES])
    done = subprocess.run([python, "-c", script, shapes], check=True, capture_output=True, text=True)
    return {(r["layout"], r["m"], r["k"], r["n"]): r["torch_gflops"] for r in map(json.loads, done.stdout.splitlines())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=os.environ.get("BENCH_PYTHON", "/work/venv/bin/python"),
                        help="a Python with torch (default: $BENCH_PYTHON, else /work/venv/bin/python)")
    args = parser.parse_args()
    program = build()
    arguments = [str(x) for layout, m, k, n, _ in SHAPES for x in (layout, m, k, n)]
    done = subprocess.run([program, *arguments], check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    torch = torch_gflops(args.python) if Path(args.python).exists() else {}
    print("| layout | rows × k × columns | what | OpenBLAS GFLOP/s | Granule | PyTorch (MKL) | Granule / OpenBLAS |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row, (_, _, _, _, what) in zip(rows, SHAPES):
        key = (row["layout"], row["m"], row["k"], row["n"])
        row["what"] = what
        row["torch_gflops"] = torch.get(key)
        torch_text = f"{row['torch_gflops']:.1f}" if row["torch_gflops"] else "–"
        print(f"| {row['layout']} | {row['m']} × {row['k']} × {row['n']} | {what} | {row['openblas_gflops']:.1f} | "
              f"{row['granule_gflops']:.1f} | {torch_text} | {row['granule_gflops'] / row['openblas_gflops']:.2f} |")
    (OUT / "gemm_few_rows.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
