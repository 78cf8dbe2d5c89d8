"""A job: one training process for one setting and one or more of its seeds.

Each run is claimed with an exclusive `flock` on `claims/<run-id>.lock` before it starts,
so two sweep processes never train the same (setting, seed). The kernel drops the lock
when every holder is gone, SIGKILL included; the training child inherits the lock, so an
orphaned run stays claimed until it exits.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from runlab.sweep.settings import Setting

TRAIN_COMMAND = (sys.executable, "-m", "runlab", "train")


@dataclass
class Job:
    """Seeds of one setting trained by one process, each into its own run folder."""

    setting: Setting
    seeds: list[int]
    run_dirs: list[Path]
    config_path: Path
    log_path: Path
    claims: list[int] = field(default_factory=list)

    def command(self, sweep: str, train: tuple[str, ...] = TRAIN_COMMAND,
                nproc: int = 1) -> list[str]:
        """`runlab train CONFIG seed=K --run-dir DIR --sweep-info JSON` (`--seeds` for several;
        `--nproc N` to train the one run over N processes)."""
        cmd = [*train, str(self.config_path)]
        if len(self.seeds) == 1:
            cmd.append(f"seed={self.seeds[0]}")
        else:
            cmd += ["--seeds", ",".join(str(s) for s in self.seeds)]
        for run_dir in self.run_dirs:
            cmd += ["--run-dir", str(run_dir)]
        cmd += ["--sweep-info", json.dumps(self.setting.sweep_info(sweep), default=str)]
        return cmd + (["--nproc", str(nproc)] if nproc > 1 else [])

    def release(self) -> None:
        for fd in self.claims:
            os.close(fd)
        self.claims = []


def claim(folder: Path, run_id: str) -> int | None:
    """An fd holding the run's lock, or None when another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def run_state(run_dir: Path) -> dict:
    """The run's run.json with its effective status; status `new` when it never started."""
    from runlab.runs.store import read_run

    if not (run_dir / "run.json").exists():
        return {"status": "new"}
    return read_run(run_dir)


def error_line(state: dict, log_path: Path) -> str:
    """One line saying why a run failed: its recorded error, else the log's last line."""
    error = state.get("error")
    if isinstance(error, dict) and (error.get("type") or error.get("message")):
        message = str(error.get("message") or "").strip().splitlines()
        return f"{error.get('type') or 'Error'}: {message[-1] if message else ''}".strip()
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except OSError:
        lines = []
    lines = [ln for ln in lines if ln and not ln.startswith("=== ")]
    return lines[-1] if lines else f"run ended with status {state.get('status')}"


_SEEDS_FLAG: dict[tuple[str, ...], bool] = {}


def trainer_takes_seeds(train: tuple[str, ...] = TRAIN_COMMAND) -> bool:
    """Whether `train` can train several seeds in one process (`--seeds` with one
    `--run-dir` each, issue 8): true for runlab's own trainer once `runlab.ensemble` exists."""
    if train not in _SEEDS_FLAG:
        _SEEDS_FLAG[train] = train == TRAIN_COMMAND and find_spec("runlab.ensemble") is not None
    return _SEEDS_FLAG[train]


def together(cfg: dict, mode: str) -> bool:
    """Whether a setting's seeds train in one process: `true` always, `auto` when the
    ensemble trainer accepts the config (else it would refuse: exit 2), `false` never."""
    if mode != "auto":
        return mode == "true"
    from runlab.ensemble.api import refusals

    return not refusals(cfg)
