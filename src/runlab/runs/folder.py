"""A run folder: its id, `run.json` (status lifecycle + heartbeat) and the stdout tee."""

from __future__ import annotations

import contextlib
import errno
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
from runlab.runs.lock import RunLock
from runlab.runs.status import HEARTBEAT_EVERY_S

_ID_TRIES = 1000


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id(name: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{sanitize_name(name)}-{stamp}-{secrets.token_hex(2)}"


def make_run_folder(parent: Path, name: str) -> Path:
    """Create a new, empty run folder under `parent` with a fresh id.

    The folder is created exclusively (no `exist_ok`): when two processes draw the same
    id (same name, same second, same 4 hex digits), the loser draws again, so no two runs
    ever share a folder and an existing folder is never reused."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    for _ in range(_ID_TRIES):
        run_dir = Path(parent) / new_run_id(name)
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"no free run id for '{name}' under {parent} after {_ID_TRIES} tries")


def write_json_atomic(path: Path, data: dict[str, Any], durable: bool = False) -> None:
    """Replace `path` by `data` through a temp file and a rename; `durable`: fsync both.
    A failed write (disk full) leaves the previous file and no temp file behind."""
    text = json.dumps(data, indent=2, default=str)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.exists():
            raise
        _overwrite_in_place(path, text)  # disk full: no room for a second copy
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)


def _overwrite_in_place(path: Path, text: str) -> None:
    """Last resort on a full disk: rewrite the file over its own blocks (not atomic, but
    run.json then records the failure instead of claiming `running` forever)."""
    with open(path, "r+b") as f:
        f.write(text.encode("utf-8"))
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    """Make renames and new files in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_run_json(run_dir: Path) -> dict[str, Any]:
    with open(Path(run_dir) / "run.json", encoding="utf-8") as f:
        return json.load(f)


class RunRecord:
    """Owns `run.json` and holds the run's lock (`runs/lock.py`) until `finish`/`release`.
    Every update rewrites run.json atomically; a daemon thread refreshes the heartbeat so
    that other hosts can tell a live run from a killed one."""

    def __init__(self, run_dir: Path, info: dict[str, Any], lock: RunLock | None = None):
        self.dir = Path(run_dir)
        self.path = self.dir / "run.json"
        self.info = info
        self.lock = lock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def create(cls, run_dir: Path, run_id: str, name: str, seed: int, lock: RunLock | None = None,
               **extra: Any) -> RunRecord:
        info = {
            "id": run_id, "name": name, "status": "created", "seed": seed,
            "created": now_iso(), "started": None, "ended": None, "duration_s": 0.0,
            "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time(),
            "epoch": 0, "step": 0, "summary": {}, "error": None, "resumes": 0,
            "sweep": None, "ensemble": None,
        }
        info.update(extra)
        rec = cls(run_dir, info, lock)
        rec.save(durable=True)
        return rec

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        """The run's record with its lock taken (RunBusy, exit 2, when another process has it)."""
        lock = RunLock.acquire(run_dir)
        try:
            return cls(run_dir, read_run_json(run_dir), lock)
        except BaseException:
            lock.release()
            raise

    def save(self, durable: bool = False) -> None:
        with self._lock:
            self.info["heartbeat"] = time.time()
            write_json_atomic(self.path, self.info, durable)

    def update(self, durable: bool = False, **fields: Any) -> None:
        with self._lock:
            self.info.update(fields)
        self.save(durable)

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
            self._beat_safely()

    def duration(self) -> float:
        return self._base_duration + time.time() - getattr(self, "_t_start", time.time())

    def _beat_safely(self) -> None:
        with contextlib.suppress(OSError):  # disk full: the final status will say more
            self.save()

    def finish(self, status: str, **fields: Any) -> None:
        """Final status (fsynced); stops the heartbeat and releases the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.info.update(status=status, ended=now_iso(), duration_s=self.duration(), **fields)
        try:
            with _ctrl_c_deferred():  # a Ctrl-C now would leave run.json saying `running`
                self.save(durable=True)
        finally:
            self.release()

    def release(self) -> None:
        """Let other processes act on the run (also happens when this process ends)."""
        if self.lock is not None:
            self.lock.release()


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold SIGINT for the few milliseconds of a final write, then raise KeyboardInterrupt
    if one came (signal handlers exist only in the main thread; elsewhere, do nothing)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)  # what that Ctrl-C would have done, now


class Tee:
    """Writes to the terminal and to `stdout.log` (line-buffered, so a kill loses little).

    Neither side can fail the run: a terminal that went away (`| head -1`, a closed ssh
    session: BrokenPipeError) is dropped and stdout.log keeps everything; a log that
    cannot be written (disk full) is dropped with one note on the terminal."""

    def __init__(self, stream, log_file):
        self.stream, self.log = stream, log_file
        self.stream_ok = self.log_ok = True

    def write(self, text: str) -> int:
        self._to_stream(lambda: self.stream.write(text))
        self._to_log(lambda: self.log.write(text))
        return len(text)

    def flush(self) -> None:
        self._to_stream(self.stream.flush)
        self._to_log(self.log.flush)

    def _to_stream(self, action) -> None:
        if not self.stream_ok:
            return
        try:
            action()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self.stream_ok = False
            _silence(self.stream)

    def _to_log(self, action) -> None:
        if not self.log_ok:
            return
        try:
            action()
        except OSError as e:
            self.log_ok = False
            note = (f"runlab: warning: stdout.log can no longer be written ({e}); "
                    "output goes to the terminal only\n")
            self._to_stream(lambda: self.stream.write(note))

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _silence(stream) -> None:
    """Point a dead pipe's descriptor at /dev/null, so that the interpreter's final flush
    of stdout does not fail the process (the Python docs' advice for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


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
        with contextlib.suppress(OSError):  # disk full: what could be written is there
            self.file.close()
