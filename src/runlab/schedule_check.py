"""Warnings for schedules that end before training does.

`scheduler: {name: warmup_cosine, total: 30}` with `trainer.max_epochs: 60` trains the last
30 epochs at the final lr (0 by default), and a cosine `T_max: 30` climbs back up: both
are legal and almost always a slip. Scheduled hyperparameters that end early and then
hold 0 (`{schedule: linear, start: 1, end: 0, epochs: 10}`) are the same slip; one
that holds another value (a KL warm-up to 1) is the usual recipe and is left alone.

Example:
    >>> cfg = load_config("configs/quickstart.yaml", ["scheduler.T_max=5"])
    >>> schedule_warnings(cfg, steps_per_epoch=29)
    ['scheduler.T_max: 5 epochs, but the run is 15 epochs long (trainer.max_epochs 15); ...']
"""

from __future__ import annotations

import sys
from typing import Any

from runlab.hparams import is_schedule

# What an LR scheduler does once its length parameter has run out.
AFTER_END = {
    "T_max": "CosineAnnealingLR climbs back towards the initial lr",
    "total": "the lr stays at min_ratio * lr",
    "total_steps": "OneCycleLR fails at the first step past the end",
}
# Hyperparameter schedules that hold their `end` (or `value`) once their length is reached.
HOLDING = {"linear": "end", "cosine": "end", "warmup": "value"}
_shown: set[str] = set()


def schedule_warnings(cfg: dict[str, Any], steps_per_epoch: int) -> list[str]:
    """Every LR or hyperparameter schedule in `cfg` that ends before the run does."""
    epochs = cfg["trainer"]["max_epochs"]
    max_steps = cfg["trainer"].get("max_steps")
    run_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps,
                                                                       epochs * steps_per_epoch)
    run_epochs = run_steps / steps_per_epoch
    length = f"trainer.max_epochs {epochs}" + (f", trainer.max_steps {max_steps}"
                                               if max_steps is not None else "")
    out = []
    sched = cfg.get("scheduler")
    if isinstance(sched, dict):
        step_unit = sched.get("interval", "epoch") == "step"
        run, unit = (run_steps, "steps") if step_unit else (run_epochs, "epochs")
        for param, after in AFTER_END.items():
            value = sched.get(param)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < run:
                out.append(f"scheduler.{param}: {value:g} {unit}, but the run is {run:g} {unit} "
                           f"long ({length}); after {unit[:-1]} {value:g} {after}. Leave "
                           f"{param} out to follow the run length")
    for section in ("model", "loss"):
        params = cfg.get(section)
        for name, spec in (params.items() if isinstance(params, dict) else ()):
            held = HOLDING.get(spec.get("schedule")) if is_schedule(spec) else None
            if held is None or spec.get(held, 0.0 if held == "end" else None) != 0:
                continue
            unit = "steps" if spec.get("steps") is not None else "epochs"
            end = spec.get(unit, 1.0) + spec.get("delay", 0.0)
            run = run_steps if unit == "steps" else run_epochs
            if end < run:
                out.append(f"{section}.{name}: the {spec['schedule']} schedule reaches 0 at "
                           f"{unit[:-1]} {end:g} and holds it for the rest of the run "
                           f"({run:g} {unit}, {length})")
    return out


def warn_schedules(cfg: dict[str, Any], steps_per_epoch: int) -> None:
    """Print each warning once per process (an ensemble's members share their schedules)."""
    for message in schedule_warnings(cfg, steps_per_epoch):
        if message not in _shown:
            _shown.add(message)
            print(f"runlab: warning: {message}", file=sys.stderr)
