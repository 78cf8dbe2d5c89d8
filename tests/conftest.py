"""Shared fixtures: a tiny config that trains in well under a second, and a recorder
of Trainer events (fastai's synth_learner + VerboseCallback)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# One thread per process: tests start many small runs and subprocesses on 2 cores, where
# torch's default thread pools oversubscribe the machine (a tiny run went from 0.15 s to 9 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402

from runlab.train.events import EVENTS, Callback  # noqa: E402
from runlab_testing import tiny_config  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Any]:
    return tiny_config(tmp_path)


class Recorder(Callback):
    """Records every event with the (epoch, step) it saw."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []

    def __getattribute__(self, name: str):
        if name in EVENTS:
            return lambda state: self.events.append((name, state.epoch, state.step))
        return super().__getattribute__(name)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
