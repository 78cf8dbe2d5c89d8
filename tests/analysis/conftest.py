"""Synthetic run folders in the docs/INTERNALS.md format, until the real trainer writes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from runlab.analysis.synthetic import make_diagnostic
from runlab.analysis.synthetic import make_run as _make_run


@pytest.fixture
def make_run() -> Callable[..., Path]:
    """`make_run(root, name, config, metrics, status="completed", **kw)` -> run folder."""
    return _make_run


def curve(lr: float, width: int, seed: int, n: int = 20) -> dict[str, np.ndarray]:
    """Loss falls faster with a larger lr; accuracy mirrors it; seeds add noise."""
    rng = np.random.default_rng(1000 * seed + width)
    t = np.arange(1, n + 1)
    loss = np.exp(-t * lr * 10) + 0.05 * width / 64 + 0.02 * rng.standard_normal(n)
    return {"train/loss": loss, "val/loss": loss + 0.05, "val/acc": 1 - loss / 2}


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    return build_sweep(tmp_path)


def build_sweep(base: Path) -> Path:
    """base/runs/sweeps/demo: optimizer.lr in {0.01, 0.1} x model.width in {32, 64} x 3 seeds,
    plus one failed and one running run; each sweep run has two diagnostics images."""
    root = base / "runs" / "sweeps" / "demo"
    for lr in (0.01, 0.1):
        for width in (32, 64):
            for seed in range(3):
                cfg = {"seed": seed, "data": {"root": "./data"},
                       "model": {"name": "mlp", "width": width, "hidden": [width, width]},
                       "optimizer": {"name": "adamw", "lr": lr}}
                folder = _make_run(root, f"demo-lr{lr}-w{width}-s{seed}", cfg,
                                   curve(lr, width, seed), sweep={"name": "demo"})
                make_diagnostic(folder, "reconstructions", 10)
                make_diagnostic(folder, "reconstructions", 20)
    bad = {"seed": 0, "data": {"root": "./data"},
           "model": {"name": "mlp", "width": 32, "hidden": [32, 32]},
           "optimizer": {"name": "adamw", "lr": 0.01}}
    _make_run(root, "demo-failed", bad, curve(0.01, 32, 9, n=5), status="failed")
    _make_run(root, "demo-running", bad, curve(0.01, 32, 8, n=5), status="running")
    return root
