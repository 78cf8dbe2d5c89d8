"""Hyperparameter sweeps over seeds: grid, random and TPE search, local and SLURM launchers.

Example:
    >>> from runlab.sweep import load_sweep, run_sweep
    >>> spec = load_sweep("sweeps/vae_beta.yaml")
    >>> run_sweep("sweeps/vae_beta.yaml", workers=2)   # exit code: 0 ok, 1 a run failed
"""

from __future__ import annotations

from typing import Any

__all__ = ["SweepSpec", "load_sweep", "run_sweep"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing runlab.sweep.cli (for `runlab --help`) loads nothing heavy.
    if name == "run_sweep":
        from runlab.sweep.runner import run_sweep

        return run_sweep
    if name in ("SweepSpec", "load_sweep"):
        from runlab.sweep import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'runlab.sweep' has no attribute {name!r}")
