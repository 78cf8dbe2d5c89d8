"""The closed list of Trainer events, the state callbacks receive, and the Callback base.

A callback is a class with no-op methods (fastai/Keras style). It gets an explicit
`TrainState`; it stops training by setting `state.should_stop = True`. A callback
that raises is named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from runlab.data.base import DatasetMeta
    from runlab.logging.base import Writer

EVENTS = (
    "on_fit_start",  # after everything is built (and restored on resume), before the first step
    "on_epoch_start",
    "on_train_batch_end",  # after the optimiser step; state.step already incremented
    "on_validation_end",  # state.metrics holds this epoch's val/* values
    "on_epoch_end",  # after validation and logging of the epoch; state.epoch = epochs finished
    "on_fit_end",  # after the test split was evaluated; state.metrics holds test/*
)


@dataclass
class TrainState:
    """Everything a callback may look at. The Trainer owns it; callbacks read it and
    may set `should_stop`, and may call `log` to add scalars."""

    config: dict[str, Any]
    run_dir: Path | None
    meta: DatasetMeta
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    writer: Writer
    max_epochs: int
    epoch: int = 0  # current epoch, 0-based
    step: int = 0  # optimiser steps done so far
    batch_in_epoch: int = 0  # batches of the current epoch already consumed
    metrics: dict[str, float] = field(default_factory=dict)  # latest synced values
    should_stop: bool = False
    stop_reason: str = ""
    pending: dict[str, float] = field(default_factory=dict)  # scalars logged by callbacks
    train_data: Any = None  # (x, y) tensors of the train split
    val_data: Any = None  # (x, y) tensors of the validation split, or None

    def log(self, name: str, value: float) -> None:
        """Log a scalar at the current step (any name, at any time); it is monitorable
        (early stopping, best.pt) from now on."""
        self.pending[name] = self.metrics[name] = float(value)


class Callback:
    """Base class: override the events you need. State for resume goes through
    `state_dict` / `load_state_dict` and lands in the checkpoint."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_train_batch_end(self, state: TrainState) -> None: ...
    def on_validation_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...

    def close(self) -> None:
        """Release resources (files, worker processes); called once when the run ends,
        however it ends. Not an event: it runs after the last one."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def emit(callbacks: list[Callback], event: str, state: TrainState, where: str = "") -> None:
    """Call `event` on every callback; a callback that raises is named in the error."""
    for cb in callbacks:
        try:
            getattr(cb, event)(state)
        except Exception as e:
            raise RuntimeError(f"callback {type(cb).__name__}.{event} raised "
                               f"{type(e).__name__}: {e}{where}") from e


def log_scalars(state: TrainState, summary: Any, scalars: dict[str, float]) -> None:
    """Log scalars (plus whatever callbacks left pending) at the current step: into the
    run's summary and its writers."""
    if state.pending:
        scalars = {**scalars, **state.pending}
        state.pending.clear()
    summary.update(state.step, scalars)
    state.writer.write_scalars(state.step, scalars, state.epoch)
