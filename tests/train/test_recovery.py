"""Resume recovers from damaged files and says what it lost; a full disk fails the run cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runlab.train.api import resume, train
from runlab_testing import run_cli, tiny_config


def interrupted_run(tmp_path: Path) -> Path:
    """A finished 3-epoch run marked `interrupted`, as if stopped after its last checkpoint."""
    cfg = tiny_config(tmp_path, trainer={"max_epochs": 3, "device": "cpu"})
    assert train(cfg, tmp_path / "runs") == 0
    (run_dir,) = (tmp_path / "runs" / "manual").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    return run_dir


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint", "truncated"])
def test_bad_last_checkpoint_falls_back_to_best(tmp_path: Path, capsys, damage) -> None:
    run_dir = interrupted_run(tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncated" else damage)
    assert resume(run_dir) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {last} is unusable" in err and "resuming" in err and "best.pt" in err
    assert status(run_dir)["status"] == "completed"


def test_no_usable_checkpoint_restarts_from_scratch_and_says_so(tmp_path: Path, capsys) -> None:
    run_dir = interrupted_run(tmp_path)
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "checkpoints").mkdir()
    assert resume(run_dir) == 0
    err = capsys.readouterr().err
    assert "has no usable checkpoint: it restarts from scratch" in err
    info = status(run_dir)
    assert info["status"] == "completed" and "restarts from scratch" in info["warnings"][0]


def test_metrics_shorter_than_the_checkpoint_is_reported(tmp_path: Path, capsys) -> None:
    run_dir = interrupted_run(tmp_path)
    (run_dir / "metrics.csv").write_text("step,epoch,time,metric,value\n")  # rows lost
    assert resume(run_dir) == 0
    err = capsys.readouterr().err
    assert "metrics.csv of run" in err and "is shorter" in err
    assert "is shorter" in status(run_dir)["warnings"][0]


@pytest.mark.slow
def test_resume_cli_bad_checkpoint_gives_no_traceback(tmp_path: Path) -> None:
    run_dir = interrupted_run(tmp_path)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    (run_dir / "checkpoints" / "best.pt").write_bytes(b"\x80garbage")
    result = run_cli("runs", "resume", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr
    assert "restarts from scratch" in result.stderr


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_disk_full_fails_the_run_with_the_error_and_no_temp_file(tmp_path: Path) -> None:
    """A real full disk: a 2 MB tmpfs (needs root to mount; skipped otherwise)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        (disk / "fill").write_bytes(b"\0" * 1_750_000)
        cfg = tiny_config(tmp_path, data={"n_samples": 2000, "batch_size": 8},
                          trainer={"max_epochs": 30, "device": "cpu"})
        (tmp_path / "full.yaml").write_text(yaml.safe_dump(cfg))
        result = run_cli("train", str(tmp_path / "full.yaml"), "--runs-dir", str(disk / "runs"),
                         timeout=300)
        assert result.returncode == 1, result.stderr
        (run_dir,) = (disk / "runs" / "manual").iterdir()
        info = status(run_dir)
        assert info["status"] == "failed" and "No space left" in info["error"]["message"]
        assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(disk)], check=False)
