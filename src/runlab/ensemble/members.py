"""One ensemble member = one ordinary run: its folder, writers, summary, callbacks and
checkpoints, all in the single-run formats.

A member's `checkpoints/last.pt` is a normal single-run checkpoint (its own model
state_dict, its slice of the optimiser state, the shared scheduler/RNG state) plus an
`ensemble` entry naming the chunk it trains in (seeds, its place). The ensemble resumes
by stacking its members' checkpoints again; `runlab runs resume <member>` resumes one
member alone in its chunk, the other places filled by ghosts, so that it continues
bit for bit (the ordinary Trainer would draw other dropout masks and round otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from runlab.metric_rules import MetricRules
from runlab.runs.folder import RunRecord
from runlab.train.events import Callback, TrainState, emit, log_scalars
from runlab.train.metrics import MonitorCheck, Summary

SHARED_OPT_STATE = ("step",)  # optimiser state entries that are per tensor, not per element


@dataclass
class Member:
    """The per-run half of an ensemble member (the tensors live in the Stack): the
    records a single run's Trainer keeps (`runlab.train.trainer.run_checkpoint`). A ghost
    (a chunk place trained without records) has no record, state or writers."""

    index: int
    cfg: dict[str, Any]
    record: RunRecord | None
    state: TrainState | None
    writer: Any
    csv: Any
    scheduled: list
    callbacks: list[Callback] = field(default_factory=list)
    monitor: str = "val/loss"
    best_value: float | None = None
    active: bool = True
    last_log_step: int = 0

    def __post_init__(self) -> None:
        self.rules = MetricRules.from_config(self.cfg)  # goal/best of every metric
        self.summary = Summary(self.rules)
        self.monitor_check = MonitorCheck(self.cfg, {
            "trainer.monitor": self.monitor,
            **{f"{type(cb).__name__}.monitor": cb.monitor for cb in self.callbacks
               if isinstance(getattr(cb, "monitor", None), str)}})

    @property
    def seed(self) -> int:
        return int(self.cfg["seed"])

    def log(self, scalars: dict[str, float]) -> None:
        """Like Trainer.log: scalars plus whatever callbacks left pending, at the current step."""
        log_scalars(self.state, self.summary, scalars)

    def flush(self) -> None:
        if self.state.pending:
            self.log({})
        self.writer.flush()

    def emit(self, event: str) -> None:
        emit(self.callbacks, event, self.state, f" (seed {self.seed})")

    def improved(self) -> bool:
        """Whether the monitored metric beat the best so far (then it becomes the best)."""
        value = self.state.metrics.get(self.monitor)
        better = self.rules.rule(self.monitor).better(value, self.best_value)
        if better:
            self.best_value = value
        return better

    def finish(self, status: str, **fields: Any) -> None:
        from runlab.logging.base import end_run

        s = self.state
        self.active = False
        try:
            for cb in self.callbacks:
                cb.close()
            end_run(self.writer, self.cfg, self.summary.data, status, fields.get("signal"))
        finally:
            self.record.finish(status, epoch=s.epoch, step=s.step, summary=self.summary.data, **fields)


# ---------------------------------------------------------------- checkpoint slicing

def slice_optimizer(stacked: dict[str, Any], trained: list[torch.Tensor], k: int) -> dict[str, Any]:
    """Member k's optimiser state_dict, as an optimiser over its own model would hold it."""
    state = {}
    for i, entries in stacked["state"].items():
        shape = trained[i].shape
        state[i] = {name: v[k].clone() if _per_element(name, v, shape) else v
                    for name, v in entries.items()}
    return {"state": state, "param_groups": stacked["param_groups"]}


def stack_optimizer(members: list[dict[str, Any]], trained: list[torch.Tensor]) -> dict[str, Any]:
    """The inverse of `slice_optimizer` over all members."""
    state = {}
    for i, entries in members[0]["state"].items():
        shape = trained[i].shape
        state[i] = {name: torch.stack([m["state"][i][name] for m in members])
                    if _per_element(name, v, shape[1:]) else v for name, v in entries.items()}
    return {"state": state, "param_groups": members[0]["param_groups"]}


def _per_element(name: str, value: Any, shape: torch.Size) -> bool:
    return torch.is_tensor(value) and name not in SHARED_OPT_STATE and value.shape == shape


def slice_accumulator(state: dict[str, Any], k: int) -> dict[str, Any]:
    """Member k's share of an Accumulator whose sums are (terms, K)."""
    sums = state["sums"]
    return {**state, "sums": None if sums is None else sums[:, k].clone()}


def stack_accumulators(states: list[dict[str, Any]]) -> dict[str, Any]:
    sums = [s["sums"] for s in states]
    return {**states[0], "sums": None if sums[0] is None else torch.stack(sums, dim=1)}
