"""Schedules that end before the run does are named before training starts."""

from __future__ import annotations

from runlab.config import fill_defaults
from runlab.schedule_check import schedule_warnings


def _cfg(**sections):
    return fill_defaults({"model": {"name": "mlp"}, "data": {"name": "moons"}, **sections})


def test_lr_schedule_shorter_than_the_run_is_named_with_its_numbers():
    cfg = _cfg(scheduler={"name": "warmup_cosine", "total": 30}, trainer={"max_epochs": 60})
    [message] = schedule_warnings(cfg, steps_per_epoch=10)
    assert message.startswith("scheduler.total: 30 epochs, but the run is 60 epochs long")
    step_cfg = _cfg(scheduler={"name": "cosine", "T_max": 500, "interval": "step"},
                    trainer={"max_epochs": 60})
    assert "scheduler.T_max: 500 steps, but the run is 600 steps" in schedule_warnings(step_cfg, 10)[0]


def test_schedules_that_cover_the_run_or_hold_a_nonzero_value_are_quiet():
    assert schedule_warnings(_cfg(scheduler={"name": "cosine"}), 10) == []
    assert schedule_warnings(_cfg(scheduler={"name": "cosine", "T_max": 10}), 10) == []
    warmup = {"schedule": "linear", "start": 0.0, "end": 1.0, "epochs": 2}
    assert schedule_warnings(_cfg(loss={"name": "elbo", "beta": warmup}), 10) == []


def test_hparam_schedule_that_decays_to_zero_early_is_named():
    decay = {"schedule": "linear", "start": 0.5, "end": 0.0, "epochs": 2}
    [message] = schedule_warnings(_cfg(model={"name": "mlp", "dropout": decay}), 10)
    assert message.startswith("model.dropout: the linear schedule reaches 0 at epoch 2")

