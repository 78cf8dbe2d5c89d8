"""End to end: `runlab train` against a plain PyTorch script and a Lightning script,
whole processes, 30 epochs of the MNIST-1D MLP (benchmarks/e2e/), plus peak memory.

    python benchmarks/bench_e2e.py [--quick] [--repeats N] [--epochs E]

Every process starts cold (interpreter, imports, data from the shared .npz cache,
training with validation each epoch, CSV logging, checkpoints, test) and runs on one
thread; the contenders alternate (A B C C B A ...) after one untimed warm-up round that also
fills the data cache. Reported per contender: median wall time, median CPU time (user
+ system, git's included: less sensitive to a busy machine), and median peak RSS. A
fourth contender is `runlab train` with its end-of-run plots (plots/*.png, matplotlib)
stubbed out, which shows what they cost.
Targets: runlab / plain <= 1.15, Lightning / runlab >= 1.7, runlab's peak RSS within
100 MiB of plain's.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import (
    BENCH,
    ROOT,
    Proc,
    Row,
    bin_path,
    check,
    interleave,
    median,
    python_bin,
    ratio_row,
    run_process,
    save,
    table,
)

E2E = BENCH / "e2e"
NPZ = ROOT / "data" / "mnist1d" / "mnist1d-n5000-s42-sh0.npz"
MAX_RATIO_PLAIN, MIN_SPEEDUP_LIGHTNING, MAX_EXTRA_RSS_MIB = 1.15, 1.7, 100.0


# `runlab train` with the end-of-run plots stubbed out, to show what they cost: the
# drawing workers are never started (the plots are drawn there, not in this process).
NO_PLOTS = ("import sys; from concurrent.futures import Future; import runlab.background as b; "
            "b.prewarm = lambda: None; "
            "b.submit = lambda fn, *args: (f := Future(), f.set_result([]))[0]; "
            "from runlab.cli import main; sys.argv[0] = 'runlab'; main()")


def commands(tmp: Path, epochs: int) -> dict[str, list[str]]:
    data = ["--data", str(NPZ), "--epochs", str(epochs)]
    train = ["train", str(E2E / "mlp.yaml"), "--runs-dir", str(tmp / "runs"),
             f"data.root={ROOT / 'data'}", f"trainer.max_epochs={epochs}"]
    return {
        "runlab": [bin_path("runlab"), *train],
        "runlab-no-plots": [python_bin(), "-c", NO_PLOTS, *train],
        "plain": [python_bin(), str(E2E / "plain_mlp.py"), "--out", str(tmp / "plain"), *data],
        "lightning": [python_bin(), str(E2E / "lightning_mlp.py"), "--out", str(tmp / "lightning"), *data],
    }


def run(quick: bool = False, repeats: int | None = None, epochs: int = 30) -> list[Row]:
    repeats = repeats or (3 if quick else 7)
    procs: dict[str, list[Proc]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cmds = commands(tmp, epochs)

        def timed(name: str):
            def go() -> float:
                p = check(run_process(cmds[name], cwd=tmp), name)
                shutil.rmtree(tmp / ("runs" if name.startswith("runlab") else name), ignore_errors=True)
                procs.setdefault(name, []).append(p)
                return p.wall_s
            return go

        interleave({n: timed(n) for n in cmds}, repeats, warmup=1)
    for name in procs:  # drop the warm-up round
        procs[name] = procs[name][1:]
    wall = {n: [p.wall_s for p in ps] for n, ps in procs.items()}
    cpu = {n: [p.cpu_s for p in ps] for n, ps in procs.items()}
    rss = {n: [p.peak_rss_mib for p in ps] for n, ps in procs.items()}
    what = f"`runlab train`, MNIST-1D MLP, {epochs} epochs"
    rows = [
        ratio_row("e2e", f"{what}, wall", wall["runlab"], wall["plain"], "plain PyTorch",
                  max_ratio=MAX_RATIO_PLAIN),
        ratio_row("e2e", f"{what}, CPU", cpu["runlab"], cpu["plain"], "plain PyTorch",
                  max_ratio=MAX_RATIO_PLAIN),
        ratio_row("e2e", f"{what} without its end-of-run plots, wall", wall["runlab-no-plots"],
                  wall["plain"], "plain PyTorch", max_ratio=MAX_RATIO_PLAIN),
        ratio_row("e2e", f"{what} without its end-of-run plots, CPU", cpu["runlab-no-plots"],
                  cpu["plain"], "plain PyTorch", max_ratio=MAX_RATIO_PLAIN),
        ratio_row("e2e", f"{what}, wall", wall["runlab"], wall["lightning"], "Lightning",
                  min_speedup=MIN_SPEEDUP_LIGHTNING),
        ratio_row("e2e", f"{what}, CPU", cpu["runlab"], cpu["lightning"], "Lightning",
                  min_speedup=MIN_SPEEDUP_LIGHTNING),
    ]
    mem = Row("memory", f"peak RSS, {what}", median(rss["runlab"]), median(rss["plain"]),
              "plain PyTorch", unit="MiB", target=f"<= plain + {MAX_EXTRA_RSS_MIB:g} MiB")
    mem.passed = mem.runlab - mem.reference <= MAX_EXTRA_RSS_MIB
    mem.noise = f"+{mem.runlab - mem.reference:.0f} MiB"
    rows.append(mem)
    rows.append(Row("memory", f"peak RSS, Lightning script, {epochs} epochs",
                    median(rss["lightning"]), median(rss["plain"]), "plain PyTorch", unit="MiB"))
    for r in rows:
        r.extra = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "repeats": repeats}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    rows = run(args.quick, args.repeats, args.epochs)
    print(table(rows))
    save("e2e", rows)


if __name__ == "__main__":
    main()
