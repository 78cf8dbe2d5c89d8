"""How long `runlab runs list` takes over 10,000 run folders, measured as a user sees it.

Times the whole process (interpreter start, imports, scan, table) several times and
reports the median; the target is under 2 s on a 2-core machine.

    python benchmarks/bench_runs_list.py [--runs 10000] [--repeats 5]

Writes benchmarks/results/runs_list.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 2.0
RESULTS = Path(__file__).parent / "results"


def make_runs(root: Path, n: int, seed: int = 0) -> None:
    """`n` finished runs like the trainer leaves them: 1/5 manual, the rest in 20 sweeps."""
    rng = random.Random(seed)
    statuses = ["completed"] * 8 + ["failed", "interrupted"]
    for i in range(n):
        name = f"vae-b{i % 7}"
        run_id = f"{name}-20261128-{i // 60 % 24:02d}{i % 60:02d}{i % 60:02d}-{i:04x}"
        sweep = None if i % 5 == 0 else f"sweep{i % 20}"
        run_dir = root / ("manual" if sweep is None else f"sweeps/{sweep}") / run_id
        (run_dir / "checkpoints").mkdir(parents=True)
        loss, acc = rng.uniform(0.1, 2.0), rng.uniform(0.5, 1.0)
        info = {
            "id": run_id,
            "name": name,
            "status": rng.choice(statuses),
            "seed": i % 3,
            "created": f"2026-11-28T10:{i % 60:02d}:00.000+00:00",
            "started": f"2026-11-28T10:{i % 60:02d}:01.000+00:00",
            "ended": f"2026-11-28T11:{i % 60:02d}:01.000+00:00",
            "duration_s": 3600.0,
            "host": "bench-host",
            "pid": 100000 + i,
            "heartbeat": 1796292900.5,
            "command": ["runlab", "train", "configs/vae.yaml"],
            "git": {"commit": "0" * 40, "branch": "main", "dirty": False, "untracked": []},
            "versions": {"python": "3.11.7", "torch": "2.5.0", "runlab": "0.1.0"},
            "devices": ["cpu"],
            "sweep": None
            if sweep is None
            else {
                "name": sweep,
                "setting": f"s{i % 9:03d}",
                "trial": i,
                "params": {"loss.beta": i % 3},
            },
            "ensemble": None,
            "epoch": 20,
            "step": 2000,
            "summary": {
                m: {
                    "final": v,
                    "min": v * 0.9,
                    "max": v * 2,
                    "best": v,
                    "final_step": 2000,
                    "best_step": 1900,
                }
                for m, v in [
                    ("train/loss", loss),
                    ("val/loss", loss * 1.1),
                    ("val/acc", acc),
                    ("lr", 1e-3),
                    ("hparam/beta", 1.0),
                ]
            },
            "error": None,
        }
        (run_dir / "run.json").write_text(json.dumps(info, indent=2))
        (run_dir / "config.yaml").write_text(
            f"name: {name}\nseed: {i % 3}\nmodel: {{name: vae, latent_dim: {2 ** (i % 4 + 1)}}}\n"
            f"loss: {{name: elbo, beta: {i % 3}}}\noptimizer: {{name: adamw, lr: 0.001}}\n"
        )


def list_command() -> list[str]:
    """The console script when installed with the runs commands wired, else the sub-app."""
    exe = shutil.which("runlab")
    if exe:
        probe = subprocess.run([exe, "runs", "list", "--help"], capture_output=True)
        if probe.returncode == 0:
            return [exe, "runs", "list"]
    return [sys.executable, "-c", "from runlab.runs.cli import app; app()", "list"]


def time_list(cmd: list[str], root: Path, repeats: int) -> list[float]:
    """Wall time of each of `repeats` whole-process runs (after one warm-up)."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        done = subprocess.run([*cmd, str(root)], capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
        if i:  # the first run warms the page cache, as on a machine that has just trained
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cmd = list_command()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        make_runs(root, args.runs)
        print(f"made {args.runs} runs in {time.perf_counter() - t0:.1f} s")
        times = time_list(cmd, root, args.repeats)
    median = statistics.median(times)
    verdict = "OK" if median < TARGET_S else "TOO SLOW"
    print(
        f"runs list over {args.runs} runs: median {median:.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeats} repeats) "
        f"target < {TARGET_S} s: {verdict}"
    )
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": "runs_list",
        "runs": args.runs,
        "repeats": args.repeats,
        "median_s": median,
        "times_s": times,
        "target_s": TARGET_S,
        "command": cmd,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (RESULTS / "runs_list.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
