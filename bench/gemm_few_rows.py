#!/usr/bin/env python3
"""One core, C = A·Bᵀ with few rows: OpenBLAS, Granule's gr_sgemm_nt and PyTorch (torch.mm) in one run.

The shapes are BART-base's A·Bᵀ GEMMs as one thread of Granule's pool gets them (a GEMM wider than
tall is split by columns over the two threads): the decoder at batch 4 (40 rows) and batch 32
(320 rows, the code generator leaves these to OpenBLAS), generation steps (4 and 32 rows), the LM
head, attention scores, and the encoder's 224 rows for contrast. The code generator sends A·Bᵀ
with at most 64 rows per call and k <= 1024 to gr_sgemm_nt (ProgramEmitter.usesFewRowKernel).

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

# (rows, k, columns per thread, what it is)
SHAPES = [
    (4, 768, 384, "generation step, b4: q/k/v/o projection"),
    (4, 768, 25233, "generation step, b4: LM head"),
    (32, 768, 384, "generation step, b32: q/k/v/o projection"),
    (32, 768, 25233, "generation step, b32: LM head"),
    (40, 768, 384, "decoder, b4: q/k/v/o projection"),
    (40, 768, 1536, "decoder, b4: FFN up"),
    (40, 3072, 384, "decoder, b4: FFN down (k > 1024: OpenBLAS)"),
    (40, 768, 25233, "decoder, b4: LM head"),
    (10, 64, 56, "cross-attention scores, one head"),
    (56, 64, 56, "encoder self-attention scores, one head"),
    (64, 768, 384, "64 rows: the threshold"),
    (128, 768, 384, "128 rows (OpenBLAS)"),
    (224, 768, 384, "encoder, b4: 224 rows (OpenBLAS)"),
]


def build() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    program = OUT / "gemm_few_rows"
    sources = [ROOT / "bench" / "gemm_few_rows.c", ROOT / "Runtime" / "src" / "gemm.c"]
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-I", ROOT / "Runtime" / "include", *sources,
                    "-o", program, "-lopenblas", "-lm"], check=True)
    return program


def torch_gflops(python: str) -> dict:
    script = r"""
import json, sys, time, torch
torch.set_num_threads(1)
for m, k, n in json.loads(sys.argv[1]):
    a, b = torch.randn(m, k), torch.randn(n, k)
    calls = int(3e8 / (2 * m * k * n)) + 2
    best = 1e30
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b.t())
        best = min(best, (time.perf_counter() - t) / calls)
    print(json.dumps({"m": m, "k": k, "n": n, "torch_gflops": round(2 * m * k * n / best * 1e-9, 2)}), flush=True)
"""
    shapes = json.dumps([[m, k, n] for m, k, n, _ in SHAPES])
    done = subprocess.run([python, "-c", script, shapes], check=True, capture_output=True, text=True)
    return {(r["m"], r["k"], r["n"]): r["torch_gflops"] for r in map(json.loads, done.stdout.splitlines())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=os.environ.get("BENCH_PYTHON", "/work/venv/bin/python"),
                        help="a Python with torch (default: $BENCH_PYTHON, else /work/venv/bin/python)")
    args = parser.parse_args()
    program = build()
    arguments = [str(x) for m, k, n, _ in SHAPES for x in (m, k, n)]
    done = subprocess.run([program, *arguments], check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    torch = torch_gflops(args.python) if Path(args.python).exists() else {}
    print("| rows × k × columns | what | OpenBLAS GFLOP/s | Granule gr_sgemm_nt | PyTorch (MKL) | Granule / OpenBLAS |")
    print("|---|---|---:|---:|---:|---:|")
    for row, (_, _, _, what) in zip(rows, SHAPES):
        key = (row["m"], row["k"], row["n"])
        row["what"] = what
        row["torch_gflops"] = torch.get(key)
        torch_text = f"{row['torch_gflops']:.1f}" if row["torch_gflops"] else "–"
        print(f"| {row['m']} × {row['k']} × {row['n']} | {what} | {row['openblas_gflops']:.1f} | "
              f"{row['granule_gflops']:.1f} | {torch_text} | {row['granule_gflops'] / row['openblas_gflops']:.2f} |")
    (OUT / "gemm_few_rows.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
