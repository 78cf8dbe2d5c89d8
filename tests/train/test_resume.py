"""Runs survive anything: real `runlab` processes are stopped by signals, killed, or made to
fail, then resumed; a resumed run must equal its uninterrupted twin bit for bit.

Every run here is a subprocess of the real CLI. A test-only plugin
(plugins/resume_hooks.py) stops a run after an exact optimiser step, so each
interruption lands where the test says: mid-epoch, with a non-empty logging window,
after a step checkpoint and after an epoch end whose rows the resume must cut away.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

PLUGIN = Path(__file__).parent / "plugins" / "resume_hooks.py"
CUSTOM_STEPS = Path(__file__).parent / "plugins" / "custom_steps.py"
TIMEOUT_S = 180

# 192 samples -> train 144 = 9 batches of 16; accumulate 2 -> 5 optimiser steps per epoch
# (steps 5, 10, 15 end epochs 0, 1, 2). Step checkpoints every 4 steps and none at epoch
# ends, so a kill at step 11 resumes from step 8 (epoch 1, batch 6) and must cut away the
# rows epoch 1's end flushed at step 10.
BASE: dict[str, Any] = {
    "name": "r",
    "seed": 0,
    "plugins": [str(PLUGIN)],
    "data": {"name": "tensors", "path": "data.npz", "batch_size": 16,
             "val_fraction": 0.125, "test_fraction": 0.125},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.3},
    "optimizer": {"name": "adam", "lr": 0.01},
    "scheduler": {"name": "steplr", "step_size": 1, "gamma": 0.7},
    "trainer": {"max_epochs": 3, "device": "cpu", "accumulate": 2,
                "checkpoint_every": 0, "checkpoint_every_steps": 4},
    "callbacks": [{"name": "signal_at_step"}],
    "logging": {"log_every_steps": 4, "console": False},
}
SCENARIOS: dict[str, dict[str, Any]] = {
    "memory": {"data": {"loader": "memory"}},
    "workers": {"data": {"loader": "dataloader", "num_workers": 2}},
    # LR scheduler stepping per step, a scheduled loss weight, and a sampling model
    # (the reparameterisation draws from the global torch RNG).
    "vae": {"model": {"name": "vae", "latent_dim": 2, "hidden": [16]},
            "loss": {"name": "elbo", "beta": {"schedule": "linear", "start": 0, "end": 1, "epochs": 2}},
            "scheduler": {"name": "onecyclelr", "max_lr": 0.02}},
    # A step of the model's own (ctx.backward, ctx.step per optimizer, ctx.log), two
    # optimizers with per-step and per-epoch schedulers, dropout and an EMA of the weights.
    "custom": {"plugins": [str(PLUGIN), str(CUSTOM_STEPS)],
               "model": {"name": "mlp_manual_step", "hidden": [32], "dropout": 0.3},
               "optimizer": {"name": "adamw", "lr": 1.0e-3}, "scheduler": None,
               "optimizers": {
                   "body": {"name": "adam", "lr": 0.01, "params": "body",
                            "scheduler": {"name": "steplr", "step_size": 3, "gamma": 0.8, "interval": "step"}},
                   "head": {"name": "sgd", "lr": 0.05, "momentum": 0.9,
                            "scheduler": {"name": "steplr", "step_size": 1, "gamma": 0.7}}},
               "callbacks": [{"name": "signal_at_step"}, {"name": "ema", "decay": 0.9}]},
    # The default step over two optimizers with parameter groups; kept epoch checkpoints.
    "multi": {"optimizer": {"name": "adamw", "lr": 1.0e-3}, "scheduler": None,
              "optimizers": {
                  "body": {"name": "adamw", "lr": 0.01, "params": "body", "no_decay_bias_norm": True,
                           "weight_decay": 0.1, "groups": [{"params": "body.1", "lr": 0.002}]},
                  "head": {"name": "adam", "lr": 0.01, "params": "head",
                           "scheduler": {"name": "steplr", "step_size": 1, "gamma": 0.7}}},
              "callbacks": [{"name": "signal_at_step"}, {"name": "keep_checkpoints", "every": 1}]},
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `over`, section by section; a component with another `name` replaces it."""
    out = dict(base)
    for k, v in over.items():
        old = out.get(k)
        same = isinstance(v, dict) and isinstance(old, dict) and v.get("name", old.get("name")) == old.get("name")
        out[k] = merge(old, v) if same else v
    return out


def env(**extra: str) -> dict[str, str]:
    """The test's environment without a runs root, single-threaded torch (2 shared cores)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAB_")}
    return {**e, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def launch(*args: str, extra_env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runlab", *map(str, args)], env=env(**(extra_env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def runlab(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runlab", *map(str, args)], env=env(**(extra_env or {})),
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    g = np.random.default_rng(0)
    x = g.normal(size=(192, 8)).astype(np.float32)
    y = (x @ g.normal(size=(8, 3))).argmax(1)
    np.savez(root / "data.npz", x=x, y=y)
    return root


def write_config(folder: Path, data_root: Path, over: dict[str, Any], name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = merge(merge(BASE, {"data": {"root": str(data_root)}}), over)
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_dir_of(runs: Path) -> Path:
    (found,) = list((runs / "manual").iterdir())
    return found


def run_json(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def csv_rows(run_dir: Path) -> list[tuple[str, ...]]:
    """metrics.csv rows without the wall-clock `time` column."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "epoch", "time", "metric", "value"]
    return [(s, e, m, v) for s, e, _, m, v in rows[1:]]


def same(a: Any, b: Any) -> bool:
    """Nested dicts/lists of tensors and plain values, equal bit for bit."""
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def assert_same_training(reference: Path, resumed: Path) -> None:
    """Bit-identical final weights and the same metrics.csv, row for row, apart from `time`."""
    last_a = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    last_b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    a, b = last_a["model"], last_b["model"]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ after resume: {different}"
    for part in ("optimizers", "callbacks"):  # every optimizer's state, the EMA's average
        assert same(last_a[part], last_b[part]), f"{part} differ after resume"
    kept = sorted(p.name for p in (reference / "checkpoints").glob("epoch-*.pt"))
    assert kept == sorted(p.name for p in (resumed / "checkpoints").glob("epoch-*.pt"))
    for name in kept:
        ka, kb = (torch.load(r / "checkpoints" / name, weights_only=True) for r in (reference, resumed))
        assert same(ka["model"], kb["model"]) and same(ka["optimizers"], kb["optimizers"]), name
    ref_rows, res_rows = csv_rows(reference), csv_rows(resumed)
    assert len(ref_rows) > 20
    assert res_rows == ref_rows
    assert run_json(resumed)["summary"] == run_json(reference)["summary"]


class References:
    """One uninterrupted run per scenario, started on first use and shared by the module."""

    def __init__(self, root: Path, data_root: Path):
        self.root, self.data_root = root, data_root
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, scenario: str) -> None:
        if scenario not in self.procs:
            folder = self.root / scenario
            cfg = write_config(folder, self.data_root, SCENARIOS[scenario])
            self.procs[scenario] = launch("train", cfg, "--runs-dir", folder / "runs")

    def get(self, scenario: str) -> Path:
        self.start(scenario)
        proc = self.procs[scenario]
        if proc.returncode is None:
            code, out = finish(proc)
            assert code == 0, out
        return run_dir_of(self.root / scenario / "runs")


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> References:
    return References(tmp_path_factory.mktemp("reference"), data_root)


def interrupt(tmp_path: Path, data_root: Path, references: References | None, scenario: str,
              sig: str, at: str) -> tuple[Path, Path, int, str]:
    """Run `scenario` until the plugin sends `sig` `at` a step (the reference runs meanwhile)."""
    cfg = write_config(tmp_path, data_root, SCENARIOS[scenario])
    proc = launch("train", cfg, "--runs-dir", tmp_path / "runs",
                  extra_env={"RUNLAB_TEST_SIGNAL": f"{sig}@{at}"})
    if references is not None:
        references.start(scenario)
    code, out = finish(proc)
    return cfg, run_dir_of(tmp_path / "runs"), code, out


def resume(run_dir: Path) -> None:
    code, out = finish(launch("runs", "resume", run_dir))
    assert code == 0, out
    assert run_json(run_dir)["status"] == "completed"


def assert_resume_marked(run_dir: Path, count: int = 1) -> None:
    log = (run_dir / "stdout.log").read_text()
    assert log.count("===== runlab: resumed at epoch") == count, log
    pairs = [(s, m) for s, _, m, _ in csv_rows(run_dir)]
    assert len(pairs) == len(set(pairs)), "metrics.csv has duplicated (step, metric) rows"


@pytest.mark.parametrize(("scenario", "at", "position"), [
    ("memory", "7", (1, 7, 4)),  # mid-epoch, half-filled logging window
    ("vae", "5", (0, 5, 9)),  # after the last batch, before validation: hparams still logged
    pytest.param("memory", "validation_end:10", (2, 10, 0),  # at an epoch end, no epoch checkpoint
                 marks=pytest.mark.slow),
])
def test_sigterm_then_resume_is_exact(tmp_path, data_root, references, scenario, at, position):
    _, run_dir, code, out = interrupt(tmp_path, data_root, references, scenario, "SIGTERM", at)

    assert code == 128 + signal.SIGTERM, out
    info = run_json(run_dir)
    assert info["status"] == "interrupted" and info["signal"] == "SIGTERM"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == position
    assert (info["epoch"], info["step"]) == position[:2]
    assert f"runlab runs resume {info['id']}" in out

    resume(run_dir)
    assert_resume_marked(run_dir)
    assert_same_training(references.get(scenario), run_dir)


@pytest.mark.parametrize("scenario", [
    "memory", "custom", pytest.param("multi", marks=pytest.mark.slow), pytest.param("workers", marks=pytest.mark.slow),
    pytest.param("vae", marks=pytest.mark.slow)])
def test_sigkill_after_step_checkpoint_then_resume_is_exact(tmp_path, data_root, references, scenario):
    _, run_dir, code, out = interrupt(tmp_path, data_root, references, scenario, "SIGKILL", "11")

    assert code == -signal.SIGKILL, out
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (1, 8, 6)
    assert os.path.getsize(run_dir / "metrics.csv") > state["trainer"]["csv_offset"]  # rows to cut
    listed = runlab("runs", "list", run_dir.parent, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["crashed"]

    resume(run_dir)
    assert_resume_marked(run_dir)
    assert_same_training(references.get(scenario), run_dir)


@pytest.mark.parametrize("sig", ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow)])
def test_signal_to_the_process_group_with_workers_then_resume_is_exact(tmp_path, data_root, references, sig):
    """SLURM's scancel (SIGTERM) and Ctrl-C (SIGINT) reach the DataLoader workers too;
    the run must still finish its step, save and stop cleanly."""
    cfg = write_config(tmp_path, data_root, SCENARIOS["workers"])
    proc = launch("train", cfg, "--runs-dir", tmp_path / "runs", start_new_session=True,
                  extra_env={"RUNLAB_TEST_STEP_SLEEP": "0.15"})
    references.start("workers")
    deadline = time.monotonic() + TIMEOUT_S
    while not list(tmp_path.glob("runs/manual/*/checkpoints/last.pt")):  # step 4 is done
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.02)
    os.killpg(proc.pid, getattr(signal, sig))
    code, out = finish(proc)
    run_dir = run_dir_of(tmp_path / "runs")

    assert code == 128 + getattr(signal, sig), out
    assert run_json(run_dir)["status"] == "interrupted"
    resume(run_dir)
    assert_same_training(references.get("workers"), run_dir)


def test_exception_fails_the_run_with_its_traceback(tmp_path, data_root):
    cfg = write_config(tmp_path, data_root, {"model": {"name": "flaky_linear", "fail": "raise", "at": 3}})
    r = runlab("train", cfg, "--runs-dir", tmp_path / "runs")
    run_dir = run_dir_of(tmp_path / "runs")

    assert r.returncode == 1, r.stdout + r.stderr
    info = run_json(run_dir)
    assert info["status"] == "failed" and info["step"] == 1  # steps 1 and 2 were 4 batches
    assert info["error"]["type"] == "RuntimeError"
    assert "flaky_linear failed on purpose at forward call 3" in info["error"]["message"]
    assert "resume_hooks.py" in info["error"]["traceback"]
    log = (run_dir / "stdout.log").read_text()
    assert "Traceback (most recent call last)" in log and "failed on purpose" in log


def test_nan_loss_fails_naming_the_steps_and_the_last_finite_values(tmp_path, data_root):
    # 9 steps per epoch, logged at steps 4, 8, 9 (epoch end), 12; NaN from step 10 on.
    over = {"model": {"name": "flaky_linear", "fail": "nan", "at": 10}, "trainer": {"accumulate": 1}}
    r = runlab("train", write_config(tmp_path, data_root, over), "--runs-dir", tmp_path / "runs")
    run_dir = run_dir_of(tmp_path / "runs")

    assert r.returncode == 1, r.stdout + r.stderr
    info = run_json(run_dir)
    assert info["status"] == "failed" and info["error"]["type"] == "NonFiniteLoss"
    message = info["error"]["message"]
    assert "non-finite loss in steps 10-12 (epoch 1;" in message
    last = {m: v for s, _, m, v in csv_rows(run_dir) if s == "9" and m.startswith("train/")}
    for metric, value in last.items():
        assert f"{metric}={float(value):.6g}" in message
    assert message in (run_dir / "stdout.log").read_text()


def test_resume_refuses_a_changed_config_unless_forced(tmp_path, data_root):
    cfg, run_dir, code, out = interrupt(tmp_path, data_root, None, "memory", "SIGTERM", "3")
    assert code == 128 + signal.SIGTERM, out

    edited = write_config(tmp_path, data_root, merge(SCENARIOS["memory"], {
        "optimizer": {"lr": 0.02}, "model": {"hidden": [64]}}), name="edited.yaml")
    r = runlab("train", edited, "--run-dir", run_dir)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "optimizer.lr: 0.01 -> 0.02" in r.stderr and "model.hidden: [32] -> [64]" in r.stderr
    assert "--force" in r.stderr
    r = runlab("train", cfg, "optimizer.lr=0.05", "--run-dir", run_dir)
    assert r.returncode == 2 and "optimizer.lr: 0.01 -> 0.05" in r.stderr, r.stderr
    r = runlab("train", edited, "--run-dir", run_dir, "--force")  # forced, but the weights do not fit
    assert r.returncode == 2 and "does not fit" in r.stderr, r.stderr

    stored = yaml.safe_load((run_dir / "config.yaml").read_text())  # edited by hand
    stored["scheduler"]["gamma"] = 0.5
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    r = runlab("runs", "resume", run_dir)
    assert r.returncode == 2 and "scheduler.gamma: 0.7 -> 0.5" in r.stderr, r.stderr
    assert run_json(run_dir)["status"] == "interrupted"  # refusals leave the run as it was

    stale = run_dir / "checkpoints" / ".last.pt.99999.tmp"  # as a kill mid-write leaves it
    stale.write_bytes(b"half a checkpoint")
    r = runlab("runs", "resume", run_dir, "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not stale.exists()
    info = run_json(run_dir)
    assert info["status"] == "completed" and info["forced_changes"] == ["scheduler.gamma: 0.7 -> 0.5"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["scheduler"]["gamma"] == 0.5
    assert_resume_marked(run_dir)


def test_bad_configs_exit_2_and_leave_no_run_folder(tmp_path, data_root):
    cfg = write_config(tmp_path, data_root, {"model": {"name": "mlpp"}, "scheduler": {"gama": 0.5}})
    r = runlab("train", cfg, "--runs-dir", tmp_path / "runs")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "model.name: unknown model 'mlpp'. Did you mean 'mlp'?" in r.stderr
    assert "scheduler.gama" in r.stderr  # every problem at once
    assert not (tmp_path / "runs").exists()

    cfg = write_config(tmp_path, data_root, {"data": {"path": "missing.npz"}})  # found while building
    r = runlab("train", cfg, "--run-dir", tmp_path / "given")
    assert r.returncode == 2 and "missing.npz does not exist" in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "given").exists()


def test_a_run_whose_process_died_before_training_began_shows_as_crashed():
    from runlab.runs.status import effective_status

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    info = {"status": "created", "pid": gone.pid, "host": socket.gethostname(), "heartbeat": time.time()}
    assert effective_status(info) == "crashed"
    assert effective_status({**info, "pid": os.getpid()}) == "created"


def test_a_format_1_checkpoint_still_resumes_exactly(tmp_path, data_root, references):
    """Checkpoints written before several optimizers existed held one `optimizer` and
    `scheduler`; they load as the optimizer `main`."""
    _, run_dir, code, out = interrupt(tmp_path, data_root, references, "memory", "SIGTERM", "7")
    assert code == 128 + signal.SIGTERM, out
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["format"] == 2 and list(state["optimizers"]) == ["main"]
    main = state.pop("optimizers")["main"]
    state.update(format=1, optimizer=main["optimizer"], scheduler=main["scheduler"])
    torch.save(state, last)

    resume(run_dir)
    assert_same_training(references.get("memory"), run_dir)
