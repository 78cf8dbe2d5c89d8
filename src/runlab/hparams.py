"""Hyperparameter schedules: any numeric model/loss parameter may follow one.

In a config, `beta: {schedule: linear, start: 0.0, end: 1.0, epochs: 10}` makes
`beta` a function of training progress. Schedules are pure functions of
(epoch progress, step), so they need no state in checkpoints and are the same for
every member of a seed ensemble.

Progress is measured in `epochs` (fractional: epoch + batch / batches_per_epoch)
or `steps` (optimiser steps); each schedule takes exactly one of them as its length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from runlab.registry import HPARAM_SCHEDULES


class Schedule:
    """Base class. `length` is in epochs unless `unit == "steps"`."""

    def __init__(self, epochs: float | None = None, steps: int | None = None):
        if (epochs is None) == (steps is None):
            epochs = epochs if epochs is not None else 1.0
            steps = None
        self.length = float(steps if steps is not None else epochs)
        self.unit = "steps" if steps is not None else "epochs"
        if self.length <= 0:
            raise ValueError(f"schedule length must be > 0, got {self.length}")

    def progress(self, epoch: float, step: int) -> float:
        """Position along the schedule, in its own unit."""
        return float(step) if self.unit == "steps" else float(epoch)

    def __call__(self, epoch: float, step: int) -> float:
        return float(self.value(self.progress(epoch, step)))

    def value(self, t: float) -> float:
        raise NotImplementedError


@HPARAM_SCHEDULES.register("constant")
class Constant(Schedule):
    """A fixed value."""

    def __init__(self, value: float):
        super().__init__()
        self.v = value

    def value(self, t: float) -> float:
        return self.v


@HPARAM_SCHEDULES.register("linear")
class Linear(Schedule):
    """From `start` to `end` over `epochs` (or `steps`) after `delay`, then stays at `end`."""

    def __init__(self, start: float, end: float, epochs: float | None = None,
                 steps: int | None = None, delay: float = 0.0):
        super().__init__(epochs, steps)
        self.start, self.end, self.delay = start, end, delay

    def value(self, t: float) -> float:
        frac = min(max((t - self.delay) / self.length, 0.0), 1.0)
        return self.start + (self.end - self.start) * frac


@HPARAM_SCHEDULES.register("cosine")
class Cosine(Schedule):
    """Half-cosine from `start` to `end` over `epochs` (or `steps`), then stays at `end`."""

    def __init__(self, start: float, end: float, epochs: float | None = None,
                 steps: int | None = None):
        super().__init__(epochs, steps)
        self.start, self.end = start, end

    def value(self, t: float) -> float:
        frac = min(max(t / self.length, 0.0), 1.0)
        return self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * frac))


@HPARAM_SCHEDULES.register("step")
class Step(Schedule):
    """`start` multiplied by `gamma` every `epochs` (or `steps`)."""

    def __init__(self, start: float, gamma: float = 0.1, epochs: float | None = None,
                 steps: int | None = None):
        super().__init__(epochs, steps)
        self.start, self.gamma = start, gamma

    def value(self, t: float) -> float:
        return self.start * self.gamma ** math.floor(t / self.length)


@HPARAM_SCHEDULES.register("exponential")
class Exponential(Schedule):
    """`start * gamma ** (t / epochs)`, clipped to `[min, max]` when given."""

    def __init__(self, start: float, gamma: float, epochs: float | None = None,
                 steps: int | None = None, min: float | None = None, max: float | None = None):
        super().__init__(epochs, steps)
        self.start, self.gamma, self.lo, self.hi = start, gamma, min, max

    def value(self, t: float) -> float:
        v = self.start * self.gamma ** (t / self.length)
        v = v if self.lo is None else max(v, self.lo)
        return v if self.hi is None else min(v, self.hi)


@HPARAM_SCHEDULES.register("cyclical")
class Cyclical(Schedule):
    """Cyclical annealing (Fu et al. 2019): each cycle of length `epochs` (or `steps`)
    rises linearly from `start` to `end` over its first `ratio`, then holds at `end`."""

    def __init__(self, start: float = 0.0, end: float = 1.0, epochs: float | None = None,
                 steps: int | None = None, ratio: float = 0.5, cycles: int | None = None):
        super().__init__(epochs, steps)
        self.start, self.end, self.ratio, self.cycles = start, end, ratio, cycles

    def value(self, t: float) -> float:
        if self.cycles is not None and t >= self.cycles * self.length:
            return self.end
        phase = (t % self.length) / self.length
        return self.start + (self.end - self.start) * min(phase / self.ratio, 1.0)


@HPARAM_SCHEDULES.register("warmup")
class Warmup(Schedule):
    """Linear from `start` (default 0) to `value` over `epochs` (or `steps`), then constant."""

    def __init__(self, value: float, start: float = 0.0, epochs: float | None = None,
                 steps: int | None = None):
        super().__init__(epochs, steps)
        self.target, self.start = value, start

    def value(self, t: float) -> float:
        return self.start + (self.target - self.start) * min(max(t / self.length, 0.0), 1.0)


def is_schedule(value: Any) -> bool:
    return isinstance(value, dict) and "schedule" in value


def build_schedule(spec: dict[str, Any]) -> Schedule:
    params = {k: v for k, v in spec.items() if k != "schedule"}
    return HPARAM_SCHEDULES.get(spec["schedule"]).obj(**params)


@dataclass
class ScheduledParam:
    """One scheduled attribute: `target.<attr>` follows `schedule`."""

    key: str  # e.g. "loss.beta": where it came from in the config
    target: Any  # the module whose attribute is set
    attr: str
    schedule: Schedule

    @property
    def log_name(self) -> str:
        return f"hparam/{self.attr}"


def split_schedules(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Schedule]]:
    """Replace schedule specs by their value at step 0; return the schedules apart."""
    plain, schedules = {}, {}
    for k, v in params.items():
        if is_schedule(v):
            schedules[k] = build_schedule(v)
            plain[k] = schedules[k](0.0, 0)
        else:
            plain[k] = v
    return plain, schedules


def apply_schedules(scheduled: list[ScheduledParam], epoch: float, step: int) -> dict[str, float]:
    """Set every scheduled attribute for this point of training; return the values."""
    values = {}
    for p in scheduled:
        v = p.schedule(epoch, step)
        setattr(p.target, p.attr, v)
        values[p.log_name] = v
    return values
