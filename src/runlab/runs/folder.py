"""A run folder: its id, `run.json` (status lifecycle + heartbeat) and the stdout tee."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runlab.config import sanitize_name
from runlab.runs.status import HEARTBEAT_EVERY_S


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id(name: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{sanitize_name(name)}-{stamp}-{secrets.token_hex(2)}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
    os.replace(tmp, path)


def read_run_json(run_dir: Path) -> dict[str, Any]:
    with open(Path(run_dir) / "run.json", encoding="utf-8") as f:
        return json.load(f)


class RunRecord:
    """Owns `run.json`. Every update rewrites it atomically; a daemon thread refreshes the
    heartbeat so `runs list` can tell a live run from a killed one."""

    def __init__(self, run_dir: Path, info: dict[str, Any]):
        self.dir = Path(run_dir)
        self.path = self.dir / "run.json"
        self.info = info
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def create(cls, run_dir: Path, run_id: str, name: str, seed: int, **extra: Any) -> RunRecord:
        info = {
            "id": run_id, "name": name, "status": "created", "seed": seed,
            "created": now_iso(), "started": None, "ended": None, "duration_s": 0.0,
            "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time(),
            "epoch": 0, "step": 0, "summary": {}, "error": None, "resumes": 0,
            "sweep": None, "ensemble": None,
        }
        info.update(extra)
        rec = cls(run_dir, info)
        rec.save()
        return rec

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        return cls(run_dir, read_run_json(run_dir))

    def save(self) -> None:
        with self._lock:
            self.info["heartbeat"] = time.time()
            write_json_atomic(self.path, self.info)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.info.update(fields)
        self.save()

    def start(self) -> None:
        """Mark running (from this process) and start the heartbeat."""
        self.info.update(status="running", pid=os.getpid(), host=socket.gethostname(),
                         started=self.info.get("started") or now_iso(), ended=None, error=None)
        self._t_start = time.time()
        self._base_duration = float(self.info.get("duration_s") or 0.0)
        self.save()
        self._thread = threading.Thread(target=self._beat, name="runlab-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            self.info["duration_s"] = self.duration()
            self.save()

    def duration(self) -> float:
        return self._base_duration + time.time() - getattr(self, "_t_start", time.time())

    def finish(self, status: str, **fields: Any) -> None:
        """Final status; stops the heartbeat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.info.update(status=status, ended=now_iso(), duration_s=self.duration(), **fields)
        self.save()


class Tee:
    """Writes to the terminal and to `stdout.log` (line-buffered, so a kill loses little)."""

    def __init__(self, stream, log_file):
        self.stream, self.log = stream, log_file

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


class CaptureOutput:
    """Context manager teeing sys.stdout and sys.stderr into `stdout.log` (appending)."""

    def __init__(self, path: Path, marker: str | None = None):
        self.path, self.marker = path, marker

    def __enter__(self) -> CaptureOutput:
        self.file = open(self.path, "a", encoding="utf-8", buffering=1)
        if self.marker:
            self.file.write(self.marker + "\n")
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(sys.stdout, self.file), Tee(sys.stderr, self.file)
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = self.saved
        self.file.close()
