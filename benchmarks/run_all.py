"""Every runlab benchmark in one go, with one table of ratios.

    python benchmarks/run_all.py            # the full set (about 15-20 min on 2 cores)
    python benchmarks/run_all.py --quick    # fewer repeats (about 6-8 min)
    python benchmarks/run_all.py --only step,e2e

Runs, one after another so they never compete for the cores: start-up, per-step
overhead, data path, end to end + memory (this folder's bench_*.py with a `run()`),
then the other benchmarks of this folder as subprocesses (runs list, analysis, sweep,
ensemble, and any further bench_*.py: with `--quick` when they take it, else with
smaller sizes in quick mode), whose headline figures are read back from their JSON. Prints a Markdown table (for
the README's Performance section) and writes benchmarks/results/run_all.json
(run_all_only.json with --only).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from common import BENCH, RESULTS, Row, child_env, machine, save, table

OWN = ("startup", "step", "data", "e2e")  # bench_<name>.py, each with run(quick) -> rows
# Other benchmarks: script, its result file, extra arguments in quick mode (when the
# script has no --quick of its own), and how to read its headline figures.
Headlines = Callable[[dict[str, Any]], list[Row]]


def _runs_list(d: dict[str, Any]) -> list[Row]:
    target = d.get("target_s", 2.0)
    return [Row("runs list", f"`runlab runs list`, {d['runs']:,} runs", d["median_s"],
                target=f"<= {target:g} s", passed=d["median_s"] <= target)]


def _analysis(d: dict[str, Any]) -> list[Row]:
    target = d.get("target_s", 5.0)
    return [Row("analysis", f"load + aggregate {d['runs']:,} runs ({d['metric_rows']:,} rows)",
                d["total_s"], target=f"<= {target:g} s", passed=d["total_s"] <= target)]


def _sweep(d: dict[str, Any]) -> list[Row]:
    o, f, w = d["overhead"], d["first_start"], d["workers"]
    return [
        Row("sweep", "sweep overhead per run", o["overhead_per_run_s"],
            target=f"<= {o['target_s']:g} s", passed=o["overhead_per_run_s"] <= o["target_s"]),
        Row("sweep", f"`runlab sweep` to first run, {f['settings']:,} settings", f["to_first_run_s"],
            target=f"<= {f['target_s']:g} s", passed=f["to_first_run_s"] <= f["target_s"]),
        Row("sweep", "2 workers over 1 (speed-up)", w["speedup"], unit="x",
            target=f">= {w['target']:g}x", passed=w["speedup"] >= w["target"]),
    ]


def _rows(d: dict[str, Any]) -> list[Row]:
    """Benchmarks that save with common.save: keep the rows that have a target."""
    rows = [Row(**{k: v for k, v in r.items() if k != "ratio"}) for r in d["rows"]]
    return [r for r in rows if r.target] or rows


OTHERS: dict[str, tuple[str, str, list[str], Headlines]] = {
    "runs_list": ("bench_runs_list.py", "runs_list.json", ["--repeats", "3"], _runs_list),
    "analysis": ("bench_analysis.py", "bench_analysis.json", [], _analysis),
    "sweep": ("bench_sweep.py", "bench_sweep.json", ["--runs", "8"], _sweep),
    "ensemble": ("bench_ensemble.py", "bench_ensemble.json", ["--ks", "1,16", "--models", "mlp"], _rows),
}


def discovered() -> dict[str, tuple[str, str, list[str], Headlines]]:
    """bench_*.py scripts this file does not know yet: run them too (`--quick` when they
    take it) and read their rows from results/<name>.json (the common.save format)."""
    known = {f"bench_{n}.py" for n in OWN} | {script for script, *_ in OTHERS.values()}
    return {p.stem.removeprefix("bench_"): (p.name, f"{p.stem.removeprefix('bench_')}.json", [], _rows)
            for p in sorted(BENCH.glob("bench_*.py")) if p.name not in known}


def run_own(name: str, quick: bool) -> list[Row]:
    module = importlib.import_module(f"bench_{name}")
    rows = module.run(quick)
    save(name, rows)
    return rows


def run_other(name: str, quick: bool) -> list[Row]:
    script, result, quick_args, headlines = {**discovered(), **OTHERS}[name]
    path = BENCH / script
    if not path.exists():
        print(f"  ({script} not present: skipped)")
        return []
    args: list[str] = []
    if quick:
        helptext = subprocess.run([sys.executable, str(path), "--help"], capture_output=True,
                                  text=True, env=child_env()).stdout
        args = ["--quick"] if "--quick" in helptext else quick_args
    out = RESULTS / result
    before = out.stat().st_mtime if out.exists() else 0.0
    proc = subprocess.run([sys.executable, str(path), *args], env=child_env(), text=True,
                          capture_output=True)
    print(proc.stdout.rstrip())
    if proc.returncode != 0 or not out.exists() or out.stat().st_mtime == before:
        msg = f"exit {proc.returncode}, no fresh {result}"
        print(f"  {script} failed ({msg}):\n{proc.stderr[-2000:]}")
        return [Row(name, f"{script}: FAILED ({msg})", float("nan"), passed=False)]
    try:
        return headlines(json.loads(out.read_text()))
    except (KeyError, TypeError, ValueError) as e:  # its format changed: point at the file
        print(f"  could not read headline figures from {result}: {e!r}")
        return [Row(name, f"{script}: see benchmarks/results/{result}", float("nan"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    ap.add_argument("--only", help=f"comma list from: {', '.join((*OWN, *OTHERS, *discovered()))}")
    args = ap.parse_args()
    others = [*OTHERS, *discovered()]
    chosen = args.only.split(",") if args.only else [*OWN, *others]
    unknown = set(chosen) - {*OWN, *others}
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    info = machine()
    t0 = time.perf_counter()
    rows: list[Row] = []
    for name in chosen:
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        got = run_own(name, args.quick) if name in OWN else run_other(name, args.quick)
        if name in OWN:
            print(table(got))
        print(f"   ({time.perf_counter() - t:.0f} s)", flush=True)
        rows += got
    elapsed = time.perf_counter() - t0
    command = " ".join(["python", "benchmarks/run_all.py", *sys.argv[1:]])
    print(f"\n## runlab benchmarks: {info['date']}, {info['cpus']} CPUs, {info['threads']} torch "
          f"thread, torch {info['torch']}, load average at start {info['loadavg_at_start']}\n")
    print(table(rows))
    print(f"\n`{command}` took {elapsed / 60:.1f} min")
    failed = [r.what for r in rows if r.passed is False]
    print(f"{len(failed)} target(s) missed" + (": " + "; ".join(failed) if failed else ""))
    save("run_all" if not args.only else "run_all_only", rows, machine=info, command=command, elapsed_s=round(elapsed, 1),
         quick=args.quick)


if __name__ == "__main__":
    main()
