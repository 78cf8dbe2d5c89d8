"""Helpers shared by the tests: a tiny config and the real CLI in a subprocess."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from runlab.config import fill_defaults


def tiny_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A small MLP on 64 synthetic samples for 2 epochs on CPU; sections override."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "data": {"name": "moons", "n_samples": 64, "batch_size": 16, "root": str(tmp_path / "data")},
        "model": {"name": "mlp", "hidden": [8]},
        "optimizer": {"name": "adam", "lr": 1.0e-2},
        "trainer": {"max_epochs": 2, "device": "cpu"},
        "logging": {"log_every_steps": 1, "console": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return fill_defaults(cfg)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real `runlab` command in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "runlab", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def importable(module: str) -> bool:
    """Whether `module` imports here: a missing package raises ImportError, but a torchvision
    (or timm) wheel built for another torch fails with RuntimeError/OSError."""
    try:
        importlib.import_module(module)
        return True
    except Exception:  # noqa: BLE001
        return False
