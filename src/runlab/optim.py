"""Optimizers and LR schedulers: every `torch.optim` / `torch.optim.lr_scheduler` class by
name (case-insensitive), plus `warmup_cosine`, and any registered custom one."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from runlab.registry import OPTIMIZERS, SCHEDULERS

# Optimisers whose update of each parameter element depends only on that element's
# gradient history: one optimiser over stacked ensemble members is exact for these.
ELEMENTWISE = {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam",
               "radam", "asgd", "rprop", "sparseadam"}

for _name, _cls in vars(torch.optim).items():
    if inspect.isclass(_cls) and issubclass(_cls, torch.optim.Optimizer) and _cls is not torch.optim.Optimizer:
        OPTIMIZERS.add(_name.lower(), _cls, f"torch.optim.{_name}")

_SKIP = {"LRScheduler", "_LRScheduler", "ChainedScheduler", "SequentialLR", "LambdaLR",
         "MultiplicativeLR"}  # need callables or other schedulers: not expressible in YAML
for _name, _cls in vars(torch.optim.lr_scheduler).items():
    if (inspect.isclass(_cls) and _name not in _SKIP and not _name.startswith("_")
            and (issubclass(_cls, torch.optim.lr_scheduler.LRScheduler)
                 or _name == "ReduceLROnPlateau")):
        SCHEDULERS.add(_name.lower(), _cls, f"torch.optim.lr_scheduler.{_name}")
SCHEDULERS.add("cosine", torch.optim.lr_scheduler.CosineAnnealingLR,
               "Cosine annealing to eta_min over the run (CosineAnnealingLR; T_max defaults to the run length)")


@SCHEDULERS.register("warmup_cosine")
class WarmupCosine(torch.optim.lr_scheduler.LambdaLR):
    """Linear warm-up for `warmup` intervals, then cosine decay to `min_ratio` * lr at `total`."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: int = 1, total: int = 10,
                 min_ratio: float = 0.0):
        def factor(t: int) -> float:
            if t < warmup:
                return (t + 1) / (warmup + 1)
            frac = min((t - warmup) / max(1, total - warmup), 1.0)
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))

        super().__init__(optimizer, factor)


# Parameters the framework fills in from the run length when the config leaves them out.
LENGTH_PARAMS = ("T_max", "total", "total_steps")


def build_optimizer(cfg: dict[str, Any], params) -> torch.optim.Optimizer:
    spec = {k: v for k, v in cfg.items() if k != "name"}
    return OPTIMIZERS.get(cfg["name"]).obj(params, **spec)


def scheduler_params(cfg: dict[str, Any]) -> tuple[dict[str, Any], str, str | None]:
    """Split a scheduler config into constructor params, interval and monitor."""
    spec = {k: v for k, v in cfg.items() if k not in ("name", "interval", "monitor")}
    return spec, cfg.get("interval", "epoch"), cfg.get("monitor")


def build_scheduler(cfg: dict[str, Any] | None, optimizer: torch.optim.Optimizer,
                    epochs: int, steps_per_epoch: int, rules: Any = None):
    """The scheduler, its interval ("epoch" or "step") and the metric it monitors (plateau).
    A plateau scheduler's `mode` defaults to its monitor's goal (`rules`: the run's
    `runlab.metric_rules.MetricRules`)."""
    if not cfg:
        return None, "epoch", None
    spec, interval, monitor = scheduler_params(cfg)
    entry = SCHEDULERS.get(cfg["name"])
    if entry.name == "reducelronplateau" and "mode" not in spec:
        from runlab.metric_rules import MetricRules

        goal = (rules or MetricRules()).goal(monitor or "val/loss")
        spec["mode"] = "max" if goal == "max" else "min"
    length = epochs if interval == "epoch" else epochs * steps_per_epoch
    accepted = entry.parameters()
    for param in LENGTH_PARAMS:
        if param in accepted and param not in spec and not (param == "total_steps" and "epochs" in spec):
            spec[param] = length
    sched = entry.obj(optimizer, **spec)
    if entry.name == "reducelronplateau":
        monitor = monitor or "val/loss"
    return sched, interval, monitor
