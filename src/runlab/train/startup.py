"""Opt-in start-up profiling: how long from launching a process to its first training step.

Set `RUNLAB_PROFILE_STARTUP=1` and the run prints, once, to stderr:

    runlab: first training step done 2.134 s after process start

The start is the process's creation time (from psutil). A launcher that wants to count
its own fork/exec too passes its launch time instead: `RUNLAB_PROFILE_STARTUP=<time.time()>`.
Nothing is added per step: an optimizer post-step hook fires once and removes itself.
"""

from __future__ import annotations

import os
import sys
import time

import torch

ENV = "RUNLAB_PROFILE_STARTUP"


def process_start_time() -> float | None:
    """Epoch seconds at which this process started: the launcher's stamp, else psutil's."""
    value = os.environ.get(ENV, "")
    try:
        stamp = float(value)
    except ValueError:
        stamp = 0.0
    if stamp > 1e9:  # an epoch timestamp, not a flag like "1"
        return stamp
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().create_time()


def watch_first_step(optimizer: torch.optim.Optimizer) -> None:
    """When RUNLAB_PROFILE_STARTUP is set, report the time of the first optimizer step."""
    if not os.environ.get(ENV):
        return
    start = process_start_time()
    if start is None:
        print(f"runlab: {ENV} needs psutil or a launch timestamp as its value", file=sys.stderr)
        return

    def report(*_: object) -> None:
        handle.remove()
        print(f"runlab: first training step done {time.time() - start:.3f} s after process start",
              file=sys.stderr, flush=True)

    handle = optimizer.register_step_post_hook(report)
