"""Start-up: `runlab --help`, `runlab list models`, and launch-to-first-training-step.

    python benchmarks/bench_startup.py [--quick] [--repeats N]

Whole processes, one thread, interleaved with their references, medians:
- `runlab --help` against `python -c "import typer"` (the floor any typer CLI pays);
  target <= 0.3 s.
- `runlab list models` against `python -c "import torch"` (models are torch modules).
- `runlab train configs/quickstart.yaml` until its first optimizer step, against the
  plain PyTorch script (benchmarks/e2e/plain_mlp.py) until its own; both print the time
  since they were launched (RUNLAB_PROFILE_STARTUP=<time of the fork>); the data
  cache is warm. Target <= 3 s.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from bench_e2e import NPZ
from common import (
    BENCH,
    ROOT,
    Row,
    bin_path,
    check,
    child_env,
    interleave,
    python_bin,
    ratio_row,
    run_process,
    save,
    table,
)

HELP_TARGET_S, FIRST_STEP_TARGET_S = 0.3, 3.0
FIRST_STEP = re.compile(r"first training step done ([0-9.]+) s")


def wall(cmd: list[str], cwd: Path) -> float:
    return check(run_process(cmd, cwd=cwd), " ".join(cmd[:3])).wall_s


def first_step(cmd: list[str], cwd: Path) -> float:
    """Seconds from launch to the end of the first step, as the process reports them."""
    proc = check(run_process(cmd, cwd=cwd, env=child_env(RUNLAB_PROFILE_STARTUP="launch")),
                 " ".join(cmd[:3]))
    m = FIRST_STEP.search(proc.output)
    if m is None:
        raise RuntimeError(f"no first-step line in the output of {cmd}:\n{proc.output[-2000:]}")
    return float(m.group(1))


def run(quick: bool = False, repeats: int | None = None) -> list[Row]:
    repeats = repeats or (5 if quick else 11)
    runlab = bin_path("runlab")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        s = interleave({"help": lambda: wall([runlab, "--help"], tmp),
                        "typer": lambda: wall([python_bin(), "-c", "import typer"], tmp),
                        "list": lambda: wall([runlab, "list", "models"], tmp),
                        "torch": lambda: wall([python_bin(), "-c", "import torch"], tmp)}, repeats)
        help_row = ratio_row("startup", "`runlab --help`", s["help"], s["typer"], "import typer")
        help_row.target, help_row.passed = f"<= {HELP_TARGET_S:g} s", help_row.runlab <= HELP_TARGET_S
        rows.append(help_row)
        rows.append(ratio_row("startup", "`runlab list models`", s["list"], s["torch"], "import torch"))

        train = [runlab, "train", str(ROOT / "configs" / "quickstart.yaml"), "--runs-dir",
                 str(tmp / "runs"), f"data.root={ROOT / 'data'}", "trainer.max_epochs=1"]
        plain = [python_bin(), str(BENCH / "e2e" / "plain_mlp.py"), "--data", str(NPZ),
                 "--out", str(tmp / "plain"), "--epochs", "1"]
        s = interleave({"runlab": lambda: first_step(train, tmp),
                        "plain": lambda: first_step(plain, tmp)}, max(3, repeats // 2))
        row = ratio_row("startup", "launch to first training step, quickstart", s["runlab"],
                        s["plain"], "plain PyTorch")
        row.target, row.passed = f"<= {FIRST_STEP_TARGET_S:g} s", row.runlab <= FIRST_STEP_TARGET_S
        rows.append(row)
    for r in rows:
        r.extra = {"repeats": repeats}
    rows[-1].extra["samples_s"] = s
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--repeats", type=int)
    args = ap.parse_args()
    rows = run(args.quick, args.repeats)
    print(table(rows))
    save("startup", rows)


if __name__ == "__main__":
    main()
