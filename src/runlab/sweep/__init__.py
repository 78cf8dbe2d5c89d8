"""Hyperparameter sweeps over seeds: grid, random and TPE search, local and SLURM launchers.

Example:
    >>> from runlab.sweep import load_sweep, run_sweep
    >>> spec = load_sweep("sweeps/vae_beta.yaml")
    >>> run_sweep("sweeps/vae_beta.yaml", workers=2)   # exit code: 0 ok, 1 a run failed
"""

from runlab.sweep.runner import run_sweep
from runlab.sweep.spec import SweepSpec, load_sweep

__all__ = ["SweepSpec", "load_sweep", "run_sweep"]
