"""Ensembles as runs: SIGTERM + resume is exact, completed members are skipped, a member
resumed alone is exact too, and what cannot vectorise is refused or falls back."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tests.ensemble.conftest import PLUGIN, run_info, runs_by_seed, weights

from runlab.ensemble.api import train_seeds
from runlab.errors import ConfigError
from runlab.train.api import resume, train

SEEDS = [0, 1]


def metric_rows(run_dir: Path) -> list[tuple[str, ...]]:
    """metrics.csv without its wall-clock column."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    return [tuple(c for i, c in enumerate(line.split(",")) if i != 2) for line in lines]


STOP_AT_11 = {"RUNLAB_TEST_SIGNAL": "SIGTERM@11", "OMP_NUM_THREADS": "1"}


def reference_and_interrupted(cfg: dict, tmp_path: Path):
    """The uninterrupted ensemble's runs by seed, and the same ensemble started by the CLI
    into `ens/member<seed>` and stopped by SIGTERM at step 11: (ref, member dirs, output)."""
    assert train_seeds(cfg, SEEDS, tmp_path / "ref") == 0
    ref = runs_by_seed(tmp_path / "ref")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    dirs = [tmp_path / "ens" / f"member{s}" for s in SEEDS]
    cmd = [sys.executable, "-m", "runlab", "train", str(config), "--seeds", "0,1"]
    for d in dirs:
        cmd += ["--run-dir", str(d)]
    out = subprocess.run(cmd, env={**os.environ, **STOP_AT_11}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 128 + signal.SIGTERM, out.stdout + out.stderr
    return ref, dirs, out


def test_sigterm_then_resume_equals_uninterrupted(make_config, tmp_path: Path) -> None:
    # dropout: the resumed ensemble must also continue the shared RNG stream exactly
    cfg = make_config(model={"name": "mlp", "hidden": [32, 16], "dropout": 0.2},
                      trainer={"max_epochs": 3, "checkpoint_every_steps": 4},
                      callbacks=[{"name": "signal_once_at_step"}])
    ref, dirs, out = reference_and_interrupted(cfg, tmp_path)
    assert "resume the ensemble with" in out.stdout
    for d in dirs:
        info = run_info(d)
        assert (info["status"], info["signal"], info["step"]) == ("interrupted", "SIGTERM", 11)
    alone = tmp_path / "alone"
    shutil.copytree(dirs[1], alone)

    assert train_seeds(cfg, SEEDS, tmp_path, run_dirs=dirs) == 0  # what a sweep's rerun does
    for seed, d in zip(SEEDS, dirs, strict=True):
        info = run_info(d)
        assert info["status"] == "completed" and info["resumes"] == 1
        assert info["ensemble"] == run_info(dirs[0])["ensemble"]
        for name in ("last.pt", "best.pt"):
            a, b = weights(d, name), weights(ref[seed], name)
            assert all(torch.equal(a[k], b[k]) for k in a), (seed, name)
        assert metric_rows(d) == metric_rows(ref[seed])
        assert info["summary"] == run_info(ref[seed])["summary"]

    # the same command again: every member is completed, nothing is touched
    before = [(d / "run.json").read_text() for d in dirs]
    assert train_seeds(cfg, SEEDS, tmp_path, run_dirs=dirs) == 0
    assert [(d / "run.json").read_text() for d in dirs] == before

    # `runlab runs resume <member>` finishes one member alone, in its chunk (seed 0's place
    # computed without records): bit for bit its uninterrupted twin, and nothing else written
    others = sorted(p.name for p in tmp_path.iterdir())
    assert resume(alone) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == others
    info = run_info(alone)
    assert info["status"] == "completed" and info["epoch"] == 3 and info["resumes"] == 1
    for name in ("last.pt", "best.pt"):
        a, b = weights(alone, name), weights(ref[1], name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert metric_rows(alone) == metric_rows(ref[1])
    assert info["summary"] == run_info(ref[1])["summary"]


def test_non_elementwise_optimizer_is_refused(make_config, tmp_path: Path) -> None:
    cfg = make_config(optimizer={"name": "adafactor", "lr": 0.01, "weight_decay": 0.0})
    with pytest.raises(ConfigError, match="--no-vectorize") as err:
        train_seeds(cfg, SEEDS, tmp_path)
    assert "optimizer.name: 'adafactor'" in str(err.value)
    assert not (tmp_path / "manual").exists()


@pytest.mark.parametrize(("model", "reason"), [("branchy", "data-dependent control flow"),
                                               ("item_scaled", ".item()")])
def test_unvectorisable_model_falls_back(model: str, reason: str, make_config, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    cfg = make_config(trainer={"max_epochs": 1})
    cfg["model"] = {"name": model}
    assert train_seeds(cfg, SEEDS, tmp_path) == 0
    text = capsys.readouterr().out
    assert f"model '{model}'" in text and reason in text and "one after another" in text
    runs = runs_by_seed(tmp_path)
    assert sorted(runs) == SEEDS
    assert all(run_info(r)["status"] == "completed" for r in runs.values())
    assert len({run_info(r)["ensemble"] for r in runs.values()}) == 1


def test_no_vectorize_trains_one_after_another(make_config, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    cfg = make_config(trainer={"max_epochs": 1})
    assert train_seeds(cfg, [2, 5], tmp_path, vectorize=False) == 0
    assert "vectorised" not in capsys.readouterr().out
    runs = runs_by_seed(tmp_path)
    assert sorted(runs) == [2, 5]
    assert yaml.safe_load((runs[5] / "config.yaml").read_text())["seed"] == 5


CUSTOM_STEPS = Path(__file__).parents[1] / "train" / "plugins" / "custom_steps.py"


def merged(cfg: dict, sections: dict) -> dict:
    """`cfg` with `sections` set: `section` replaced whole, `section.key` one key of it."""
    for key, value in sections.items():
        section, _, sub = key.partition(".")
        if sub:
            cfg[section][sub] = value
        else:
            cfg[key] = value
    return cfg


@pytest.mark.parametrize(("sections", "reason"), [
    ({"model": {"name": "mlp_manual_step", "hidden": [16]}}, "defines its own training_step"),
    ({"optimizer": {"name": "adamw", "lr": 1.0e-3}, "scheduler": None,
      "optimizers": {"body": {"name": "adam", "lr": 0.01, "params": "body"},
                     "head": {"name": "sgd", "lr": 0.1, "params": "head"}}}, "several optimizers"),
    ({"callbacks": [{"name": "ema", "decay": 0.9}]}, "callback 'ema' needs the single-run"),
    ({"data.transforms": {"train": [{"name": "gaussian_noise", "std": 0.05}]}}, "data.transforms"),
])
def test_what_does_not_vectorise_trains_one_seed_after_another(
        sections, reason, make_config, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = merged(make_config(trainer={"max_epochs": 1}, plugins=[str(PLUGIN), str(CUSTOM_STEPS)]), sections)
    assert train_seeds(cfg, SEEDS, tmp_path) == 0
    text = capsys.readouterr().out
    assert "cannot be trained vectorised" in text and reason in text and "one after another" in text
    runs = runs_by_seed(tmp_path)
    assert sorted(runs) == SEEDS
    assert all(run_info(r)["status"] == "completed" for r in runs.values())
    # each member is the plain single run of its seed
    alone = merged(make_config(trainer={"max_epochs": 1}, plugins=[str(PLUGIN), str(CUSTOM_STEPS)],
                               seed=SEEDS[1]), sections)
    assert train(alone, tmp_path / "alone") == 0
    (single,) = runs_by_seed(tmp_path / "alone").values()
    a, b = weights(single), weights(runs[SEEDS[1]])
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_members_whose_last_checkpoints_differ_resume_from_their_common_step(make_config, tmp_path: Path) -> None:
    """A kill between the background writes of two members' checkpoints leaves one member a
    checkpoint ahead; the ensemble resumes from the step both have (previous.pt), so the
    shared dropout stream continues exactly as in the uninterrupted ensemble."""
    cfg = make_config(model={"name": "mlp", "hidden": [32, 16], "dropout": 0.2},
                      trainer={"max_epochs": 2, "checkpoint_every_steps": 4},
                      callbacks=[{"name": "signal_once_at_step"}])
    ref, dirs, out = reference_and_interrupted(cfg, tmp_path)
    behind = dirs[1] / "checkpoints"
    assert torch.load(behind / "previous.pt", weights_only=True)["step"] == 8
    os.replace(behind / "previous.pt", behind / "last.pt")  # its step-11 write never landed

    # `runs show` of any member prints the command that resumes the whole ensemble: run it
    env = {**os.environ, **STOP_AT_11}
    shown = subprocess.run([sys.executable, "-m", "runlab", "runs", "show", str(dirs[1])],
                           env={**env, "COLUMNS": "400"}, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    (line,) = [x for x in shown.stdout.splitlines() if x.startswith("resume the ensemble (2 seeds): ")]
    command = line.split(": ", 1)[1].split()
    assert command[:2] == ["runlab", "train"] and command[3:5] == ["--seeds", "0,1"]
    assert f"runlab runs resume {run_info(dirs[1])['id']}" in shown.stdout
    resumed = subprocess.run([sys.executable, "-m", "runlab", *command[1:]], capture_output=True, text=True,
                             env={**env, "RUNLAB_TEST_SIGNAL": ""}, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for seed, d in zip(SEEDS, dirs, strict=True):
        a, b = weights(d), weights(ref[seed])
        assert all(torch.equal(a[k], b[k]) for k in a), seed
        assert metric_rows(d) == metric_rows(ref[seed])
