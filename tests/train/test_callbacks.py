"""Built-in callbacks, driven by a real Trainer."""

from __future__ import annotations

from runlab.logging.base import Writer
from runlab.registry import CALLBACKS
from runlab.train.api import prepare
from runlab.train.trainer import Trainer
from runlab_testing import tiny_config


def fit(cfg):
    p = prepare(cfg)
    trainer = Trainer(cfg, p.splits, p.model, p.loss, p.optimizers, p.device, Writer(),
                      callbacks=p.callbacks)
    trainer.fit()
    return trainer


def test_early_stopping_stops_when_the_metric_stalls(tmp_path):
    # lr 0: val/loss never improves after the first epoch
    cfg = tiny_config(tmp_path, optimizer={"name": "sgd", "lr": 0.0},
                      trainer={"max_epochs": 10, "early_stopping": {"monitor": "val/loss", "patience": 2}})
    trainer = fit(cfg)
    assert trainer.state.epoch == 3 and trainer.state.should_stop
    assert "did not improve for 2 epochs" in trainer.state.stop_reason


def test_callbacks_from_the_config_list(tmp_path):
    assert "early_stopping" in CALLBACKS
    cfg = tiny_config(tmp_path, optimizer={"name": "sgd", "lr": 0.0}, trainer={"max_epochs": 10},
                      callbacks=[{"name": "early_stopping", "monitor": "val/acc", "mode": "max",
                                  "patience": 1}])
    assert fit(cfg).state.epoch == 2
