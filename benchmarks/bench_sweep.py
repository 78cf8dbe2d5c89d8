"""Sweep scheduling benchmarks; prints a table and writes benchmarks/results/bench_sweep.json.

    python benchmarks/bench_sweep.py [--runs 20] [--busy-s 1.0]

(a) overhead per run beyond the run's own time (1 worker, stand-in runs)   target <= 0.3 s
(b) `runlab sweep` to the first run's start, 1,000-setting grid, real CLI  target <= 3 s
(c) throughput of 2 local workers over 1, single-threaded CPU-bound runs   target >= 1.7x
(a) and (c) use the stand-in trainer tests/sweep/fake_train.py, so they time the
scheduler, not torch's start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FAKE = (sys.executable, str(ROOT / "tests" / "sweep" / "fake_train.py"))
BASE = {"name": "bench", "data": {"name": "moons", "n_samples": 64},
        "model": {"name": "mlp", "hidden": [8]}, "optimizer": {"name": "adam", "lr": 0.001},
        "trainer": {"max_epochs": 1, "device": "cpu"}}


def write(folder: Path, name: str, parameters: dict, workers: int = 1, fake: dict | None = None,
          seeds: int = 1) -> Path:
    base = dict(BASE, fake=fake) if fake is not None else BASE
    (folder / f"{name}-base.yaml").write_text(yaml.safe_dump(base))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "base": f"{name}-base.yaml", "name": name, "seeds": seeds, "parameters": parameters,
        "metric": {"name": "val/loss", "goal": "minimize"},
        "launcher": {"name": "local", "workers": workers}}))
    return path


def timed_sweep(path: Path, runs: Path) -> float:
    """Wall time of an in-process `run_sweep` with the stand-in trainer."""
    import runlab.sweep.settings as settings
    from runlab.sweep import run_sweep

    settings._validator = lambda: None  # the stand-in's `fake:` key is not a runlab key
    start = time.perf_counter()
    code = run_sweep(path, runs_dir=runs, train=FAKE, live=False)
    if code != 0:
        raise RuntimeError(f"sweep {path} exited {code}")
    return time.perf_counter() - start


def standalone(tmp: Path, fake: dict, n: int = 5) -> float:
    """Median wall time of the stand-in run launched directly (the run's own time)."""
    cfg = tmp / "standalone.yaml"
    cfg.write_text(yaml.safe_dump(dict(BASE, fake=fake)))
    times = []
    for i in range(n):
        start = time.perf_counter()
        subprocess.run([*FAKE, str(cfg), "seed=0", "--run-dir", str(tmp / f"alone{i}"),
                        "--sweep-info", "{}"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def overhead(tmp: Path, runs: int) -> dict:
    fake = {"epoch_s": 0.0}
    own = standalone(tmp, fake)
    path = write(tmp, "overhead", {"optimizer.lr": [1e-3 * (i + 1) for i in range(runs)]},
                 fake=fake)
    total = timed_sweep(path, tmp / "runs")
    return {"runs": runs, "run_own_s": own, "sweep_s": total,
            "overhead_per_run_s": total / runs - own, "target_s": 0.3}


def first_start(tmp: Path) -> dict:
    params = {"optimizer.lr": [1e-4 * (i + 1) for i in range(10)],
              "data.batch_size": [8 * (i + 1) for i in range(10)],
              "model.hidden": [[4 * (i + 1)] for i in range(10)]}
    path = write(tmp, "big", params)
    runs = tmp / "runs"
    first_log = runs / "sweeps" / "big" / "logs" / "big-s000-s0.log"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "runlab", "sweep", str(path), "--runs-dir",
                             str(runs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    while not first_log.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"runlab sweep exited {proc.returncode}: {proc.stderr.read()}")
        time.sleep(0.005)
    took = time.perf_counter() - start
    cpu = cpu_seconds(proc.pid)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(120)
    return {"settings": 1000, "to_first_run_s": took, "cpu_s": cpu, "target_s": 3.0,
            "load_avg_1m": os.getloadavg()[0]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process: its wall time on an idle machine, roughly."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_speedup(tmp: Path, runs: int, busy_s: float) -> dict:
    fake = {"epoch_s": busy_s, "busy": True}
    lrs = [1e-3 * (i + 1) for i in range(runs)]
    one = timed_sweep(write(tmp, "w1", {"optimizer.lr": lrs}, 1, fake), tmp / "runs")
    two = timed_sweep(write(tmp, "w2", {"optimizer.lr": lrs}, 2, fake), tmp / "runs")
    return {"runs": runs, "busy_s_per_run": busy_s, "one_worker_s": one, "two_workers_s": two,
            "speedup": one / two, "cpus": len(os.sched_getaffinity(0)),
            "load_avg_1m": os.getloadavg()[0], "target": 1.7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy-s", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"overhead": overhead(Path(tmp), args.runs),
                   "first_start": first_start(Path(tmp)),
                   "workers": workers_speedup(Path(tmp), 8, args.busy_s)}
    o, f, w = results["overhead"], results["first_start"], results["workers"]
    print(f"(a) overhead per run   {o['overhead_per_run_s']:.3f} s  (target <= 0.3; "
          f"run's own {o['run_own_s']:.3f} s, {o['runs']} runs in {o['sweep_s']:.2f} s)")
    print(f"(b) to first run       {f['to_first_run_s']:.2f} s   (target <= 3; 1,000 settings; "
          f"{f['cpu_s']:.2f} s CPU, load {f['load_avg_1m']:.1f})")
    print(f"(c) 2 workers vs 1     {w['speedup']:.2f}x    (target >= 1.7; {w['one_worker_s']:.1f}"
          f" s vs {w['two_workers_s']:.1f} s, {w['cpus']} CPUs, load {w['load_avg_1m']:.1f})")
    out = ROOT / "benchmarks" / "results" / "bench_sweep.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
