"""A stand-in for `runlab train` with the sweep interface, for scheduler tests and benchmarks.

    python fake_train.py CONFIG seed=K --run-dir DIR [--run-dir DIR2 --seeds 0,1] --sweep-info JSON

Honours the contract of the real trainer: a completed run exits 0 at once; any other run
resumes from checkpoints/last.pt (printing "resuming from epoch N"). The objective is
`val/loss = (optimizer.lr - 0.01)**2 + 0.001 * seed`. Config keys read: trainer.max_epochs,
`fake: {epoch_s: seconds slept per epoch, busy: spin the CPU instead, fail: exit 1,
fail_once: fail the first attempt only}`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import yaml


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def train_one(cfg: dict, seed: int, run_dir: Path, sweep: dict) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if info.get("status") == "completed":
        return 0
    fake = cfg.get("fake") or {}
    ckpt = run_dir / "checkpoints" / "last.pt"
    start = json.loads(ckpt.read_text())["epoch"] if ckpt.exists() else 0
    with open(run_dir / "stdout.log", "a") as log:
        log.write(f"resuming from epoch {start}\n" if start else "starting\n")
    info.update(id=run_dir.name, status="running", seed=seed, pid=os.getpid(),
                heartbeat=time.time(), sweep=sweep, host=os.uname().nodename)
    write_json(info_path, info)
    attempts = run_dir / "attempts"
    attempt = int(attempts.read_text()) + 1 if attempts.exists() else 1
    attempts.write_text(str(attempt))
    if fake.get("fail") or (fake.get("fail_once") and attempt == 1):
        info.update(status="failed", error={"type": "RuntimeError", "message": "boom"})
        write_json(info_path, info)
        print("RuntimeError: boom", file=sys.stderr)
        return 1
    loss = (float(cfg["optimizer"]["lr"]) - 0.01) ** 2 + 0.001 * seed
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        metrics.write_text("step,epoch,time,metric,value\n")
    for epoch in range(start, int(cfg["trainer"]["max_epochs"])):
        seconds = float(fake.get("epoch_s", 0.0))
        if fake.get("busy"):
            end = time.process_time() + seconds
            while time.process_time() < end:
                pass
        else:
            time.sleep(seconds)
        with open(metrics, "a") as f:
            f.write(f"{epoch + 1},{epoch},0.0,val/loss,{loss}\n")
        ckpt.parent.mkdir(exist_ok=True)
        write_json(ckpt, {"epoch": epoch + 1})
        info["heartbeat"] = time.time()
        write_json(info_path, info)
    info.update(status="completed", summary={"val/loss": {
        "final": loss, "min": loss, "max": loss, "best": loss}})
    write_json(info_path, info)
    return 0


def main(argv: list[str]) -> int:
    if "--help" in argv:
        print("usage: fake_train CONFIG [seed=K | --seeds a,b] --run-dir DIR... --sweep-info JSON")
        return 0
    cfg = yaml.safe_load(Path(argv[0]).read_text())
    run_dirs, seeds, sweep, i = [], [], {}, 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--run-dir":
            run_dirs.append(Path(argv[i + 1]))
            i += 1
        elif arg == "--seeds":
            seeds = [int(s) for s in argv[i + 1].split(",")]
            i += 1
        elif arg == "--sweep-info":
            sweep = json.loads(argv[i + 1])
            i += 1
        elif arg.startswith("seed="):
            seeds = [int(arg[5:])]
        i += 1
    codes = [train_one(cfg, seed, d, sweep) for seed, d in zip(seeds, run_dirs, strict=True)]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
