"""The per-run lock: one process at a time acts on a run; on this host, the lock is liveness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runlab.runs import store
from runlab.runs.folder import make_run_folder
from runlab.runs.lock import RunBusy, RunLock, is_held
from runlab_testing import run_cli

pytestmark = pytest.mark.skipif(os.name == "nt", reason="flock is POSIX")


@pytest.fixture
def holder() -> Iterator:
    """`holder(run_dir)`: a real process that takes the run's lock and keeps it."""
    procs = []

    def start(run_dir: Path) -> subprocess.Popen:
        code = ("import sys, time; from runlab.runs.lock import RunLock; "
                "RunLock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(120)")
        proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_lock_is_exclusive_and_released_with_the_process(tmp_path: Path, holder) -> None:
    proc = holder(tmp_path)
    assert is_held(tmp_path) is True
    with pytest.raises(RunBusy, match=f"pid {proc.pid}"):
        RunLock.acquire(tmp_path, retry_s=0.05)
    proc.kill()
    proc.wait()
    assert is_held(tmp_path) is False
    lock = RunLock.acquire(tmp_path)
    lock.release()
    assert is_held(tmp_path / "no-such-run") is None  # no lock file: callers fall back to pid


def test_second_resume_is_refused_and_changes_nothing(make_run, running, holder) -> None:
    run_dir = make_run("r-20261128-101500-0001", status="interrupted")
    (run_dir / "metrics.csv").write_text("step,epoch,time,metric,value\n1,1,0.1,train/loss,0.5\n")
    holder(run_dir)  # the first resume, training
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    result = run_cli("runs", "resume", str(run_dir))
    assert result.returncode == 2, result.stderr
    assert "in use by another process" in result.stderr and "nothing done" in result.stderr
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert after == before


def test_paused_run_stays_running_and_is_never_cleaned(
    runs_root: Path, make_run, running, holder
) -> None:
    """SIGSTOP (Ctrl-Z, a suspended SLURM job): no heartbeat for an hour, but the lock is held."""
    run_dir = make_run("p-20261128-101500-0001", status="running")
    proc = holder(run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info.update(running(proc.pid), heartbeat=time.time() - 3600)
    (run_dir / "run.json").write_text(json.dumps(info))
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert store.read_run(run_dir)["status"] == "running"
        listed = json.loads(run_cli("runs", "list", str(runs_root), "--json").stdout)
        assert [r["status"] for r in listed] == ["running"]
        clean = run_cli("runs", "clean", "-s", "crashed", "--yes", "--runs-dir", str(runs_root))
        assert clean.returncode == 0 and run_dir.exists()
        delete = run_cli("runs", "delete", str(run_dir), "--yes", "--runs-dir", str(runs_root))
        assert delete.returncode == 2 and "refusing to delete running run" in delete.stderr
        assert run_dir.exists()
        assert run_cli("runs", "resume", str(run_dir)).returncode == 2
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait()
    assert store.read_run(run_dir)["status"] == "crashed"  # lock gone: the process is gone


def test_created_run_cannot_be_deleted_under_its_process(runs_root: Path, make_run, holder) -> None:
    run_dir = make_run("c-20261128-101500-0001", status="created", pid=1, heartbeat=0.0)
    holder(run_dir)
    result = run_cli("runs", "delete", str(run_dir), "--yes", "--runs-dir", str(runs_root))
    assert result.returncode == 2 and "refusing to delete created run" in result.stderr
    assert run_dir.exists()


def test_new_folders_never_reuse_an_existing_one(tmp_path: Path, monkeypatch) -> None:
    """Two draws of the same id (same name, second and hex digits): the second draws again."""
    from runlab.runs import folder

    ids = iter(["x-1", "x-1", "x-2"])
    monkeypatch.setattr(folder, "new_run_id", lambda name: next(ids))  # force the collision
    (tmp_path / "x-1").mkdir()
    (tmp_path / "x-1" / "keep").write_text("mine")
    assert make_run_folder(tmp_path, "x") == tmp_path / "x-2"
    assert (tmp_path / "x-1" / "keep").read_text() == "mine"


def test_300_folders_of_one_name_in_one_second_are_300(tmp_path: Path) -> None:
    made = [make_run_folder(tmp_path, "seed") for _ in range(300)]
    assert len(set(made)) == 300 and len(list(tmp_path.iterdir())) == 300
