"""Stop when a monitored metric stops improving."""

from __future__ import annotations

import math
from typing import Any

from runlab.registry import CALLBACKS
from runlab.train.events import Callback, TrainState


@CALLBACKS.register("early_stopping")
class EarlyStopping(Callback):
    """Stop after `patience` epochs without an improvement of `monitor` by `min_delta`."""

    def __init__(self, monitor: str = "val/loss", mode: str = "min", patience: int = 5,
                 min_delta: float = 0.0):
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, state: TrainState) -> None:
        value = state.metrics.get(self.monitor)
        if value is None:
            return
        if self._improved(value):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            state.should_stop = True
            state.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                 f"{self.patience} epochs (best {self.best:.6g})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
