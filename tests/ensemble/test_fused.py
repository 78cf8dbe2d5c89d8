"""Stacked kernels (runlab.ensemble.fused) against vmap, layer by layer and model by model.

`vectorization_problem` keeps the fused step only when a trial train step (terms,
gradients, updated BatchNorm statistics, with the same dropout masks / VAE noise)
and an eval batch match vmap; these tests check that every built-in model passes
that check, that a model which mixes samples fails it, and that unsupported layers
are named.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.ensemble.fused import fuse
from runlab.ensemble.stacked import Stack, StepModule, vectorization_problem
from runlab.losses import MSE, CrossEntropy, ModelLoss
from runlab.registry import MODELS

K, B = 3, 8
SIGNAL = DatasetMeta("signal", (1, 40), 10, "classification", ())
IMAGE = DatasetMeta("image", (1, 8, 8), 10, "classification", ())

MODELS_UNDER_TEST = {
    "linear": (SIGNAL, {}),
    "mlp-dropout-batchnorm": (SIGNAL, {"hidden": [16, 8], "dropout": 0.3, "batchnorm": True}),
    "cnn-1d-batchnorm": (SIGNAL, {"channels": [4, 8], "kernel_size": 5, "hidden": 16, "batchnorm": True}),
    "cnn-2d-dropout": (IMAGE, {"channels": [4, 8], "kernel_size": 3, "hidden": 16, "dropout": 0.2}),
    "autoencoder-mlp": (SIGNAL, {"latent_dim": 2, "hidden": [16]}),
    "autoencoder-conv": (IMAGE, {"latent_dim": 2, "arch": "conv", "channels": [4, 8]}),
    "vae-mlp": (SIGNAL, {"latent_dim": 2, "hidden": [16]}),
    "vae-conv": (IMAGE, {"latent_dim": 2, "arch": "conv", "channels": [4, 8]}),
}


def stack_of(make, loss: nn.Module, classification: bool) -> Stack:
    """K members of `make()` (different initialisations); a model's own loss if it has one."""
    steps = []
    for seed in range(K):
        torch.manual_seed(seed)
        model = make()
        steps.append(StepModule(model, ModelLoss(model) if hasattr(model, "loss") else loss, classification))
    return Stack(steps)


def batch(meta: DatasetMeta, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *meta.input_shape, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("case", list(MODELS_UNDER_TEST))
def test_every_builtin_model_runs_fused_and_matches_vmap(case: str) -> None:
    meta, params = MODELS_UNDER_TEST[case]
    name = case.split("-")[0]
    reconstructs = name in ("autoencoder", "vae")
    stack = stack_of(lambda: MODELS.get(name).obj(meta, **params), MSE() if reconstructs else CrossEntropy(),
                     not reconstructs)
    assert stack.fused is not None, stack.fused_off
    x, y = batch(meta, K * B)
    assert vectorization_problem(stack, x, y, B) is None
    assert stack.fused is not None, stack.fused_off  # the trial matched vmap
    assert stack.method == "stacked kernels"


def test_fused_step_equals_vmap_step_exactly_enough() -> None:
    """One train step and the updated running statistics, fused vs vmap, from the same
    state and RNG (dropout masks included), to float rounding."""
    make = lambda: MODELS.get("cnn").obj(SIGNAL, channels=[4, 8], kernel_size=5, hidden=16, dropout=0.3,  # noqa: E731
                                     batchnorm=True)
    fused, plain = stack_of(make, CrossEntropy(), True), stack_of(make, CrossEntropy(), True)
    plain.fused = None
    x, y = batch(SIGNAL, K * B)
    xs, ys = x.view(K, B, *x.shape[1:]), y.view(K, B)
    results = []
    for stack in (fused, plain):
        torch.manual_seed(1)
        terms = stack.terms(xs, ys)
        terms["loss"].sum().backward()
        results.append((terms, {n: p.grad for n, p in stack.params.items()}, dict(stack.buffers)))
    (ta, ga, ba), (tb, gb, bb) = results
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=1e-5, atol=1e-6)
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], rtol=1e-4, atol=1e-6)
    for n in ba:
        torch.testing.assert_close(ba[n].float(), bb[n].float(), rtol=1e-5, atol=1e-6)
    assert int(ba["model.body.0.net.1.num_batches_tracked"][0]) == 1


class MixesSamples(nn.Module):
    """Centres each batch on its mean: the samples of a batch are not independent."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        return self.fc(h - h.mean(0))


def test_a_model_that_mixes_samples_keeps_vmap() -> None:
    stack = stack_of(MixesSamples, CrossEntropy(), True)
    assert stack.fused is not None  # every layer has a stacked form ...
    x, y = batch(SIGNAL, K * B)
    assert vectorization_problem(stack, x, y, B) is None  # ... it still vectorises with vmap
    assert stack.fused is None and "differ from vmap" in stack.fused_off  # ... but not fused


class WithLayerNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.norm = nn.Linear(40, 10), nn.LayerNorm(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(x.flatten(1)))


class OwnParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40, 10)
        self.scale = nn.Parameter(torch.ones(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * self.scale


@pytest.mark.parametrize(("make", "reason"), [
    (WithLayerNorm, "layer norm (LayerNorm) has no stacked form"),
    (OwnParameter, "module model (OwnParameter) holds tensors itself"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(40, 10), nn.Softmax(-1)), "layer 2 (Softmax) has no stacked form"),
])
def test_unsupported_layers_are_named_and_vmap_is_used(make, reason: str) -> None:
    stack = stack_of(make, CrossEntropy(), True)
    assert stack.fused is None and stack.fused_off == reason
    x, y = batch(SIGNAL, K * B)
    assert vectorization_problem(stack, x, y, B) is None
    assert stack.method == f"torch.func.vmap ({reason})"


def test_fused_model_computes_with_the_stacked_tensors() -> None:
    """The fused copy holds no weights of its own: it reads the optimiser's stacked
    tensors, so a change to member 1's slice shows in member 1's rows only."""
    stack = stack_of(lambda: MODELS.get("mlp").obj(SIGNAL, hidden=[8]), CrossEntropy(), True)
    assert list(stack.fused.model.parameters()) == []
    x, _ = batch(SIGNAL, 2 * K)
    before = stack.fused.model(x).detach()
    with torch.no_grad():
        stack.params["model.head.weight"][1].zero_()
    after = stack.fused.model(x).detach()  # member-major rows: member 1 owns rows 2, 3
    assert torch.equal(after[2:4], stack.params["model.head.bias"][1].detach().expand(2, -1))
    assert torch.equal(after[:2], before[:2]) and torch.equal(after[4:], before[4:])
    assert fuse(stack)[0] is not None
