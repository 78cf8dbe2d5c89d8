"""Reference equivalence: runlab's Trainer and a hand-written PyTorch loop (same seed,
model, data order, optimizer) end with identical weights on CPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runlab.logging.base import Writer
from runlab.models.classifiers import MLP
from runlab.train.api import prepare
from runlab.train.build import build_splits
from runlab.train.trainer import Trainer
from runlab_testing import tiny_config


def fit_runlab(cfg, callbacks=()):
    p = prepare(cfg)
    trainer = Trainer(cfg, p.splits, p.model, p.loss, p.optimizers, p.device, Writer(),
                      callbacks=list(callbacks))
    trainer.fit()
    return p.model, trainer


def fit_by_hand(cfg, make_opt, make_sched=None):
    """The loop a researcher would write: documented seeding and epoch permutations."""
    splits = build_splits(cfg["data"])
    torch.manual_seed(cfg["seed"])
    model = MLP(splits.meta, hidden=cfg["model"]["hidden"])
    opt = make_opt(model.parameters())
    sched = make_sched(opt) if make_sched else None
    x, y = splits.train
    bs = cfg["data"]["batch_size"]
    for epoch in range(cfg["trainer"]["max_epochs"]):
        g = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + epoch)
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad()
        if sched is not None:
            sched.step()
    return model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs: max {float((sa[k] - sb[k]).abs().max())}"


def test_sgd_momentum_matches_hand_written_loop(tmp_path):
    cfg = tiny_config(tmp_path, seed=3,
                      data={"name": "blobs", "n_samples": 200, "batch_size": 32},
                      model={"name": "mlp", "hidden": [16]},
                      optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
                      trainer={"max_epochs": 3, "test": False})
    ours, _ = fit_runlab(cfg)
    ref = fit_by_hand(cfg, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    assert_same_weights(ours, ref)


def test_adamw_with_cosine_schedule_matches_hand_written_loop(tmp_path):
    cfg = tiny_config(tmp_path,
                      data={"name": "moons", "n_samples": 150, "batch_size": 20},
                      model={"name": "mlp", "hidden": [32, 16]},
                      optimizer={"name": "AdamW", "lr": 3e-3, "weight_decay": 0.05},
                      scheduler={"name": "cosine"},
                      trainer={"max_epochs": 4})
    ours, _ = fit_runlab(cfg)
    ref = fit_by_hand(cfg, lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.05),
                      lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4))
    assert_same_weights(ours, ref)


def test_events_arrive_in_order(tmp_path, recorder):
    cfg = tiny_config(tmp_path, trainer={"max_epochs": 2})
    _, trainer = fit_runlab(cfg, callbacks=[recorder])
    names = [e[0] for e in recorder.events]
    steps_per_epoch = trainer.state.step // 2
    step = ["on_before_backward", "on_before_optimizer_step", "on_after_optimizer_step",
            "on_train_batch_end"]
    evaluate = ["on_evaluate_start", "on_evaluate_end"]
    epoch = ["on_epoch_start", *step * steps_per_epoch, *evaluate, "on_validation_end", "on_epoch_end"]
    assert names == ["on_fit_start", *epoch, *epoch, *evaluate, "on_fit_end"]
    # state.step is already incremented when on_train_batch_end fires
    batch_steps = [s for n, _, s in recorder.events if n == "on_train_batch_end"]
    assert batch_steps == list(range(1, trainer.state.step + 1))


def test_metrics_are_sample_weighted_means(tmp_path):
    """train/loss of an epoch is the mean over samples, computed without per-step syncs."""
    cfg = tiny_config(tmp_path, data={"name": "blobs", "n_samples": 100, "batch_size": 30},
                      trainer={"max_epochs": 1, "test": False}, optimizer={"name": "sgd", "lr": 0.0})
    model, trainer = fit_runlab(cfg)
    x, y = trainer.splits.val
    expected = F.cross_entropy(model(x), y).item()
    assert abs(trainer.state.metrics["val/loss"] - expected) < 1e-6
