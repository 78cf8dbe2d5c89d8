"""Test-only plugin for tests/train/test_resume.py: stop a run at an exact step, or make it fail.

Named in a config's `plugins:`; the environment decides what happens, so the reference
run and the interrupted run share one config (and one config hash).
"""

import os
import signal
import time

import torch
from torch import nn

from runlab.data import DatasetMeta
from runlab.registry import CALLBACKS, MODELS
from runlab.train.events import Callback, TrainState

# "SIGTERM@7": send SIGTERM to this process after optimiser step 7;
# "SIGTERM@validation_end:10": after the validation that follows step 10.
SIGNAL_ENV = "RUNLAB_TEST_SIGNAL"
SLEEP_ENV = "RUNLAB_TEST_STEP_SLEEP"  # seconds to sleep after every step (to signal from outside)


@CALLBACKS.register("signal_at_step")
class SignalAtStep(Callback):
    """Sends $RUNLAB_TEST_SIGNAL to its own process; sleeps $RUNLAB_TEST_STEP_SLEEP per step.
    Logs `hook/step` every step (a callback scalar that waits for the next logging point)."""

    def on_train_batch_end(self, state: TrainState) -> None:
        state.log("hook/step", state.step)
        if os.environ.get(SLEEP_ENV):
            time.sleep(float(os.environ[SLEEP_ENV]))
        self._maybe_signal("train_batch_end", state.step)

    def on_validation_end(self, state: TrainState) -> None:
        self._maybe_signal("validation_end", state.step)

    def _maybe_signal(self, event: str, step: int) -> None:
        name, _, when = os.environ.get(SIGNAL_ENV, "").partition("@")
        at_event, _, at_step = when.rpartition(":")
        if name and (at_event or "train_batch_end") == event and step == int(at_step):
            os.kill(os.getpid(), getattr(signal, name))


@MODELS.register("flaky_linear")
class FlakyLinear(nn.Module):
    """Linear classifier that raises (`fail: raise`) or returns NaN (`fail: nan`) from
    its `at`-th training forward call on."""

    def __init__(self, meta: DatasetMeta, fail: str = "raise", at: int = 3):
        super().__init__()
        self.net = nn.Linear(meta.input_dim, meta.num_classes or 1)
        self.fail, self.at, self.calls = fail, at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.flatten(1))
        if not self.training:
            return out
        self.calls += 1
        if self.calls < self.at:
            return out
        if self.fail == "raise":
            raise RuntimeError(f"flaky_linear failed on purpose at forward call {self.calls}")
        return out * float("nan")
