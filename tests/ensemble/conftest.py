"""Small MNIST-1D configs and helpers to compare ensemble members with single runs."""

from __future__ import annotations

import copy
import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import torch

from runlab.config import fill_defaults

PLUGIN = Path(__file__).parent / "plugins" / "ensemble_hooks.py"


class NoDrawing:
    """Stands in for the drawing workers of `runlab.background`: nothing is drawn."""

    def submit(self, fn, *args) -> Future:
        done: Future = Future()
        done.set_result([])
        return done


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch):
    """One torch thread (these models are tiny; a shared CPU thrashes with more) and no
    end-of-run metric plots in either mode (matplotlib costs more than the training here)."""
    import runlab.background

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(runlab.background, "_executor", NoDrawing)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")  # the mnist1d cache, shared by every test


@pytest.fixture
def make_config(data_root: Path):
    """`make_config(model={...}, trainer={...})`: 256 train samples, batches of 32, 2 epochs."""

    def make(**sections: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "name": "ens",
            "seed": 0,
            "plugins": [str(PLUGIN)],
            "data": {"name": "mnist1d", "root": str(data_root), "num_samples": 320,
                     "batch_size": 32, "val_fraction": 0.1, "test_fraction": 0.1},
            "model": {"name": "mlp", "hidden": [32, 16]},
            "optimizer": {"name": "adamw", "lr": 1.0e-2, "weight_decay": 0.01},
            "scheduler": {"name": "cosine"},
            "trainer": {"max_epochs": 2, "device": "cpu"},
            "logging": {"log_every_steps": 3, "console": False},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        return fill_defaults(copy.deepcopy(cfg))

    return make


def runs_by_seed(runs_dir: Path) -> dict[int, Path]:
    """Run folders under `runs_dir` (any depth), keyed by their seed."""
    out = {}
    for info in runs_dir.rglob("run.json"):
        out[json.loads(info.read_text())["seed"]] = info.parent
    return out


def run_info(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def weights(run_dir: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)["model"]


def max_weight_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def max_summary_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest difference of any final/min/max/best value (no best for lr and hparams);
    the metric names and their goals must match."""
    assert a.keys() == b.keys()
    assert all(a[m].get("goal") == b[m].get("goal") for m in a)
    return max(abs(a[m][s] - b[m][s]) for m in a for s in ("final", "min", "max", "best")
               if s in a[m])
