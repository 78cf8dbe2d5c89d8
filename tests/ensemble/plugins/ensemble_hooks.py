"""Test-only plugin for tests/ensemble: a signal at an exact step, and models vmap cannot run."""

import os
import signal

import torch
from torch import nn

from runlab.data import DatasetMeta
from runlab.registry import CALLBACKS, MODELS
from runlab.train.events import Callback, TrainState

SIGNAL_ENV = "RUNLAB_TEST_SIGNAL"  # "SIGTERM@5": signal this process once, after step 5
_sent: set[str] = set()  # every member has this callback; the process is signalled once


@CALLBACKS.register("signal_once_at_step")
class SignalOnceAtStep(Callback):
    """Sends $RUNLAB_TEST_SIGNAL (`NAME@STEP`) to its own process, once per process."""

    def on_train_batch_end(self, state: TrainState) -> None:
        spec = os.environ.get(SIGNAL_ENV, "")
        name, _, step = spec.partition("@")
        if name and state.step == int(step) and spec not in _sent:
            _sent.add(spec)
            os.kill(os.getpid(), getattr(signal, name))


@MODELS.register("branchy")
class Branchy(nn.Module):
    """Python control flow on a tensor's value: fine alone, impossible under vmap."""

    def __init__(self, meta: DatasetMeta):
        super().__init__()
        self.net = nn.Linear(meta.input_dim, meta.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.flatten(1))
        if out.sum() > 0:
            return out
        return -out


@MODELS.register("item_scaled")
class ItemScaled(nn.Module):
    """Calls `.item()` inside forward."""

    def __init__(self, meta: DatasetMeta):
        super().__init__()
        self.net = nn.Linear(meta.input_dim, meta.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.flatten(1))
        return out / max(1.0, out.abs().max().item())
