"""The per-run lock: `run.lock` in the run folder, held (flock) by whoever acts on the run.

The training process takes it when it creates or resumes a run and holds it for its
whole life; `runs resume`, `runs delete` and `runs clean` take it before they act. The
kernel drops it when the process ends, however it ends (SIGKILL, OOM, power loss of the
process's machine), so on the host where a run trains "the lock is held" is exactly
"some process is using this run": a paused (SIGSTOP) process still holds it.

Readers only probe (`is_held`): a shared lock taken and dropped at once. A writer that
meets a probe retries for `ACQUIRE_RETRY_S` before it calls the run busy.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from runlab.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; liveness falls back to pid + heartbeat
    fcntl = None

LOCK_FILE = "run.lock"
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
ACQUIRE_RETRY_S = 1.0
"""How long `RunLock.acquire` keeps trying: long enough to outlast a reader's probe
(microseconds), short enough that a second `runs resume` answers at once."""


class RunBusy(ConfigError):
    """Another process holds the run's lock (a usage error: exit 2, nothing done)."""


class RunLock:
    """An exclusive flock on `<run_dir>/run.lock`; released by `release()` or process exit.

    Example:
        >>> lock = RunLock.acquire(run_dir)   # RunBusy when another process holds it
        >>> ...                                # train, delete, truncate metrics.csv
        >>> lock.release()
    """

    def __init__(self, run_dir: Path, fd: int | None):
        self.dir, self._fd = Path(run_dir), fd

    @classmethod
    def acquire(cls, run_dir: Path, retry_s: float = ACQUIRE_RETRY_S) -> RunLock:
        path = Path(run_dir) / LOCK_FILE
        if fcntl is None:
            return cls(run_dir, None)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        deadline = time.monotonic() + retry_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in _BUSY:  # a filesystem without flock (some NFS setups):
                    os.close(fd)  # run unlocked; liveness falls back to pid + heartbeat
                    return cls(run_dir, None)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise RunBusy(f"run {Path(run_dir).name} is in use by another process "
                                  f"({holder(run_dir)}): it is training, being resumed or "
                                  "being deleted; nothing done") from None
                time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for people reading the folder; not trusted
        return cls(run_dir, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def is_held(run_dir: str | os.PathLike) -> bool | None:
    """Whether some process holds the run's lock: None when the folder has no lock file
    (a run from before locks, or no flock here) or it cannot be opened."""
    if fcntl is None:
        return None
    try:
        fd = os.open(os.path.join(os.fspath(run_dir), LOCK_FILE), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return True if e.errno in _BUSY else None
    finally:
        os.close(fd)  # drops the probe's shared lock too
    return False


def holder(run_dir: str | os.PathLike) -> str:
    """The pid the lock holder wrote into run.lock, as text for messages."""
    try:
        pid = Path(run_dir, LOCK_FILE).read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
