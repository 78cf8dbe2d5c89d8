"""Run status as the user should see it: a `running` run whose process is gone is `crashed`.

run.json only says what the run last wrote about itself. A run killed with SIGKILL, or
whose machine lost power, never gets to write `crashed`, so readers derive it:

- on the run's own host, from its lock (`runs/lock.py`): the training process holds
  `run.lock` for its whole life and the kernel drops it when the process ends, so the
  run is alive exactly while the lock is held. A paused process (SIGSTOP, Ctrl-Z, a
  suspended SLURM job) holds it and stays `running`. Runs from before locks (no
  `run.lock`) fall back to: pid exists and heartbeat fresh;
- from another host, from the heartbeat: the trainer rewrites `heartbeat` in run.json
  every `HEARTBEAT_EVERY_S` seconds, and the run is alive while it is fresh.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

HEARTBEAT_EVERY_S = 10.0
"""How often a training process refreshes `heartbeat` in its run.json."""

STALE_AFTER_S = 120.0
"""A heartbeat older than this means the run is gone (12 missed beats: survives a long
validation pass or a slow network filesystem, yet flags a dead run within minutes)."""

STATUSES = ("running", "completed", "failed", "interrupted", "crashed")
ALIVE = ("running", "created")  # `created`: the folder is made, training not begun

_HOSTNAME = socket.gethostname()


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists on this host (zombies count as dead)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there; trust the heartbeat
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child that its parent has not reaped yet still answers os.kill (Linux only)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # "pid (comm) S ...": comm may contain spaces or parentheses, so split at the last ")".
    state_at = stat.rfind(b")") + 2
    return stat[state_at : state_at + 1] == b"Z"


def heartbeat_age(info: dict, now: float | None = None) -> float | None:
    """Seconds since the run's last heartbeat, or None when it never beat."""
    beat = info.get("heartbeat")
    if not isinstance(beat, (int, float)) or isinstance(beat, bool):
        return None
    return (time.time() if now is None else now) - beat


def effective_status(info: dict, now: float | None = None, run_dir: str | os.PathLike | None = None
                     ) -> str:
    """The status to show for a parsed run.json: `running` becomes `crashed` when the run is gone.

    On this host the run's lock decides (give `run_dir`); without a lock file, its pid
    must exist and its heartbeat be fresh (both: a recycled pid belongs to a process that
    does not beat for this run). On another host only the heartbeat decides.

    >>> effective_status({"status": "running", "heartbeat": 0.0}, now=1e9)
    'crashed'
    """
    status = info.get("status") or "unknown"
    if status not in ALIVE:
        return status
    if info.get("host") == _HOSTNAME and run_dir is not None:
        from runlab.runs.lock import is_held

        held = is_held(run_dir)
        if held is not None:
            return status if held else "crashed"
    age = heartbeat_age(info, now)
    if age is None or age > STALE_AFTER_S:
        return "crashed"
    if info.get("host") == _HOSTNAME and not pid_alive(info.get("pid")):
        return "crashed"
    return status


def alive_elsewhere(info: dict, now: float | None = None) -> bool:
    """Whether run.json says the run is running on another host and its heartbeat is fresh
    (what a process holding the run's lock on this host still has to rule out)."""
    if info.get("status") not in ALIVE or info.get("host") == _HOSTNAME:
        return False
    age = heartbeat_age(info, now)
    return age is not None and age <= STALE_AFTER_S
