"""The closed list of Trainer events, the state callbacks receive, and the Callback base.

A callback is a class with no-op methods (fastai/Keras style). It gets an explicit
`TrainState`; it stops training by setting `state.should_stop = True`. A callback
that raises is named in the error.
"""

from __future__ import annotations

from collections.abc import Callable
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
    "on_before_backward",  # a loss is about to be backpropagated (state.terms: the step's terms)
    "on_before_optimizer_step",  # gradients are final (unscaled when clipping); state.optimizer_name
    "on_after_optimizer_step",  # parameters updated, gradients not yet zeroed; state.optimizer_name
    "on_train_batch_end",  # after the optimiser step; state.step already incremented
    "on_evaluate_start",  # before the val or test split is evaluated; state.evaluating names it
    "on_evaluate_end",  # after that evaluation (before its values are logged)
    "on_validation_end",  # state.metrics holds this epoch's val/* values
    "on_epoch_end",  # after validation and logging of the epoch; state.epoch = epochs finished
    "on_fit_end",  # after the test split was evaluated; state.metrics holds test/*
)

# Events the vectorised seed ensemble does not emit (its step and evaluation are stacked).
SINGLE_RUN_EVENTS = ("on_before_backward", "on_before_optimizer_step", "on_after_optimizer_step",
                     "on_evaluate_start", "on_evaluate_end")


@dataclass
class TrainState:
    """Everything a callback may look at. The Trainer owns it; callbacks read it and
    may set `should_stop`, and may call `log` to add scalars."""

    config: dict[str, Any]
    run_dir: Path | None
    meta: DatasetMeta
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer  # the first (or only) optimizer
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
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)  # all, by name
    optimizer_name: str = ""  # the optimizer being stepped (optimizer-step events)
    terms: dict[str, Any] = field(default_factory=dict)  # the step's terms (on_before_backward)
    evaluating: str = ""  # the split being evaluated ("val" or "test"), else ""
    # Writes the run's checkpoint, as the Trainer would, to a path (None: no run folder)
    write_checkpoint: Callable[[Path], None] | None = None

    def log(self, name: str, value: float) -> None:
        """Log a scalar at the current step (any name, at any time); it is monitorable
        (early stopping, best.pt) from now on."""
        self.pending[name] = self.metrics[name] = float(value)


class Callback:
    """Base class: override the events you need. State for resume goes through
    `state_dict` / `load_state_dict` and lands in the checkpoint."""

    # False for callbacks that need what only the single-run Trainer gives (the events of
    # SINGLE_RUN_EVENTS, `state.write_checkpoint`): `--seeds` then trains seeds one by one.
    vectorizable = True

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_before_backward(self, state: TrainState) -> None: ...
    def on_before_optimizer_step(self, state: TrainState) -> None: ...
    def on_after_optimizer_step(self, state: TrainState) -> None: ...
    def on_train_batch_end(self, state: TrainState) -> None: ...
    def on_evaluate_start(self, state: TrainState) -> None: ...
    def on_evaluate_end(self, state: TrainState) -> None: ...
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


def vectorizable(cls: type) -> bool:
    """Whether a callback class works in a vectorised seed ensemble."""
    overrides = any(getattr(cls, e, None) is not getattr(Callback, e) for e in SINGLE_RUN_EVENTS)
    return cls.vectorizable and not overrides


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
