"""A `running` run is only running while its heartbeat is fresh and (same host) its pid lives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from runlab.runs.status import STALE_AFTER_S, effective_status, heartbeat_age, pid_alive


@pytest.mark.parametrize("status", ["completed", "failed", "interrupted", "crashed"])
def test_final_statuses_pass_through(status: str) -> None:
    assert effective_status({"status": status, "heartbeat": 0.0, "pid": -1}) == status


def test_live_process_with_fresh_heartbeat_is_running(running, live_pid: int) -> None:
    assert effective_status(running(live_pid)) == "running"


def test_dead_pid_on_this_host_is_crashed(running, dead_pid: int) -> None:
    assert effective_status(running(dead_pid)) == "crashed"


def test_stale_heartbeat_is_crashed_even_if_pid_lives(running, live_pid: int) -> None:
    """A reused pid belongs to some other process: the missing heartbeats give it away."""
    info = running(live_pid)
    assert effective_status(info, now=info["heartbeat"] + STALE_AFTER_S - 1) == "running"
    assert effective_status(info, now=info["heartbeat"] + STALE_AFTER_S + 1) == "crashed"


def test_never_beating_run_is_crashed(running, live_pid: int) -> None:
    info = running(live_pid)
    del info["heartbeat"]
    assert effective_status(info) == "crashed"


def test_other_host_is_judged_by_heartbeat_only(running, dead_pid: int) -> None:
    info = {**running(dead_pid), "host": "some-other-node"}
    assert effective_status(info) == "running"
    assert effective_status(info, now=time.time() + 2 * STALE_AFTER_S) == "crashed"


def test_pid_alive(live_pid: int, dead_pid: int) -> None:
    assert pid_alive(os.getpid())
    assert pid_alive(live_pid)
    assert not pid_alive(dead_pid)
    for bad in (None, 0, -5, "123", True, 1.5):
        assert not pid_alive(bad)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_unreaped_child_counts_as_dead() -> None:
    """A killed child that nobody waited for is a zombie: os.kill(pid, 0) still succeeds."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.time() + 10
        while pid_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.01)
        assert not pid_alive(proc.pid)
    finally:
        proc.wait()


def test_heartbeat_age() -> None:
    assert heartbeat_age({"heartbeat": 100.0}, now=130.0) == 30.0
    assert heartbeat_age({}) is None
    assert heartbeat_age({"heartbeat": "yesterday"}) is None
