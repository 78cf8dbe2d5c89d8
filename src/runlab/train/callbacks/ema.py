"""An exponential moving average of the weights, evaluated in place of them if asked."""

from __future__ import annotations

from typing import Any

import torch

from runlab.registry import CALLBACKS
from runlab.train.events import Callback, TrainState


@CALLBACKS.register("ema")
class EMA(Callback):
    """Exponential moving average of the weights, used for val/test and checkpointed.

    After every training step: ema = decay * ema + (1 - decay) * weights (every
    parameter; buffers such as BatchNorm statistics stay the live model's). With
    `evaluate: true` the val and test splits are evaluated with the averaged weights
    (the live weights are put back for training). The average is checkpointed
    (`callbacks` of last.pt, name -> tensor), so a resumed run continues it exactly.

    Example: `callbacks: [{name: ema, decay: 0.999}]`.
    """

    vectorizable = False  # swaps weights around evaluation: single-run Trainer events

    def __init__(self, decay: float = 0.999, evaluate: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay, self.evaluate = decay, evaluate
        self.shadow: dict[str, torch.Tensor] | None = None
        self._live: list[torch.Tensor] | None = None
        self._params: list[torch.nn.Parameter] = []

    def on_fit_start(self, state: TrainState) -> None:
        named = dict(state.model.named_parameters())
        if self.shadow is None:
            self.shadow = {n: p.detach().clone() for n, p in named.items()}
        else:  # restored from a checkpoint (on the CPU)
            self.shadow = {n: self.shadow[n].to(p.device) for n, p in named.items()}
        self._params = list(named.values())

    def on_train_batch_end(self, state: TrainState) -> None:
        with torch.no_grad():
            torch._foreach_lerp_(list(self.shadow.values()), [p.detach() for p in self._params],
                                 1.0 - self.decay)

    def on_evaluate_start(self, state: TrainState) -> None:
        if self.evaluate and self.shadow is not None:
            with torch.no_grad():
                self._live = [p.detach().clone() for p in self._params]
                torch._foreach_copy_([p.data for p in self._params], list(self.shadow.values()))

    def on_evaluate_end(self, state: TrainState) -> None:
        if self._live is not None:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self._params], self._live)
            self._live = None

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": dict(self.shadow) if self.shadow is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shadow = state.get("shadow")
