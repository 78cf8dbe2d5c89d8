"""Benchmark: load and aggregate 1,000 synthetic runs x 1,000 steps x 4 metrics.

    python benchmarks/bench_analysis.py [--runs 1000] [--steps 1000] [--keep DIR]

Target (issue 6): loading + aggregating under 5 s on a 2-core machine. Prints the timings
and writes them to benchmarks/results/bench_analysis.json. Generating the runs is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from runlab.analysis import aggregate, load_runs
from runlab.analysis.synthetic import make_run

METRICS = ("train/loss", "val/loss", "val/acc", "lr")


def generate(root: Path, n_runs: int, n_steps: int) -> None:
    """A 2-parameter grid x seeds, like a sweep folder."""
    def one(i: int) -> None:
        rng = np.random.default_rng(i)
        lr = [1e-4, 1e-3, 1e-2, 1e-1][i % 4]
        width = [32, 64, 128, 256, 512][i // 4 % 5]
        seed = i // 20  # 20 settings x 50 seeds
        t = np.arange(1, n_steps + 1)
        base = np.exp(-t / (200 * (1 + 10 * lr))) + 0.1 * rng.random()
        series = {
            "train/loss": base + 0.01 * rng.standard_normal(n_steps),
            "val/loss": base + 0.05 + 0.01 * rng.standard_normal(n_steps),
            "val/acc": 1 - base / 2,
            "lr": np.full(n_steps, lr),
        }
        make_run(root, f"bench-{i:04d}", {"seed": seed, "optimizer": {"name": "adamw", "lr": lr},
                 "model": {"name": "mlp", "width": width}}, series)

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, range(n_runs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="reuse/keep generated runs in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        if not (root.exists() and any(root.iterdir())):
            t0 = time.perf_counter()
            generate(root, args.runs, args.steps)
            print(f"generated {args.runs} runs in {time.perf_counter() - t0:.1f} s (not timed)")

        load_before = os.getloadavg()[0]  # other work on the machine skews wall time
        c0, t0 = time.process_time(), time.perf_counter()
        rs = load_runs(root)
        t_load = time.perf_counter() - t0
        t1 = time.perf_counter()
        table = aggregate(rs, "val/loss", stat="final")
        t_agg = time.perf_counter() - t1
        cpu = time.process_time() - c0

    total = t_load + t_agg
    result = {
        "runs": len(rs), "metric_rows": len(rs.metrics), "groups": len(table),
        "load_s": round(t_load, 3), "aggregate_s": round(t_agg, 3), "total_s": round(total, 3),
        "cpu_s": round(cpu, 3), "target_s": 5.0, "passed": total < 5.0,
        "cpus": os.cpu_count(), "load_average_1min": round(load_before, 2),
        "python": platform.python_version(),
    }
    print(f"load_runs: {t_load:.2f} s ({len(rs)} runs, {len(rs.metrics):,} metric rows)")
    print(f"aggregate: {t_agg:.3f} s ({len(table)} groups)")
    print(f"total:     {total:.2f} s  (target < 5 s: {'PASS' if total < 5 else 'FAIL'}); "
          f"CPU time {cpu:.2f} s; load average before: {load_before:.2f} on {os.cpu_count()} CPUs")
    out = Path(__file__).parent / "results" / "bench_analysis.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
