"""Hyperparameter sweeps over seeds: grid, random and TPE search, local and SLURM launchers.

Example:
    >>> from runlab.sweep import load_sweep, run_sweep
    >>> spec = load_sweep("sweeps/vae_beta.yaml")
    >>> run_sweep("sweeps/vae_beta.yaml", workers=2)   # exit code: 0 ok, 1 a run failed
"""

from __future__ import annotations

from runlab.lazy import lazy_exports

__all__ = ["SweepSpec", "load_sweep", "run_sweep"]

# Lazy, so that importing runlab.sweep.cli (for `runlab --help`) loads nothing heavy.
__getattr__ = lazy_exports(__name__, {"run_sweep": "runner", "SweepSpec": "spec", "load_sweep": "spec"})
