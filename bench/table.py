#!/usr/bin/env python3
"""Print bench/results.json (or another results file) as the Markdown table of BENCHMARKS.md.

    python bench/table.py [bench/results.json]

One line per row: workload, system, median / min / max ms, GFLOP/s and its fraction of the 232
GFLOP/s peak, peak RSS, ratio to PyTorch eager, ratio to torch.compile (workloads with a compiled
torch.compile row), ratio to Hugging Face generate (generation rows), compile time, and the model
GFLOP of the row;
rows whose figures include contention are marked "(c)", rows whose equivalence check failed
"CHECK FAILED".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fmt(value, spec: str, dash: str = "–") -> str:
    return dash if value is None else format(value, spec)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "results.json"
    rows = json.loads(path.read_text())
    print("| workload | system | median ms | min ms | max ms | GFLOP/s | % of 232 | peak RSS MiB | ratio to eager "
          "| ratio to torch.compile | ratio to HF generate | compile s | GFLOP |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("median_ms") is None:
            print(f"| {r['workload']} | {r['system']} | {r.get('note', 'no figures')} ||||||||||| ")
            continue
        ratio = fmt(r["ratio_to_eager"], ".2f")
        if r["system"] != "pytorch-eager":
            ratio = f"**{ratio}**"
        marks = ("" if r.get("check_ok", True) else " CHECK FAILED") + (" (c)" if r.get("contended") else "")
        print(f"| {r['workload']} | {r['system']}{marks} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['max_ms']:.1f} "
              f"| {r['gflops']:.1f} | {100 * r['peak_fraction']:.1f}% | {r['peak_rss_mb']:.0f} | {ratio} "
              f"| {fmt(r.get('ratio_to_torch_compile'), '.2f')} | {fmt(r.get('ratio_to_hf_generate'), '.2f')} "
              f"| {fmt(r.get('compile_s'), '.1f')} | {fmt(r.get('model_gflop'), '.1f')} |")


if __name__ == "__main__":
    main()
