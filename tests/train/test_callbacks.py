"""Built-in callbacks, driven by a real Trainer."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from runlab.logging.base import Writer
from runlab.registry import CALLBACKS
from runlab.train.api import prepare
from runlab.train.events import Callback
from runlab.train.trainer import Trainer
from runlab_testing import run_cli, tiny_config


def fit(cfg):
    p = prepare(cfg)
    trainer = Trainer(cfg, p.splits, p.model, p.loss, p.optimizers, p.device, Writer(),
                      **p.trainer_kwargs(), callbacks=p.callbacks)
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


class Snapshots(Callback):
    """The parameters after every optimiser step."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, state):
        self.seen.append([p.detach().clone() for p in state.model.parameters()])


def test_ema_averages_the_weights_and_is_what_gets_evaluated(tmp_path):
    cfg = tiny_config(tmp_path, callbacks=[{"name": "ema", "decay": 0.9}], trainer={"max_epochs": 3})
    p = prepare(cfg)
    init = [q.detach().clone() for q in p.model.parameters()]
    snaps = Snapshots()
    trainer = Trainer(cfg, p.splits, p.model, p.loss, p.optimizers, p.device, Writer(),
                      callbacks=[*p.callbacks, snaps])
    trainer.fit()

    ema = init
    for weights in snaps.seen:  # by hand: ema <- ema + 0.1 * (w - ema)
        ema = [torch.lerp(e, w, 0.1) for e, w in zip(ema, weights, strict=True)]
    (cb,) = p.callbacks
    assert all(torch.equal(a, b) for a, b in zip(cb.shadow.values(), ema, strict=True))
    live = list(p.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(live, snaps.seen[-1], strict=True))  # put back

    averaged = copy.deepcopy(p.model)
    with torch.no_grad():
        for q, e in zip(averaged.parameters(), ema, strict=True):
            q.copy_(e)
    x, y = p.splits.test
    expected = F.cross_entropy(averaged.eval()(x), y).item()
    assert trainer.state.metrics["test/loss"] == pytest.approx(expected, abs=1e-6)
    assert F.cross_entropy(p.model.eval()(x), y).item() != pytest.approx(expected, abs=1e-6)


def test_kept_checkpoints_every_n_epochs_and_the_top_k(tmp_path):
    cfg = tiny_config(tmp_path, trainer={"max_epochs": 5},
                      callbacks=[{"name": "keep_checkpoints", "every": 2, "top_k": 1,
                                  "monitor": "val/acc", "every_steps": 7}])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stdout + r.stderr
    (run,) = (tmp_path / "runs" / "manual").iterdir()
    with open(run / "metrics.csv") as f:
        acc = {int(row["epoch"]): float(row["value"]) for row in csv.DictReader(f)
               if row["metric"] == "val/acc"}
    best = min(acc, key=lambda e: (-acc[e], e))  # the first epoch with the highest val/acc
    kept = sorted(int(f.stem.split("-")[1]) for f in (run / "checkpoints").glob("epoch-*.pt"))
    assert kept == sorted({2, 4, best})
    for epoch in kept:
        state = torch.load(run / "checkpoints" / f"epoch-{epoch}.pt", weights_only=True)
        assert state["epoch"] == epoch and state["batch_in_epoch"] == 0
    steps = sorted(int(f.stem.split("-")[1]) for f in (run / "checkpoints").glob("step-*.pt"))
    total = json.loads((run / "run.json").read_text())["step"]
    assert steps == list(range(7, total + 1, 7)) and len(steps) >= 2
    for step in steps:
        assert torch.load(run / "checkpoints" / f"step-{step}.pt", weights_only=True)["step"] == step


def test_bad_callback_settings_are_config_errors(tmp_path):
    from runlab.errors import ConfigError

    cfg = tiny_config(tmp_path, callbacks=[{"name": "ema", "decay": 1.5}])
    with pytest.raises(ConfigError, match=r"callbacks\[0\]: building 'ema' failed: decay must be in \[0, 1\)"):
        prepare(cfg)
    cfg = tiny_config(tmp_path, callbacks=[{"name": "keep_checkpoints"}])
    with pytest.raises(ConfigError, match="give every >= 1, top_k >= 1 and/or every_steps >= 1"):
        prepare(cfg)
