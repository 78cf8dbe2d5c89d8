"""Stop when a monitored metric stops improving."""

from __future__ import annotations

from typing import Any

from runlab.metric_rules import MetricRules, Rule
from runlab.registry import CALLBACKS
from runlab.train.events import Callback, TrainState


@CALLBACKS.register("early_stopping")
class EarlyStopping(Callback):
    """Stop after `patience` epochs without an improvement of `monitor` by `min_delta`.

    `mode` (min|max) defaults to the monitor's goal (`runlab.metric_rules`: the config's
    `metrics:` section, then the built-in defaults). Given explicitly, it becomes the
    monitor's goal for the whole run (summary, best.pt, run.json); a `metrics:` section
    that declares the opposite goal is refused before the run.
    Any logged metric can be monitored, including callback and diagnostic scalars."""

    def __init__(self, monitor: str = "val/loss", mode: str | None = None, patience: int = 5,
                 min_delta: float = 0.0):
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.bad_epochs = 0
        self.rule: Rule | None = None

    def on_fit_start(self, state: TrainState) -> None:
        goal = self.mode or MetricRules.from_config(state.config).goal(self.monitor) or "min"
        self.rule = Rule(goal=goal)

    def on_epoch_end(self, state: TrainState) -> None:
        value = state.metrics.get(self.monitor)
        if value is None:
            return
        if self.rule is None:
            self.on_fit_start(state)
        if self.rule.better(value, self.best, self.min_delta):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            state.should_stop = True
            best = "none" if self.best is None else f"{self.best:.6g}"
            state.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                 f"{self.patience} epochs (best {best})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state["best"]
        self.best = None if best is None or abs(best) == float("inf") else best
        self.bad_epochs = state["bad_epochs"]
