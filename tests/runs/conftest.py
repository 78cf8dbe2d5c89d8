"""Run folders as the trainer leaves them, and real processes to stand for live and dead runs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MakeRun = Callable[..., Path]


def write_run(
    root: Path,
    run_id: str,
    *,
    sweep: str | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    **fields: Any,
) -> Path:
    """A run folder under `root` (manual/ or sweeps/<sweep>/) with run.json and config.yaml."""
    import yaml

    run_dir = root / ("manual" if sweep is None else f"sweeps/{sweep}") / run_id
    run_dir.mkdir(parents=True)
    info = {
        "id": run_id,
        "name": run_id.split("-")[0],
        "status": "completed",
        "seed": 0,
        "created": "2026-11-28T10:15:00.000+00:00",
        "started": "2026-11-28T10:15:01.000+00:00",
        "ended": "2026-11-28T10:16:01.000+00:00",
        "duration_s": 60.0,
        "host": socket.gethostname(),
        "pid": 1,
        "heartbeat": time.time() - 3600,
        "sweep": None if sweep is None else {"name": sweep, "setting": "s000", "trial": 0},
        "summary": {
            m: {"final": v, "best": v, "min": v, "max": v} for m, v in (metrics or {}).items()
        },
        "error": None,
        **fields,
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2))
    config = {"name": info["name"], "seed": info["seed"], **(config or {})}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run_dir


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def make_run(runs_root: Path) -> MakeRun:
    """`make_run(run_id, sweep=None, config=None, metrics=None, **run_json_fields)`."""
    return lambda run_id, **kw: write_run(runs_root, run_id, **kw)


@pytest.fixture
def make_run_at() -> MakeRun:
    """`make_run_at(root, run_id, ...)`: like `make_run`, under any root."""
    return write_run


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process that stays alive for the test."""
    proc = _sleeper()
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process killed with SIGKILL (and reaped), like a run the OOM killer took."""
    proc = _sleeper()
    proc.kill()
    proc.wait()
    return proc.pid


@pytest.fixture
def running() -> Callable[[int], dict[str, Any]]:
    """`running(pid)`: run.json fields of a run that claims to run on this host, beating now."""

    def fields(pid: int) -> dict[str, Any]:
        return {
            "status": "running",
            "pid": pid,
            "host": socket.gethostname(),
            "heartbeat": time.time(),
            "ended": None,
        }

    return fields
