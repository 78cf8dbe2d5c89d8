"""Run status as the user should see it: a `running` run whose process is gone is `crashed`.

run.json only says what the run last wrote about itself. A run killed with SIGKILL, or
whose machine lost power, never gets to write `crashed`, so readers derive it: the
trainer beats (rewrites `heartbeat` in run.json) every `HEARTBEAT_EVERY_S` seconds, and
a `running` run counts as alive only while that heartbeat is fresh and, on this host,
its pid still exists.
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


def effective_status(info: dict, now: float | None = None) -> str:
    """The status to show for a parsed run.json: `running` becomes `crashed` when the run is gone.

    A run is alive while its heartbeat is younger than `STALE_AFTER_S` and, when it runs
    on this host, its pid exists. Checking both guards against pid reuse: a recycled pid
    belongs to a process that does not beat for this run.

    >>> effective_status({"status": "running", "heartbeat": 0.0}, now=1e9)
    'crashed'
    """
    status = info.get("status") or "unknown"
    if status not in ("running", "created"):  # `created`: the folder is made, training not begun
        return status
    age = heartbeat_age(info, now)
    if age is None or age > STALE_AFTER_S:
        return "crashed"
    if info.get("host") == _HOSTNAME and not pid_alive(info.get("pid")):
        return "crashed"
    return status
