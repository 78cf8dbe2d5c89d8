"""Must-show: a CIFAR-10-shaped dataset larger than the in-memory limit trains through
DataLoader workers with augmentation, is killed with SIGKILL, resumes, and ends
bit-identical to an uninterrupted run with another number of workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

PLUGIN = Path(__file__).parents[1] / "train" / "plugins" / "resume_hooks.py"
CONFIG = {
    "name": "stream", "seed": 0, "plugins": [str(PLUGIN)],
    # 160 x 3x32x32 float32 = 1.9 MiB of train tensors, over the 1 MiB limit: DataLoader path
    "data": {"name": "synthetic_images", "n_samples": 200, "n_test": 40, "batch_size": 16,
             "val_fraction": 0.2, "test_fraction": 0.0, "memory_limit_mb": 1,
             "transforms": {"train": [{"name": "random_crop", "padding": 4},
                                      {"name": "horizontal_flip"},
                                      {"name": "normalize", "mean": 0.5, "std": 0.25}],
                            "eval": [{"name": "normalize", "mean": 0.5, "std": 0.25}]}},
    "model": {"name": "cnn", "channels": [4], "kernel_size": 3},
    "optimizer": {"name": "adam", "lr": 0.01},
    "trainer": {"max_epochs": 2, "device": "cpu", "checkpoint_every": 0, "checkpoint_every_steps": 4},
    "callbacks": [{"name": "signal_at_step"}],
    "logging": {"log_every_steps": 3, "console": False},
}


def run(tmp: Path, workers: int, *args: str, signal_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAB_")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if signal_at:
        env["RUNLAB_TEST_SIGNAL"] = signal_at
    tmp.mkdir(exist_ok=True)
    cfg = tmp / "config.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "num_workers": workers,
                                                      "root": str(tmp / "data")}}))
    return subprocess.run([sys.executable, "-m", "runlab", *(args or ("train", str(cfg), "--runs-dir",
                                                                      str(tmp / "runs")))],
                          env=env, capture_output=True, text=True, timeout=300)


def the_run(tmp: Path) -> Path:
    (found,) = list((tmp / "runs" / "manual").iterdir())
    return found


@pytest.mark.slow  # three runs of the real CLI, ~30 s on 2 shared cores
def test_streamed_augmented_run_resumes_bit_identical_after_sigkill(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    r = run(ref, 0)
    assert r.returncode == 0, r.stderr
    r = run(cut, 2, signal_at="SIGKILL@10")  # epoch 0 has 10 batches: killed in epoch 1
    assert r.returncode == -signal.SIGKILL, r.stderr
    state = torch.load(the_run(cut) / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (0, 8, 8)
    r = run(cut, 2, "runs", "resume", str(the_run(cut)))
    assert r.returncode == 0, r.stderr

    a = torch.load(the_run(ref) / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(the_run(cut) / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    summary = json.loads((the_run(ref) / "run.json").read_text())["summary"]
    assert json.loads((the_run(cut) / "run.json").read_text())["summary"] == summary
    assert "test/acc" in summary and "val/acc" in summary
