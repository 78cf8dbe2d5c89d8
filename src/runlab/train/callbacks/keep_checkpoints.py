"""Keep checkpoints of chosen epochs (`checkpoints/epoch-N.pt`) and steps
(`checkpoints/step-N.pt`) for later analysis."""

from __future__ import annotations

import math
from typing import Any

from runlab.metric_rules import MetricRules
from runlab.registry import CALLBACKS
from runlab.train.events import Callback, TrainState


@CALLBACKS.register("keep_checkpoints")
class KeepCheckpoints(Callback):
    """Keep checkpoints/epoch-N.pt every `every` epochs and/or for the `top_k` best by `monitor`.

    N = epochs finished; `monitor` defaults to val/loss, `mode` (min or max) to its goal
    (`runlab.metric_rules`); a file
    that leaves the top k is deleted unless `every` keeps it. `every_steps` also keeps
    `checkpoints/step-N.pt` every that many optimiser steps (mid-epoch states).
    Each is a full checkpoint of that epoch's end (weights, optimizers, callbacks);
    resuming still uses last.pt.

    Example: `callbacks: [{name: keep_checkpoints, every: 5, top_k: 3, monitor: val/acc}]`.
    """

    vectorizable = False  # writes checkpoints through the single-run Trainer

    def __init__(self, every: int = 0, top_k: int = 0, monitor: str | None = None,
                 mode: str | None = None, every_steps: int = 0):
        if min(every, top_k, every_steps) < 0 or not (every or top_k or every_steps):
            raise ValueError(f"give every >= 1, top_k >= 1 and/or every_steps >= 1, got every={every}, "
                             f"top_k={top_k}, every_steps={every_steps}")
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        self.every, self.top_k, self.every_steps = every, top_k, every_steps
        self.monitor = monitor or ("val/loss" if top_k else None)  # only top-k follows a metric
        self.mode = mode
        self.best: list[tuple[float, int]] = []  # (value, epoch) of the kept top-k, best first

    def on_fit_start(self, state: TrainState) -> None:
        if self.mode is None and self.monitor is not None:
            self.mode = MetricRules.from_config(state.config).goal(self.monitor) or "min"

    def on_train_batch_end(self, state: TrainState) -> None:
        if self.every_steps and state.step % self.every_steps == 0 and state.write_checkpoint is not None:
            state.write_checkpoint(state.run_dir / "checkpoints" / f"step-{state.step}.pt")

    def on_epoch_end(self, state: TrainState) -> None:
        if state.write_checkpoint is None:  # no run folder (or not the writing process)
            return
        epoch, folder = state.epoch, state.run_dir / "checkpoints"
        periodic = bool(self.every) and epoch % self.every == 0
        ranked = self._rank(state.metrics.get(self.monitor) if self.monitor else None, epoch)
        if periodic or ranked is not None:
            state.write_checkpoint(folder / f"epoch-{epoch}.pt")
        for dropped in ranked or ():
            if not (self.every and dropped % self.every == 0):
                (folder / f"epoch-{dropped}.pt").unlink(missing_ok=True)

    def _rank(self, value: float | None, epoch: int) -> list[int] | None:
        """Put `epoch` into the top k if it belongs there; returns the epochs it pushed
        out, or None when it is not kept."""
        if not self.top_k or value is None or not math.isfinite(value):
            return None
        best = [b for b in self.best if b[1] != epoch]  # an epoch redone after a resume
        best.append((value, epoch))
        best.sort(key=lambda b: (b[0] if self.mode == "min" else -b[0], b[1]))
        self.best = best[:self.top_k]
        if all(e != epoch for _, e in self.best):
            return None
        return [e for _, e in best[self.top_k:]]

    def state_dict(self) -> dict[str, Any]:
        return {"best": [list(b) for b in self.best]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = [(float(v), int(e)) for v, e in state.get("best", [])]
