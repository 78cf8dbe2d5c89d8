"""User-owned steps and several optimizers, against the default step and by-hand loops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from runlab.errors import ConfigError
from runlab.logging.base import Writer
from runlab.train.api import prepare
from runlab.train.events import Callback
from runlab.train.trainer import Trainer
from runlab_testing import run_cli, tiny_config

PLUGIN = str(Path(__file__).parent / "plugins" / "custom_steps.py")


def fit(cfg, callbacks=()):
    p = prepare(cfg)
    trainer = Trainer(cfg, p.splits, p.model, p.loss, p.optimizers, p.device, Writer(),
                      **p.trainer_kwargs(), callbacks=list(callbacks))
    trainer.fit()
    return trainer


def weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


DEFAULT_OPT = {"name": "adamw", "lr": 1.0e-3}  # `optimizers:` stands alone


def config(tmp_path, **sections):
    base = {"plugins": [PLUGIN], "trainer": {"max_epochs": 2, "device": "cpu", "grad_clip": 1.0},
            "scheduler": {"name": "steplr", "step_size": 1, "gamma": 0.5},
            "model": {"name": "mlp", "hidden": [8, 8]}}
    return tiny_config(tmp_path, **{**base, **sections})


TWO = {"body": {"name": "adam", "lr": 0.01, "params": "body",
                "scheduler": {"name": "steplr", "step_size": 1, "gamma": 0.5}},
       "head": {"name": "adam", "lr": 0.01, "params": "head",
                "scheduler": {"name": "steplr", "step_size": 1, "gamma": 0.5}}}


@pytest.mark.parametrize("model", ["mlp_auto_step", "mlp_manual_step"])
def test_a_custom_step_doing_the_default_work_gives_the_same_run(tmp_path, model):
    ref = fit(config(tmp_path))
    ours = fit(config(tmp_path, model={"name": model, "hidden": [8, 8]}))
    assert_same(weights(ref), weights(ours))
    for k in ("val/loss", "val/acc", "train/loss", "train/acc"):
        assert ours.state.metrics[k] == ref.state.metrics[k], k
    assert ("train/hp_seen" in ours.summary.data) == (model == "mlp_manual_step")


def test_a_registered_step_component_trains_the_model(tmp_path):
    ref = fit(config(tmp_path))
    ours = fit(config(tmp_path, step={"name": "supervised", "weight": 1.0}))
    assert_same(weights(ref), weights(ours))
    halved = fit(config(tmp_path, step={"name": "supervised", "weight": 0.5}))
    assert not torch.equal(weights(halved)["head.weight"], weights(ref)["head.weight"])


@pytest.mark.parametrize("model", ["mlp", "mlp_manual_step"])
def test_two_optimizers_over_disjoint_modules_equal_one_over_all(tmp_path, model):
    """Adam is per-element, so body+head optimizers (same settings, each its own
    scheduler, gradient clipping per optimizer aside) must equal one optimizer."""
    cfg = dict(trainer={"max_epochs": 2, "device": "cpu"}, model={"name": model, "hidden": [8, 8]})
    ref = fit(config(tmp_path, **cfg, optimizer={"name": "adam", "lr": 0.01}))
    two = fit(config(tmp_path, **cfg, scheduler=None, optimizer=DEFAULT_OPT, optimizers=TWO))
    assert_same(weights(ref), weights(two))
    assert set(two.slots) == {"body", "head"}
    assert {k for k in two.summary.data if k.startswith("lr")} == {"lr/body", "lr/head"}
    assert two.slots["body"].optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.25)


def test_param_groups_equal_a_hand_built_optimizer(tmp_path):
    opt = {"name": "adamw", "lr": 0.01, "weight_decay": 0.1, "no_decay_bias_norm": True,
           "groups": [{"params": "head", "lr": 0.001}]}
    ours = fit(config(tmp_path, optimizer=opt, scheduler=None))

    cfg = config(tmp_path, scheduler=None)
    p = prepare(cfg)  # same seed: same initial weights
    m = p.model
    body_w = [q for n, q in m.body.named_parameters() if n.endswith("weight")]
    body_b = [q for n, q in m.body.named_parameters() if n.endswith("bias")]
    by_hand = torch.optim.AdamW([
        {"params": [m.head.weight], "lr": 0.001}, {"params": [m.head.bias], "lr": 0.001, "weight_decay": 0.0},
        {"params": body_w}, {"params": body_b, "weight_decay": 0.0}], lr=0.01, weight_decay=0.1)
    ref = Trainer(cfg, p.splits, m, p.loss, {"main": p.optimizers["main"].__class__(
        "main", by_hand, list(m.parameters()))}, p.device, Writer())
    ref.fit()
    assert_same(weights(ref), weights(ours))
    groups = ours.optimizer.param_groups
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups] == [
        (0.001, 0.1, 1), (0.001, 0.0, 1), (0.01, 0.1, 2), (0.01, 0.0, 2)]


class Order(Callback):
    def __init__(self):
        self.seen = []

    def on_before_backward(self, state):
        self.seen.append("backward")

    def on_before_optimizer_step(self, state):
        self.seen.append(f"before:{state.optimizer_name}")

    def on_after_optimizer_step(self, state):
        stepped = state.optimizers[state.optimizer_name].param_groups
        assert all(p.grad is not None for g in stepped for p in g["params"])  # zeroed only after
        self.seen.append(f"after:{state.optimizer_name}")


def test_optimizer_events_fire_per_optimizer_in_the_users_order(tmp_path):
    order = Order()
    cfg = config(tmp_path, model={"name": "mlp_manual_step", "hidden": [8]}, scheduler=None,
                 optimizer=DEFAULT_OPT, optimizers=TWO, trainer={"max_epochs": 1, "device": "cpu"})
    trainer = fit(cfg, [order])
    one = ["backward", "before:body", "after:body", "before:head", "after:head"]
    assert order.seen == one * trainer.state.step


def test_model_dependent_optimizer_problems_are_config_errors(tmp_path):
    bad = {"a": {"name": "adam", "params": ["body", "hed"]}, "b": {"name": "sgd", "lr": 0.1, "params": "body.1"}}
    with pytest.raises(ConfigError) as e:
        prepare(config(tmp_path, scheduler=None, optimizer=DEFAULT_OPT, optimizers=bad))
    text = str(e.value)
    assert "optimizers.a.params: 'hed' names no parameter of the model. Did you mean 'head'?" in text
    assert "'body.1.0.weight' is already stepped by optimizer 'a'" in text
    assert "parameters head.weight, head.bias are in no optimizer's params" in text


def test_bad_optimizer_keys_exit_2_before_any_run_folder(tmp_path):
    cfg = config(tmp_path, optimizers={
        "gen": {"name": "adam", "lrr": 0.1, "groups": [{"params": 3}],
                "scheduler": {"name": "steplr", "interval": "batch"}},
        "disc": {"name": "adamm"}, "aux": {"name": "sgd", "lr": 0.1}})
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stdout + r.stderr
    for expected in ["optimizers: given together with optimizer/scheduler",
                     "optimizers.gen.lrr: unknown parameter of adam", "Did you mean 'lr'?",
                     "optimizers.gen.groups[0]: expected a mapping with `params`",
                     "optimizers.gen.scheduler.interval: got 'batch'",
                     "optimizers.disc.name: unknown optimizer 'adamm'",
                     "aux, disc, gen have no `params`; at most one optimizer may take"]:
        assert expected in r.stderr, (expected, r.stderr)
    assert not (tmp_path / "runs").exists()
