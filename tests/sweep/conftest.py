"""Fixtures for sweep tests: a tiny base config, sweep files, a stand-in trainer."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

FAKE_TRAIN = (sys.executable, str(Path(__file__).with_name("fake_train.py")))

TINY = {
    "name": "tiny",
    "data": {"name": "moons", "n_samples": 64, "batch_size": 16},
    "model": {"name": "mlp", "hidden": [8]},
    "optimizer": {"name": "adam", "lr": 0.001},
    "trainer": {"max_epochs": 2, "device": "cpu"},
    "logging": {"console": False},
}


@pytest.fixture
def base_config(tmp_path: Path) -> Path:
    """configs/tiny.yaml: moons (64 samples), mlp [8], 2 epochs on CPU."""
    path = tmp_path / "configs" / "tiny.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return path


@pytest.fixture
def make_sweep(tmp_path: Path, base_config: Path) -> Callable[..., Path]:
    """Write sweeps/<name>.yaml over the tiny base; keyword arguments become its keys."""

    def make(name: str = "sw", **keys: object) -> Path:
        spec = {"base": "../configs/tiny.yaml", "name": name,
                "metric": {"name": "val/loss", "goal": "minimize"},
                "parameters": {"optimizer.lr": [0.001, 0.01]}, "seeds": 3,
                "launcher": {"name": "local", "workers": 2}, **keys}
        path = tmp_path / "sweeps" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return make


@pytest.fixture
def fake_base(base_config: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Give the base config `fake:` settings for the stand-in trainer (skips validation)."""
    import runlab.sweep.settings as settings

    monkeypatch.setattr(settings, "_validator", lambda: None)

    def configure(**fake: object) -> None:
        cfg = yaml.safe_load(base_config.read_text())
        cfg["fake"] = fake
        base_config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    return configure


from .slurm_cluster import slurm_cluster  # noqa: E402, F401 - the session fixture
