"""Test-only plugin for tests/distributed: one rank of a run signals itself or raises at an
exact step. The environment decides (so an interrupted run and its uninterrupted twin share
one config): $RUNLAB_TEST_DDP_SIGNAL=`NAME@STEP@RANK`, $RUNLAB_TEST_DDP_RAISE=`STEP@RANK`."""

import os
import signal

from runlab.registry import CALLBACKS
from runlab.train.events import Callback, TrainState


@CALLBACKS.register("ddp_fault_at_step")
class DDPFaultAtStep(Callback):
    """Signals its own process, or raises, after a given step on a given rank."""

    def on_train_batch_end(self, state: TrainState) -> None:
        rank = os.environ.get("RANK", "0")
        name, _, rest = os.environ.get("RUNLAB_TEST_DDP_SIGNAL", "").partition("@")
        if name and rest == f"{state.step}@{rank}":
            os.kill(os.getpid(), getattr(signal, name))
        if os.environ.get("RUNLAB_TEST_DDP_RAISE") == f"{state.step}@{rank}":
            raise ValueError(f"rank {rank} failed on purpose at step {state.step}")
