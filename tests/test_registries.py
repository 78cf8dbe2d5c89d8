"""Every registered component is built and run once (timm's test_models.py pattern)."""

from __future__ import annotations

import math

import pytest
import torch

from runlab.data.base import DatasetMeta
from runlab.data.checks import check_dataset
from runlab.data.loader import split
from runlab.hparams import HPARAM_SCHEDULES, build_schedule
from runlab.losses import compute_terms, has_per_sample
from runlab.optim import build_optimizer, build_scheduler
from runlab.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULERS
from runlab.train.api import prepare
from runlab_testing import tiny_config

SIGNAL = DatasetMeta("sig", (1, 16), 3, "classification")
IMAGE = DatasetMeta("img", (1, 8, 8), 3, "classification")
FLAT = DatasetMeta("flat", (5,), 3, "classification")


ECOSYSTEM = {"timm", "torchvision"}  # optional extras: tests/data/test_ecosystem_vision.py


@pytest.mark.parametrize("name", sorted(set(MODELS.names()) - ECOSYSTEM))
@pytest.mark.parametrize("meta", [SIGNAL, IMAGE, FLAT], ids=["signal", "image", "flat"])
def test_every_model_builds_and_backprops(name, meta):
    if name in ("cnn", "resnet") and meta is FLAT or name == "gru" and meta is not SIGNAL:
        pytest.skip(f"{name} needs {'(C, L)' if name == 'gru' else '(C, L) or (C, H, W)'} inputs")
    for arch in (["mlp", "conv"] if name in ("autoencoder", "vae") and meta is not FLAT else [None]):
        params = {"arch": arch} if arch else {}
        model = MODELS.get(name).obj(meta=meta, **params)
        x = torch.randn(4, *meta.input_shape)
        out = model(x)
        pred = out["recon"] if isinstance(out, dict) else out
        expected = meta.input_shape if getattr(model, "reconstructs", False) else (meta.num_classes,)
        assert tuple(pred.shape) == (4, *expected)
        pred.sum().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_cnn_refuses_flat_inputs_with_a_hint():
    with pytest.raises(ValueError, match="model.name=mlp"):
        MODELS.get("cnn").obj(meta=FLAT)


FILE_DATASETS = {"mnist", "fashion_mnist", "cifar10", "tensors"}  # tested in tests/data


@pytest.mark.parametrize("name", sorted(set(DATASETS.names()) - FILE_DATASETS - ECOSYSTEM - {"hf"}))
def test_every_generated_dataset_loads_and_splits(name, tmp_path):
    params = {"n_samples": 100} if "n_samples" in DATASETS.get(name).parameters() else {}
    if name == "mnist1d":
        params = {"num_samples": 200}
    raw = DATASETS.get(name).obj(root=tmp_path, **params)
    check_dataset(name, raw)  # what the run checks before it starts
    s = split(raw, 0.1, 0.1, 0)
    n = len(raw.x) + (len(raw.x_test) if raw.x_test is not None else 0)
    assert len(s.train[0]) + len(s.val[0]) + len(s.test[0]) == n
    assert tuple(s.train[0].shape[1:]) == raw.meta.input_shape
    assert raw.meta.task in ("classification", "regression")


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_gives_a_finite_scalar(name):
    loss = LOSSES.get(name).obj()
    if name == "elbo":
        model = MODELS.get("vae").obj(meta=FLAT)
        x = torch.randn(4, 5)
        terms = compute_terms(model(x), x, None, loss, True, False)
        assert set(terms) == {"loss", "recon", "kl"}
    else:
        out, y = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 0])
        target = y if name in ("cross_entropy", "bce") else torch.randn(4, 3)
        terms = compute_terms(out, None, target, loss, False, name == "cross_entropy")
        if name == "cross_entropy":
            assert "acc" in terms
    assert terms["loss"].ndim == 0 and torch.isfinite(terms["loss"])


@pytest.mark.parametrize("name", LOSSES.names())
def test_per_sample_terms_average_to_the_batch_terms(name):
    """What stacked seed ensembles rely on: each term's per-sample values (N,) have the
    batch value as their mean."""
    loss = LOSSES.get(name).obj()
    assert has_per_sample(loss)
    g = torch.Generator().manual_seed(0)
    if name == "elbo":
        torch.manual_seed(0)
        x = torch.randn(6, 5, generator=g)
        out = MODELS.get("vae").obj(meta=FLAT)(x)
        args = (out, x, None, loss, True, False)
    else:
        classes = name in ("cross_entropy", "bce")
        shape = (6, 3) if classes else (6, 3, 2)  # (N, C) logits; (N, ...) regression values
        out = torch.randn(*shape, generator=g)
        target = torch.randint(0, 3, (6,), generator=g) if classes else torch.randn(*shape, generator=g)
        args = (out, None, target, loss, False, name == "cross_entropy")
    whole, per = compute_terms(*args), compute_terms(*args, per_sample=True)
    assert whole.keys() == per.keys()
    for k in whole:
        assert per[k].shape == (6,)
        torch.testing.assert_close(per[k].mean(), whole[k])


# Optimisers the Trainer cannot drive, with the reason the validator gives.
UNSUPPORTED_OPTIMIZERS = {"lbfgs", "sparseadam", "muon"}


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS.names()) - UNSUPPORTED_OPTIMIZERS))
def test_every_optimizer_takes_a_step(name):
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer({"name": name, "lr": 0.01}, model.parameters())
    before = model.weight.detach().clone()
    model(torch.randn(8, 3)).pow(2).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


SCHEDULER_PARAMS = {
    "steplr": {"step_size": 1}, "multisteplr": {"milestones": [1, 2]}, "exponentiallr": {"gamma": 0.9},
    "cycliclr": {"base_lr": 0.001, "max_lr": 0.01}, "onecyclelr": {"max_lr": 0.01},
    "cosineannealingwarmrestarts": {"T_0": 2},
}


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_scheduler_builds_and_steps(name):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched, interval, monitor = build_scheduler({"name": name, **SCHEDULER_PARAMS.get(name, {})},
                                               opt, epochs=4, steps_per_epoch=3)
    for _ in range(3):
        opt.step()
        sched.step(1.0) if monitor else sched.step()
    assert opt.param_groups[0]["lr"] > 0


EXPECTED_SCHEDULES = {  # spec -> values at epochs 0, 1, 2, 4
    "constant": ({"value": 2.0}, [2.0, 2.0, 2.0, 2.0]),
    "linear": ({"start": 0.0, "end": 1.0, "epochs": 2}, [0.0, 0.5, 1.0, 1.0]),
    "cosine": ({"start": 1.0, "end": 0.0, "epochs": 2}, [1.0, 0.5, 0.0, 0.0]),
    "step": ({"start": 1.0, "gamma": 0.5, "epochs": 2}, [1.0, 1.0, 0.5, 0.25]),
    "exponential": ({"start": 1.0, "gamma": 0.5, "epochs": 1}, [1.0, 0.5, 0.25, 0.0625]),
    "cyclical": ({"start": 0.0, "end": 1.0, "epochs": 2, "ratio": 0.5}, [0.0, 1.0, 0.0, 0.0]),
    "warmup": ({"value": 1.0, "epochs": 2}, [0.0, 0.5, 1.0, 1.0]),
}


@pytest.mark.parametrize("name", HPARAM_SCHEDULES.names())
def test_every_hparam_schedule_follows_its_formula(name):
    spec, values = EXPECTED_SCHEDULES[name]
    sched = build_schedule({"schedule": name, **spec})
    got = [sched(e, 0) for e in (0, 1, 2, 4)]
    assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(got, values)), got


def test_step_unit_schedules_follow_the_step_counter():
    sched = build_schedule({"schedule": "linear", "start": 0, "end": 1, "steps": 10})
    assert sched(99.0, 5) == 0.5


def test_scheduled_loss_parameter_reaches_the_loss_every_step(tmp_path):
    cfg = tiny_config(tmp_path, model={"name": "vae", "latent_dim": 2, "hidden": [8]},
                      loss={"name": "elbo", "beta": {"schedule": "linear", "start": 0.0, "end": 1.0, "epochs": 2}})
    p = prepare(cfg)
    assert p.scheduled[0].key == "loss.beta" and p.loss.beta == 0.0



def test_conv_models_start_with_untouched_batchnorm_statistics() -> None:
    """The encoder infers its feature-map shapes with a dummy batch; BatchNorm must not
    count it (it did: running statistics started from that zero batch)."""
    meta = DatasetMeta("signal", (1, 40), 10, "classification", ())
    model = MODELS.get("cnn").obj(meta, channels=[4, 8], batchnorm=True)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and model.training
    for bn in norms:
        assert int(bn.num_batches_tracked) == 0
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
