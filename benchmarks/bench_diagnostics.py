"""What the diagnostics cost: `runlab train configs/vae_mnist1d.yaml` with its `diagnostics:`
(latent_space, reconstructions, samples every 5 epochs, jacobian every 10) against the
same config with `diagnostics=[]`.

    python benchmarks/bench_diagnostics.py [--quick] [--repeats N] [--config PATH]

Whole processes, one torch thread each, alternating (A B B A ...) after one untimed
round that also fills the MNIST-1D cache. Per contender: median wall and CPU time of the
process, and the in-run time: the `time` of metrics.csv's last row (seconds from the run's
start to its last logged value), which leaves out interpreter start-up, imports and the
end-of-run plots. The time spent inside the diagnostics is read from metrics.csv too: at
each epoch end their `diag/*` rows are written after the epoch's `val/*` rows, so the gap
between the two is what the diagnostics took. Target: wall overhead <= 15%.
Writes benchmarks/results/diagnostics.json.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from common import (
    ROOT,
    Proc,
    Row,
    bin_path,
    check,
    interleave,
    median,
    ratio_row,
    run_process,
    save,
    table,
)

CONFIG = ROOT / "configs" / "vae_mnist1d.yaml"
MAX_RATIO = 1.15


def in_run_times(run_dir: Path) -> tuple[float, float]:
    """(seconds to the last logged row, seconds spent in diagnostics) from metrics.csv."""
    val_time: dict[int, float] = {}
    diag_time: dict[int, float] = {}
    last = 0.0
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            step, t = int(row["step"]), float(row["time"])
            last = t
            if row["metric"].startswith("val/"):
                val_time.setdefault(step, t)
            elif row["metric"].startswith("diag/"):
                diag_time[step] = t
    spent = sum(t - val_time[s] for s, t in diag_time.items() if s in val_time)
    return last, spent


def run(quick: bool = False, repeats: int | None = None, config: Path = CONFIG) -> list[Row]:
    repeats = repeats or (3 if quick else 5)
    procs: dict[str, list[Proc]] = defaultdict(list)
    in_run: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = [bin_path("runlab"), "train", str(config), f"data.root={ROOT / 'data'}"]
        cmds = {"with": base, "without": [*base, "diagnostics=[]"]}

        def timed(name: str):
            def go() -> float:
                runs = tmp / name
                p = check(run_process([*cmds[name], "--runs-dir", str(runs)], cwd=ROOT), name)
                (run_dir,) = (runs / "manual").iterdir()
                procs[name].append(p)
                in_run[name].append(in_run_times(run_dir))
                shutil.rmtree(runs)
                return p.wall_s
            return go

        interleave({n: timed(n) for n in cmds}, repeats, warmup=1)
    for name in cmds:  # drop the warm-up round
        procs[name], in_run[name] = procs[name][1:], in_run[name][1:]
    wall = {n: [p.wall_s for p in ps] for n, ps in procs.items()}
    cpu = {n: [p.cpu_s for p in ps] for n, ps in procs.items()}
    loop = {n: [t for t, _ in ts] for n, ts in in_run.items()}
    spent = [s for _, s in in_run["with"]]
    what = f"`runlab train {config.name}`, diagnostics against none"
    rows = [
        ratio_row("diagnostics", f"{what}, wall", wall["with"], wall["without"], "no diagnostics",
                  max_ratio=MAX_RATIO),
        ratio_row("diagnostics", f"{what}, CPU", cpu["with"], cpu["without"], "no diagnostics"),
        ratio_row("diagnostics", f"{what}, in-run time (metrics.csv)", loop["with"],
                  loop["without"], "no diagnostics"),
        Row("diagnostics", "time inside the diagnostics (metrics.csv), whole run", median(spent)),
    ]
    for r in rows:
        r.extra = {"wall_s": wall, "cpu_s": cpu, "in_run_s": loop, "diagnostics_s": spent,
                   "repeats": repeats, "config": str(config.relative_to(ROOT))}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 5")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--config", type=Path, default=CONFIG)
    args = ap.parse_args()
    rows = run(args.quick, args.repeats, args.config.resolve())
    print(table(rows))
    overhead = rows[0].ratio - 1
    print(f"\ndiagnostics add {overhead:+.1%} wall time "
          f"({rows[0].runlab:.2f} s vs {rows[0].reference:.2f} s, median of {rows[0].extra['repeats']})")
    print(f"results: {save('diagnostics', rows)}")


if __name__ == "__main__":
    main()
