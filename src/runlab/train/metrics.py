"""Metric bookkeeping: device-side accumulators (synced only when logged) and the
final/min/max/best summary that lands in run.json."""

from __future__ import annotations

import math
from typing import Any

import torch

MAXIMIZE_HINTS = ("acc", "f1", "auc", "precision", "recall", "r2", "score", "iou")


def goal(metric: str) -> str:
    """'max' for accuracy-like metric names, else 'min'."""
    leaf = metric.rsplit("/", 1)[-1].lower()
    return "max" if any(h in leaf for h in MAXIMIZE_HINTS) else "min"


def improves(value: float | None, best: float | None, metric: str) -> bool:
    """Whether `value` of `metric` beats `best` (None: no best yet); NaN and inf never do."""
    if value is None or not math.isfinite(value):
        return False
    return best is None or (value < best if goal(metric) == "min" else value > best)


class Accumulator:
    """Sample-weighted sums of a fixed set of terms, kept on the device.

    `add` costs one fused multiply-add and no synchronisation; `means` syncs once."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.sums: torch.Tensor | None = None
        self.count = 0

    def add(self, terms: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """Add one batch's terms (weighted by its `n` samples); returns the stacked values."""
        if self.sums is None:
            self.keys = list(terms)
        vals = torch.stack([terms[k].detach() for k in self.keys]).float()
        self.add_values(vals, n)
        return vals

    def add_values(self, vals: torch.Tensor, n: int, keys: list[str] | None = None) -> None:
        """Add values already stacked in `keys` order (shares one stack between accumulators)."""
        if self.sums is None:
            self.sums = torch.zeros_like(vals)
            self.keys = keys if keys is not None else self.keys
        self.sums.add_(vals, alpha=n)
        self.count += n

    def means(self) -> dict[str, float]:
        if self.sums is None or self.count == 0:
            return {}
        return dict(zip(self.keys, (self.sums / self.count).tolist()))

    def reset(self) -> None:
        if self.sums is not None:
            self.sums.zero_()
        self.count = 0

    def state_dict(self) -> dict[str, Any]:
        return {"keys": self.keys, "sums": None if self.sums is None else self.sums.cpu(),
                "count": self.count}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.keys, self.count = list(state["keys"]), state["count"]
        self.sums = None if state["sums"] is None else state["sums"].to(device)


class Summary:
    """Final, min, max and best value of every metric (best = min or max by its name)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, float]] = {}

    def update(self, step: int, scalars: dict[str, float]) -> None:
        for name, v in scalars.items():
            if not math.isfinite(v):
                continue
            s = self.data.get(name)
            if s is None:
                self.data[name] = {"final": v, "min": v, "max": v, "best": v,
                                   "final_step": step, "best_step": step}
                continue
            s["final"], s["final_step"] = v, step
            s["min"], s["max"] = min(s["min"], v), max(s["max"], v)
            better = v < s["best"] if goal(name) == "min" else v > s["best"]
            if better:
                s["best"], s["best_step"] = v, step
