"""Benchmark: K seeds of the MNIST-1D MLPs and CNN, vectorised vs one after another.

    python benchmarks/bench_ensemble.py [--ks 1,4,16,64] [--models mlp,mlp-small,cnn] [--epochs 2]

Each (model, K, mode) runs in its own process with one torch thread: `train_seeds` is
timed from the call to its return (run folders, checkpoints and evaluation included;
the end-of-run metric plots are switched off in both modes, they cost the same per
run: both modes send them to runlab's drawing workers, which `NoDrawing` replaces),
and the process's peak RSS is read from wait4. Target (issue 8): >= 4x at K=16 for
the MLP on CPU. Prints the table, writes benchmarks/results/bench_ensemble.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from common import ROOT, Row, check, child_env, pin_threads, python_bin, run_process, save, table

MODELS = {  # the quickstart MLP, a small one (less compute per step), the built-in CNN
    "mlp": {"name": "mlp", "hidden": [256, 128]},
    "mlp-small": {"name": "mlp", "hidden": [64, 32]},
    "cnn": {"name": "cnn", "channels": [16, 32], "kernel_size": 5, "hidden": 64},
}


class NoDrawing:
    """Stands in for runlab's drawing workers: no end-of-run plots, no matplotlib."""

    def submit(self, fn, *args) -> Future:
        done: Future = Future()
        done.set_result([])
        return done


def child(model: str, k: int, vectorize: bool, epochs: int, runs: Path) -> None:
    """Train K seeds once and print the seconds `train_seeds` took."""
    pin_threads()
    import runlab.background
    from runlab.config import fill_defaults
    from runlab.ensemble.api import train_seeds

    runlab.background._executor = NoDrawing  # both modes send their plots there
    cfg = fill_defaults({
        "name": f"bench-{model}", "seed": 0,
        "data": {"name": "mnist1d", "root": str(ROOT / "data"), "batch_size": 128},
        "model": MODELS[model],
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "trainer": {"max_epochs": epochs, "device": "cpu"},
        "logging": {"console": False, "log_every_steps": 50},
    })
    t0 = time.perf_counter()
    code = train_seeds(cfg, list(range(k)), runs, vectorize=vectorize)
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(code)
    print(json.dumps({"seconds": seconds}))


def measure(model: str, k: int, vectorize: bool, epochs: int) -> tuple[float, float]:
    """(seconds in train_seeds, peak RSS MiB) of one child process."""
    with tempfile.TemporaryDirectory() as runs:
        cmd = [python_bin(), __file__, "--child", model, str(k), str(int(vectorize)), str(epochs), runs]
        proc = check(run_process(cmd, cwd=ROOT, env=child_env(), timeout_s=1800),
                     f"{model} K={k} vectorize={vectorize}")
    seconds = json.loads(proc.output.strip().splitlines()[-1])["seconds"]
    return seconds, proc.peak_rss_mib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,4,16,64")
    ap.add_argument("--models", default="mlp,mlp-small,cnn")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    rows, records = [], []
    for model in args.models.split(","):
        for k in (int(x) for x in args.ks.split(",")):
            vec_s, vec_mib = measure(model, k, True, args.epochs)
            seq_s, seq_mib = measure(model, k, False, args.epochs)
            row = Row("ensemble", f"{model} K={k}: time for K seeds", vec_s, seq_s, "one after another")
            if model.startswith("mlp") and k == 16:
                row.target, row.passed = ">= 4x faster", seq_s / vec_s >= 4
            rows.append(row)
            rows.append(Row("ensemble", f"{model} K={k}: peak RSS", vec_mib, seq_mib,
                            "one after another", unit="MiB"))
            records.append({"model": model, "k": k, "vectorised_s": vec_s, "sequential_s": seq_s,
                            "speedup": seq_s / vec_s, "vectorised_peak_mib": vec_mib,
                            "sequential_peak_mib": seq_mib})
            print(f"{model} K={k}: vectorised {vec_s:.2f} s ({vec_mib:.0f} MiB), one after another "
                  f"{seq_s:.2f} s ({seq_mib:.0f} MiB): {seq_s / vec_s:.2f}x", flush=True)
    print(table(rows))
    print(f"wrote {save('bench_ensemble', rows, records=records, epochs=args.epochs)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model, k, vec, epochs, runs = sys.argv[2:7]
        child(model, int(k), vec == "1", int(epochs), Path(runs))
    else:
        main()
