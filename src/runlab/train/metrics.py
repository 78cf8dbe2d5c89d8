"""Metric bookkeeping: device-side accumulators (synced only when logged), the run's
summary (final/min/max/best per metric, best by `runlab.metric_rules`) and the monitor
check.

Any term may appear, disappear or change name from one batch to the next: an
`Accumulator` keeps one row of sums per name it has seen and a host-side count of the
samples each name was present for, so a term's mean is over the batches that had it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from runlab.metric_rules import EPOCH_SUFFIX, MetricRules, did_you_mean, summary_value


class Accumulator:
    """Sample-weighted sums of named terms, kept on the device.

    The common case (the same names as the previous batch) costs one stack and one fused
    multiply-add and no synchronisation; a batch with other names adds rows (still no
    synchronisation: the names are host strings). `means` syncs once.

    Example:
        >>> acc = Accumulator()
        >>> _ = acc.add({"loss": torch.tensor(1.0)}, 2)
        >>> _ = acc.add({"loss": torch.tensor(4.0), "kl": torch.tensor(3.0)}, 1)
        >>> acc.means()
        {'loss': 2.0, 'kl': 3.0}
    """

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.sums: torch.Tensor | None = None  # (len(keys), *term shape)
        self.counts: list[int] = []  # samples each key was present for
        self._keys: tuple[str, ...] = ()  # `keys` as a tuple: the fast path's comparison

    def add(self, terms: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """Add one batch's terms (weighted by its `n` samples); returns them stacked in
        `terms`' order, for `add_values` of another accumulator."""
        vals = torch.stack([t.detach() for t in terms.values()]).float()
        self.add_values(vals, n, tuple(terms))
        return vals

    def add_values(self, vals: torch.Tensor, n: int, keys: tuple[str, ...] | list[str]) -> None:
        """Add values already stacked in `keys` order (one stack shared by accumulators)."""
        keys = tuple(keys)
        if keys == self._keys and self.sums is not None:
            self.sums.add_(vals, alpha=n)
            self.counts = [c + n for c in self.counts]
            return
        if self.sums is None:
            self.keys, self._keys = list(keys), keys
            self.sums, self.counts = vals * n, [n] * len(keys)
            return
        new = [k for k in keys if k not in self.keys]
        if new:
            self.sums = torch.cat([self.sums, self.sums.new_zeros((len(new), *self.sums.shape[1:]))])
            self.keys += new
            self.counts += [0] * len(new)
            self._keys = tuple(self.keys)
        for i, k in enumerate(keys):  # per row: device ops only, no index tensor to copy over
            row = self.keys.index(k)
            self.sums[row].add_(vals[i], alpha=n)
            self.counts[row] += n

    def means(self) -> dict[str, Any]:
        """{name: mean} over the samples each name was present for (floats, or lists for
        stacked terms)."""
        if self.sums is None:
            return {}
        return _divide(self.keys, self.sums, self.counts)

    def reset(self) -> None:
        """Forget everything, names included: a term that stopped appearing costs nothing."""
        self.keys, self._keys, self.sums, self.counts = [], (), None, []

    def state_dict(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "sums": None if self.sums is None else self.sums.cpu(),
                "counts": list(self.counts)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        keys = list(state["keys"])
        counts = state.get("counts")
        if counts is None:  # checkpoints before per-key counts: one count for every key
            counts = [state.get("count", 0)] * len(keys)
        self.reset()
        if state["sums"] is not None and keys:
            self.keys, self._keys, self.counts = keys, tuple(keys), list(counts)
            self.sums = state["sums"].to(device)


def _divide(keys: list[str], sums: torch.Tensor, counts: list[int]) -> dict[str, Any]:
    """sums / counts on the device (one sync); keys never present are left out."""
    shape = (-1,) + (1,) * (sums.dim() - 1)
    n = torch.tensor(counts, dtype=sums.dtype).clamp(min=1).to(sums.device).view(shape)
    values = (sums / n).tolist()
    return {k: v for k, v, c in zip(keys, values, counts) if c > 0}


def merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The state of one accumulator holding all of `states`' samples (their key sets may
    differ: the union, in first-seen order)."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for s in states:
        if s["sums"] is None:
            continue
        n = s.get("counts") or [s.get("count", 0)] * len(s["keys"])
        for i, k in enumerate(s["keys"]):
            sums[k] = sums[k] + s["sums"][i] if k in sums else s["sums"][i].clone()
            counts[k] = counts.get(k, 0) + n[i]
    return {"keys": list(sums), "sums": torch.stack(list(sums.values())) if sums else None,
            "counts": [counts[k] for k in sums]}


class Summary:
    """Final, min, max and best value of every metric, best by the metric's goal (none for
    lr and hparams); `last_k` holds the recent values of metrics summarised as
    mean_last_k. Lands in run.json as `summary`, each entry with its `goal`.

    Example:
        >>> s = Summary(MetricRules())
        >>> s.update(1, {"val/acc": 0.5}); s.update(2, {"val/acc": 0.25})
        >>> s.data["val/acc"]["best"], s.data["val/acc"]["goal"]
        (0.5, 'max')
    """

    def __init__(self, rules: MetricRules | None = None) -> None:
        self.rules = rules or MetricRules()
        self.data: dict[str, dict[str, Any]] = {}

    def update(self, step: int, scalars: dict[str, float]) -> None:
        for name, v in scalars.items():
            if not math.isfinite(v):
                continue
            rule = self.rules.rule(name)
            s = self.data.get(name)
            if s is None:
                s = self.data[name] = {"final": v, "min": v, "max": v, "final_step": step,
                                       "goal": rule.goal or "none"}
                if rule.goal is not None:
                    s["best"], s["best_step"] = v, step
            else:
                if "goal" not in s:  # a summary from before goals were recorded (resume)
                    s["goal"] = rule.goal or "none"
                s["final"], s["final_step"] = v, step
                s["min"], s["max"] = min(s["min"], v), max(s["max"], v)
                if rule.better(v, s.get("best")):
                    s["best"], s["best_step"] = v, step
            if rule.summary == "mean_last_k":
                s["last_k"] = [*s.get("last_k", []), v][-rule.k:]
            if rule.summary != "final":
                s["summary"] = rule.summary
                s["value"] = summary_value(s, rule)


def configured_monitors(cfg: dict[str, Any]) -> dict[str, str]:
    """Every monitor the config names, by where it is set."""
    t = cfg.get("trainer") or {}
    found = {"trainer.monitor": t.get("monitor"),
             "trainer.early_stopping.monitor": (t.get("early_stopping") or {}).get("monitor"),
             "scheduler.monitor": (cfg.get("scheduler") or {}).get("monitor")}
    for name, spec in (cfg.get("optimizers") or {}).items():
        if isinstance(spec, dict) and isinstance(spec.get("scheduler"), dict):
            found[f"optimizers.{name}.scheduler.monitor"] = spec["scheduler"].get("monitor")
    for i, cb in enumerate(cfg.get("callbacks") or []):
        if isinstance(cb, dict):
            found[f"callbacks[{i}].monitor"] = cb.get("monitor")
    return {where: m for where, m in found.items() if isinstance(m, str) and m}


def monitor_problems(cfg: dict[str, Any], has_val: bool) -> list[str]:
    """Monitors known before the run to be unproducible: `val/...` without a validation
    split, `diag/<name>/...` of a diagnostic the config does not run."""
    diags = [d.get("name") for d in cfg.get("diagnostics") or [] if isinstance(d, dict)]
    problems = []
    for where, name in configured_monitors(cfg).items():
        parts = name.split("/")
        if parts[0] == "val" and not has_val:
            problems.append(f"{where}: {name!r} needs a validation split, but this dataset has "
                            "none (data.val_fraction: 0?); monitor a train/ metric or add one")
        elif parts[0] == "diag" and len(parts) > 2 and parts[1] not in diags:
            problems.append(f"{where}: {name!r} is logged by diagnostic {parts[1]!r}, which "
                            f"diagnostics: does not run.{did_you_mean(parts[1], diags)}")
    return problems


class MonitorCheck:
    """Fails a run whose monitors (trainer.monitor, early stopping, the plateau scheduler)
    name a metric no component produced: checked once, at the end of the first epoch
    that validated (or after the diagnostic a `diag/<name>/...` monitor belongs to has
    run once), against every name seen so far."""

    def __init__(self, cfg: dict[str, Any], monitors: dict[str, str | None]):
        self.monitors = {where: m for where, m in monitors.items() if m}
        self.diag_names = {d.get("name") for d in cfg.get("diagnostics") or [] if isinstance(d, dict)}
        self.done = not self.monitors

    def check(self, seen: set[str], validated: bool) -> None:
        """Raise `UnknownMonitor` for a monitor not in `seen` (once everything that could
        produce it has had its chance)."""
        if self.done or not validated:
            return
        waiting = False
        for where, name in self.monitors.items():
            if name in seen:
                continue
            parts = name.split("/")
            if parts[0] == "diag" and len(parts) > 2 and not any(
                    s.startswith(f"diag/{parts[1]}/") for s in seen) and parts[1] in self.diag_names:
                waiting = True  # its diagnostic has not run yet
                continue
            raise UnknownMonitor(
                f"{where}: {name!r} was never logged (nothing produced it by the end of the "
                f"first validated epoch).{did_you_mean(name, seen)} Logged: "
                f"{', '.join(sorted(seen)[:30])}")
        self.done = not waiting


class UnknownMonitor(ValueError):
    """A monitored metric name that no component logs (exit 2, like bad config)."""


def console_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """What the epoch line shows, all of it as logged: train (the epoch means
    `train/<term>_epoch` in place of the last window's `train/<term>`), then val, then the
    rest (lr, hparams, callback and diagnostic scalars); test is shown at the end."""
    order = {"train": 0, "val": 1}
    shown = [k for k in metrics if k != "epoch" and not k.startswith("test/")
             and not (k.startswith("train/") and f"{k}{EPOCH_SUFFIX}" in metrics)]
    shown.sort(key=lambda k: order.get(k.split("/")[0], 2))
    return {k: metrics[k] for k in shown}
