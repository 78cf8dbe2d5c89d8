"""The real dropout masks and VAE noise under vmap(randomness="different"): each member
draws its own, with the right statistics (the equivalence tests fix them instead)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.ensemble.stacked import Stack, StepModule
from runlab.losses import MSE
from runlab.models.autoencoders import VAE

K, B, D = 4, 512, 64


class DropoutProbe(nn.Module):
    """Identity followed by dropout: its output shows the mask."""

    reconstructs = True

    def __init__(self, p: float):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(D))
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x * self.scale)


def stacked_outputs(stack: Stack, x: torch.Tensor) -> torch.Tensor:
    """Each member's forward output on the same input: (K, B, ...)."""
    from torch.func import functional_call, vmap

    def member(params, buffers, xb):
        return functional_call(stack.template.model, (params, buffers), (xb,))

    params = {n.removeprefix("model."): p for n, p in stack.params.items()}
    buffers = {n.removeprefix("model."): b for n, b in stack.buffers.items()}
    return vmap(member, in_dims=(0, 0, None), randomness="different")(params, buffers, x)


def test_dropout_masks_differ_between_members_with_rate_p() -> None:
    torch.manual_seed(0)
    p = 0.3
    probe = DropoutProbe(p)
    stack = Stack([StepModule(copy.deepcopy(probe), MSE(), False) for _ in range(K)])
    x = torch.ones(B, D)
    out = stacked_outputs(stack, x).detach()  # (K, B, D): 0 or 1 / (1 - p)
    kept = out != 0
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    rate = 1 - kept.float().mean(dim=(1, 2))  # (K,)
    n = B * D
    assert (rate - p).abs().max() < 5 * (p * (1 - p) / n) ** 0.5  # 5 sigma
    for i in range(K):
        for j in range(i):
            agree = (kept[i] == kept[j]).float().mean()
            assert abs(agree - (p * p + (1 - p) ** 2)) < 0.02  # independent masks
    stack.train(False)
    assert torch.equal(stacked_outputs(stack, x), torch.ones(K, B, D))  # no dropout in eval


def test_vae_noise_is_standard_normal_and_independent_per_member() -> None:
    torch.manual_seed(0)
    meta = DatasetMeta("toy", (D,), None, "regression", ())
    vae = VAE(meta, latent_dim=8, hidden=[16])
    stack = Stack([StepModule(copy.deepcopy(vae), MSE(), False) for _ in range(K)])
    out = stacked_outputs(stack, torch.randn(B, D))
    eps = ((out["z"] - out["mu"]) / torch.exp(0.5 * out["logvar"])).detach()  # (K, B, 8)
    assert eps.mean().abs() < 0.03 and (eps.std() - 1).abs() < 0.03
    flat = eps.reshape(K, -1)
    corr = torch.corrcoef(flat)
    assert (corr - torch.eye(K)).abs().max() < 0.05  # members draw their own noise
