"""SIGKILL a `runlab train CONFIG --seeds ...` at random moments, resume it with the same
command, and count how often the result is bit-identical to the uninterrupted run.

    python scripts/sigkill_resume_check.py CONFIG [KEY=VALUE ...] [--seeds 0,1,2,3]
           [--trials 20] [--workdir DIR] [--seed 0] [--alone]

Each trial starts the ensemble in fresh run folders, kills its process group with
SIGKILL after a random delay (5-90 % of the reference run's duration), then reruns
the identical command until it exits 0 (a rerun may itself be killed: only the first
is). A trial is exact when every member's final weights (last.pt) and metrics.csv rows
(without wall-clock time) equal the uninterrupted reference's. With `--alone`, each
trial first copies one unfinished member (chosen at random) and resumes the copy alone
with `runlab runs resume`; it must equal its uninterrupted twin too.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def command(config: str, overrides: list[str], seeds: list[int], root: Path) -> list[str]:
    cmd = [sys.executable, "-m", "runlab", "train", config, *overrides, "--seeds", ",".join(map(str, seeds))]
    for s in seeds:
        cmd += ["--run-dir", str(root / f"seed{s}")]
    return cmd


def run(cmd: list[str], kill_after: float | None = None) -> tuple[int, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode, time.monotonic() - t0


def rows(run_dir: Path) -> list[tuple[str, ...]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(r["step"], r["epoch"], r["metric"], r["value"]) for r in csv.DictReader(f)]


def same(ref: Path, other: Path, seeds: list[int]) -> bool:
    for s in seeds:
        a = torch.load(ref / f"seed{s}" / "checkpoints" / "last.pt", weights_only=True)["model"]
        b = torch.load(other / f"seed{s}" / "checkpoints" / "last.pt", weights_only=True)["model"]
        if a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a):
            return False
        if rows(ref / f"seed{s}") != rows(other / f"seed{s}"):
            return False
    return True


def resume_one_alone(root: Path, seeds: list[int], rng: random.Random) -> tuple[int, int] | None:
    """Copy one member that did not complete and resume the copy alone: (seed, exit code)."""
    unfinished = [s for s in seeds if (root / f"seed{s}" / "run.json").exists()
                  and json.loads((root / f"seed{s}" / "run.json").read_text())["status"] != "completed"]
    if not unfinished:
        return None
    seed = rng.choice(unfinished)
    alone = root.parent / f"{root.name}-alone" / f"seed{seed}"
    shutil.copytree(root / f"seed{seed}", alone)
    code, _ = run([sys.executable, "-m", "runlab", "runs", "resume", str(alone)])
    return seed, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    ap.add_argument("--alone", action="store_true", help="also resume one member alone per trial")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sigkill-"))
    rng = random.Random(args.seed)

    code, duration = run(command(args.config, args.overrides, seeds, work / "reference"))
    if code != 0:
        sys.exit(f"the reference run failed with exit code {code}")
    print(f"reference: {duration:.1f} s in {work / 'reference'}")
    exact = kills = alone_exact = alone_tried = 0
    for trial in range(args.trials):
        root = work / f"trial{trial}"
        cmd = command(args.config, args.overrides, seeds, root)
        delay = rng.uniform(0.05, 0.9) * duration
        killed, _ = run(cmd, kill_after=delay)
        kills += killed == -signal.SIGKILL
        alone = resume_one_alone(root, seeds, rng) if args.alone else None
        note = ""
        if alone is not None:
            seed, alone_code = alone
            alone_ok = alone_code == 0 and same(work / "reference", root.parent / f"{root.name}-alone", [seed])
            alone_tried += 1
            alone_exact += alone_ok
            note = f"; seed {seed} resumed alone: {'bit-identical' if alone_ok else 'DIFFERENT'}"
        resumes = 0
        while True:
            code, _ = run(cmd)
            resumes += 1
            if code == 0 or resumes > 3:
                break
        ok = code == 0 and same(work / "reference", root, seeds)
        exact += ok
        print(f"trial {trial:2d}: killed after {delay:5.1f} s (exit {killed}), resumed "
              f"{resumes}x (exit {code}): {'bit-identical' if ok else 'DIFFERENT'}{note}", flush=True)
    print(f"{exact}/{args.trials} bit-identical to the uninterrupted run ({kills} trials were "
          "killed; the others had finished before their kill time)")
    if args.alone:
        print(f"{alone_exact}/{alone_tried} members resumed alone bit-identical to their twins")


if __name__ == "__main__":
    main()
