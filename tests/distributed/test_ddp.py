"""Data-parallel runs for real: `runlab train --nproc 2` starts two CPU processes (gloo).

- equivalence: two processes on global batch B (started by `--nproc`, or as an `srun` step
  starts them, from SLURM's variables) end within 1e-6 of one process on B, with
  uneven shards (batch 15 -> 7 + 8) and an uneven last batch; same metric rows, one folder;
- a SIGTERM to one rank mid-epoch checkpoints both; the resumed run equals an
  uninterrupted two-process run bit for bit (weights and every metric row);
- a rank that raises fails the run with its traceback in run.json, and no process is left;
- a config the processes cannot split is refused (exit 2) before any run folder is left.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from runlab.train.api import train as train_in_process
from runlab_testing import run_cli, tiny_config

PLUGIN = Path(__file__).parent / "plugins" / "ddp_hooks.py"
TIMEOUT_S = 300


def ddp_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """110 moons samples -> 88 train = 5 batches of 15 and one of 13 per epoch."""
    base = {"data": {"name": "moons", "n_samples": 110, "batch_size": 15, "val_fraction": 0.1,
                     "test_fraction": 0.1},
            "model": {"name": "mlp", "hidden": [16]},
            "trainer": {"max_epochs": 3, "device": "cpu"},
            "logging": {"log_every_steps": 4, "console": False}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return tiny_config(tmp_path, **base)


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def only_run(runs: Path) -> Path:
    folders = [p for p in (runs / "manual").iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def metric_rows(run_dir: Path) -> list[tuple[int, str, float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(int(r["step"]), r["metric"], float(r["value"])) for r in csv.DictReader(f)]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def live_processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split(") ")[-1][0]
        except (OSError, ValueError):
            continue
        if text in cmdline and state != "Z" and proc.name != str(os.getpid()):
            found.append(int(proc.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def srun_like(args: list[str], ntasks: int, timeout: float) -> list[subprocess.CompletedProcess]:
    """What `srun --ntasks N runlab train ...` starts: N plain processes with SLURM's variables
    (no torchrun agent: rank 0 hosts the rendezvous store)."""
    port = str(free_port())
    procs = []
    for rank in range(ntasks):
        env = {**os.environ, "SLURM_PROCID": str(rank), "SLURM_NTASKS": str(ntasks),
               "SLURM_STEP_NUM_TASKS": str(ntasks), "SLURM_LOCALID": str(rank),
               "SLURM_STEP_NODELIST": "localhost", "SLURM_JOB_ID": "77", "MASTER_PORT": port,
               "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-m", "runlab", "train", *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=timeout) for p in procs]
    return [subprocess.CompletedProcess(p.args, p.returncode, o, e) for p, (o, e) in zip(procs, outs)]


@pytest.mark.parametrize("optimizer, launcher", [
    ({"name": "sgd", "lr": 0.1, "momentum": 0.9}, "nproc"),
    ({"name": "adam", "lr": 0.01}, "srun")], ids=["sgd-nproc", "adam-srun"])
def test_two_processes_match_one_process_on_the_global_batch(tmp_path, optimizer, launcher):
    cfg = ddp_config(tmp_path, optimizer=optimizer)
    ref_code = train_in_process(cfg, tmp_path / "one")
    args = [str(write_config(cfg, tmp_path / "c.yaml")), "--runs-dir", str(tmp_path / "two")]
    if launcher == "nproc":
        out = run_cli("train", *args, "--nproc", "2", timeout=TIMEOUT_S)
    else:
        out, follower = srun_like(args, 2, TIMEOUT_S)
        assert follower.returncode == 0 and follower.stdout == "", follower.stderr[-3000:]
    assert ref_code == 0 and out.returncode == 0, out.stderr[-3000:]
    one, two = only_run(tmp_path / "one"), only_run(tmp_path / "two")

    w1, w2 = weights(one), weights(two)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], rtol=0, atol=1e-6), f"{k}: {(w1[k] - w2[k]).abs().max()}"

    rows1, rows2 = metric_rows(one), metric_rows(two)
    assert [r[:2] for r in rows2] == [r[:2] for r in rows1]  # same rows: none twice, none missing
    assert [r[2] for r in rows2] == pytest.approx([r[2] for r in rows1], rel=1e-5, abs=1e-6)
    info = json.loads((two / "run.json").read_text())
    assert info["status"] == "completed" and info["distributed"]["world_size"] == 2
    assert "completed" in out.stdout and out.stdout.count("runlab: run folder") == 1


@pytest.mark.slow  # two two-process runs
@pytest.mark.parametrize("model", ["mlp_auto_step", "mlp_manual_step"])
def test_a_custom_step_on_two_processes_matches_one_process(tmp_path, model):
    """A custom step is not wrapped in DDP: each optimizer step averages the gradients itself
    (automatic mode: the framework steps; manual mode: the step calls ctx.step)."""
    steps = str(Path(__file__).parents[1] / "train" / "plugins" / "custom_steps.py")
    cfg = ddp_config(tmp_path, model={"name": model, "hidden": [16]}, plugins=[steps],
                     optimizer={"name": "adam", "lr": 0.01}, trainer={"grad_clip": 0.5})
    assert train_in_process(cfg, tmp_path / "one") == 0
    out = run_cli("train", str(write_config(cfg, tmp_path / "c.yaml")), "--runs-dir", str(tmp_path / "two"),
                  "--nproc", "2", timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    one, two = only_run(tmp_path / "one"), only_run(tmp_path / "two")
    w1, w2 = weights(one), weights(two)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], rtol=0, atol=1e-6), f"{k}: {(w1[k] - w2[k]).abs().max()}"
    rows1, rows2 = metric_rows(one), metric_rows(two)
    assert [r[:2] for r in rows2] == [r[:2] for r in rows1]
    assert [r[2] for r in rows2] == pytest.approx([r[2] for r in rows1], rel=1e-5, abs=1e-6)


@pytest.mark.slow  # three two-process runs
def test_sigterm_to_one_rank_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    # Dropout: each rank's own RNG stream must come back too. Rank 1 signals itself after
    # step 8; every rank agrees at step 9 (epoch 1, batch 3 of 6) and rank 0 checkpoints.
    cfg = ddp_config(tmp_path, plugins=[str(PLUGIN)], model={"dropout": 0.2},
                     optimizer={"name": "adam", "lr": 0.01}, callbacks=[{"name": "ddp_fault_at_step"}])
    config = write_config(cfg, tmp_path / "c.yaml")
    ref = run_cli("train", str(config), "--nproc", "2", "--runs-dir", str(tmp_path / "ref"),
                  timeout=TIMEOUT_S)
    assert ref.returncode == 0, ref.stderr[-3000:]

    cut = run_cli("train", str(config), "--nproc", "2", "--runs-dir", str(tmp_path / "cut"),
                  env={"RUNLAB_TEST_DDP_SIGNAL": "SIGTERM@8@1"}, timeout=TIMEOUT_S)
    assert cut.returncode == 128 + signal.SIGTERM, cut.stderr[-3000:]
    run_dir = only_run(tmp_path / "cut")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and (info["epoch"], info["step"]) == (1, 9)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (state["step"], state["batch_in_epoch"]) == (9, 3) and len(state["ranks"]) == 2

    resumed = run_cli("runs", "resume", str(run_dir), timeout=TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    ref_dir = only_run(tmp_path / "ref")
    w_ref, w_cut = weights(ref_dir), weights(run_dir)
    assert all(torch.equal(w_ref[k], w_cut[k]) for k in w_ref)
    assert metric_rows(run_dir) == metric_rows(ref_dir)


def test_a_failing_rank_fails_the_run_with_its_traceback_and_leaves_no_process(tmp_path):
    cfg = ddp_config(tmp_path, plugins=[str(PLUGIN)], callbacks=[{"name": "ddp_fault_at_step"}])
    config = write_config(cfg, tmp_path / "c.yaml")
    out = run_cli("train", str(config), "--nproc", "2", "--runs-dir", str(tmp_path / "runs"),
                  env={"RUNLAB_TEST_DDP_RAISE": "3@1"}, timeout=TIMEOUT_S)
    assert out.returncode == 1, out.stderr[-3000:]
    info = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert info["status"] == "failed"
    err = info["error"]
    assert err["rank"] == 1 and "rank 1 failed on purpose at step 3" in err["message"]
    assert "ddp_hooks.py" in err["traceback"] and "ValueError" in err["traceback"]
    assert live_processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow  # the check itself is unit-tested; this is the no-hang path end to end
def test_a_config_two_processes_cannot_split_is_exit_2_with_nothing_left(tmp_path):
    # 88 training samples in batches of 29: the last batch holds 1 sample for 2 processes.
    cfg = ddp_config(tmp_path, data={"batch_size": 29})
    out = run_cli("train", str(write_config(cfg, tmp_path / "c.yaml")), "--nproc", "2",
                  "--runs-dir", str(tmp_path / "runs"), timeout=TIMEOUT_S)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "data.drop_last=true" in out.stderr
    assert list((tmp_path / "runs" / "manual").iterdir()) == []
    assert live_processes_mentioning(str(tmp_path)) == []
