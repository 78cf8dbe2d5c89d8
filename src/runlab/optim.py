"""Optimizers and LR schedulers: every `torch.optim` / `torch.optim.lr_scheduler` class by
name (case-insensitive), plus `warmup_cosine`, and any registered custom one; and the
run's named optimizers (`optimizers:`, or the one `optimizer:`) with their parameter
groups and schedulers (`build_optimizers`)."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from runlab.config import did_you_mean
from runlab.errors import ConfigError
from runlab.registry import OPTIMIZERS, SCHEDULERS
from runlab.runs.checkpoint import MAIN  # the optimizer of `optimizer:` / `scheduler:`

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


# ---------------------------------------------------------------- several optimizers

# Keys of an optimizer's config that the framework consumes (the rest go to its constructor).
OPTIMIZER_KEYS = ("params", "groups", "no_decay_bias_norm", "scheduler")
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
              *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))


@dataclass
class OptimizerSlot:
    """One named optimizer, the parameters it steps (for gradient clipping) and its LR
    scheduler with the interval it steps at and the metric it follows (plateau)."""

    name: str
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    scheduler: Any = None
    interval: str = "epoch"
    monitor: str | None = None


def optimizer_specs(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's optimizers by name: `optimizers:`, or `optimizer:` + `scheduler:` as 'main'."""
    if cfg.get("optimizers"):
        return {str(name): dict(spec) for name, spec in cfg["optimizers"].items()}
    return {MAIN: {**cfg["optimizer"], "scheduler": cfg.get("scheduler")}}


def matches(name: str, prefixes: str | list[str]) -> bool:
    """Whether parameter `name` lies in one of the modules named by `prefixes` ('' = all)."""
    prefixes = [prefixes] if isinstance(prefixes, str) else prefixes
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)


def assign_params(specs: dict[str, dict[str, Any]],
                  named: list[tuple[str, nn.Parameter]]) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Each optimizer's parameters (model order): those its `params` prefixes name; the one
    optimizer without `params` takes the rest. Raises ConfigError on overlaps, prefixes
    that match nothing, and parameters left without an optimizer."""
    problems, owner = [], {}
    for opt, spec in specs.items():
        if spec.get("params") is None:
            continue
        prefixes = [spec["params"]] if isinstance(spec["params"], str) else list(spec["params"])
        for prefix in prefixes:
            hits = [n for n, _ in named if matches(n, prefix)]
            if not hits:
                problems.append(_no_match(f"optimizers.{opt}.params", prefix, named))
            for n in hits:
                if n in owner and owner[n] != opt:
                    problems.append(f"optimizers.{opt}.params: parameter {n!r} is already stepped by "
                                    f"optimizer {owner[n]!r}; give each parameter one optimizer")
                owner.setdefault(n, opt)
    rest = [opt for opt, spec in specs.items() if spec.get("params") is None]
    left = [n for n, _ in named if n not in owner]
    if rest:
        owner.update((n, rest[0]) for n in left)
    elif left:
        problems.append(f"optimizers: parameters {', '.join(left)} are in no optimizer's params; add "
                        "their modules to one, or leave one optimizer without params to take the rest")
    if problems:
        raise ConfigError(problems)
    return {opt: [(n, p) for n, p in named if owner[n] == opt] for opt in specs}


def _no_match(key: str, prefix: str, named: list[tuple[str, nn.Parameter]]) -> str:
    parts = [n.split(".")[:-1] for n, _ in named]
    modules = sorted({".".join(p[:i]) for p in parts for i in range(1, min(len(p), 2) + 1)})
    return (f"{key}: {prefix!r} names no parameter of the model.{did_you_mean(prefix, modules)} "
            f"Modules: {', '.join(modules) or 'none'}")


def param_groups(key: str, spec: dict[str, Any], named: list[tuple[str, nn.Parameter]],
                 no_decay_ids: set[int]) -> list[nn.Parameter] | list[dict[str, Any]]:
    """The optimizer's parameters as torch param groups: each of `groups` takes the
    parameters its `params` prefixes name (first match wins) with its own options; the
    rest use the optimizer's. `no_decay_bias_norm` moves biases and norm-layer weights of
    every group into a twin group with weight_decay 0."""
    groups, no_decay = list(spec.get("groups") or []), bool(spec.get("no_decay_bias_norm"))
    if not groups and not no_decay:
        return [p for _, p in named]  # one group: exactly what a hand-written loop passes
    buckets: list[list[tuple[str, nn.Parameter]]] = [[] for _ in range(len(groups) + 1)]
    for n, p in named:
        i = next((i for i, g in enumerate(groups) if matches(n, g["params"])), len(groups))
        buckets[i].append((n, p))
    problems = [_no_match(f"{key}.groups[{i}].params", str(g["params"]), named)
                for i, g in enumerate(groups) if not buckets[i]]
    if problems:
        raise ConfigError(problems)
    out = []
    for g, bucket in zip([*groups, {}], buckets, strict=True):
        options = {k: v for k, v in g.items() if k != "params"}
        decay = [p for _, p in bucket if not (no_decay and id(p) in no_decay_ids)]
        out.append({"params": decay, **options})
        if no_decay:
            out.append({"params": [p for _, p in bucket if id(p) in no_decay_ids],
                        **options, "weight_decay": 0.0})
    return [g for g in out if g["params"]]


def no_decay_params(model: nn.Module) -> set[int]:
    """ids of the biases and the parameters of normalisation layers."""
    ids = {id(p) for n, p in model.named_parameters() if n == "bias" or n.endswith(".bias")}
    for module in model.modules():
        if isinstance(module, NORM_TYPES):
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def build_optimizers(cfg: dict[str, Any], model: nn.Module, epochs: int,
                     steps_per_epoch: int, rules: Any = None) -> dict[str, OptimizerSlot]:
    """Every optimizer of the run with its parameters, param groups and scheduler.
    Errors that depend on the model (prefixes, overlaps) are ConfigErrors."""
    specs = optimizer_specs(cfg)
    named = list(model.named_parameters())
    owned = assign_params(specs, named) if cfg.get("optimizers") else {MAIN: named}
    no_decay = no_decay_params(model)
    slots = {}
    for name, spec in specs.items():
        key = f"optimizers.{name}" if cfg.get("optimizers") else "optimizer"
        groups = param_groups(key, spec, owned[name], no_decay)
        ctor = {k: v for k, v in spec.items() if k not in OPTIMIZER_KEYS}
        try:
            optimizer = build_optimizer(ctor, groups)
            sched, interval, monitor = build_scheduler(spec.get("scheduler"), optimizer, epochs,
                                                       steps_per_epoch, rules)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: {e}") from None
        slots[name] = OptimizerSlot(name, optimizer, [p for _, p in owned[name]], sched, interval, monitor)
    return slots
