"""A GAN on a 2-D mixture of Gaussians: the dataset, the model with its own training
step (two optimizers, `gen` and `disc`) and a diagnostic that draws generated samples.

Used by configs/gan_mixture2d.yaml (`plugins: [plugins/gan2d.py]`). A worked example of
runlab's custom steps (runlab.train.step): the model steps the discriminator, then the
generator, through `ctx.backward` / `ctx.step`; the returned terms are only logged.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from runlab.data import DatasetMeta, RawData
from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult, drawing, numpy
from runlab.registry import DATASETS, DIAGNOSTICS, MODELS


@DATASETS.register("gaussian_mixture_2d")
def gaussian_mixture_2d(root: Path, n_samples: int = 4096, modes: int = 8, radius: float = 2.0,
                        std: float = 0.05, seed: int = 0) -> RawData:
    """`modes` Gaussians (std `std`) evenly spaced on a circle of `radius`; y = the mode."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(modes, (n_samples,), generator=g)
    angle = 2 * math.pi * y.float() / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # (N, 2)
    x = centres + std * torch.randn(n_samples, 2, generator=g)
    meta = DatasetMeta("gaussian_mixture_2d", (2,), modes, class_names=tuple(map(str, range(modes))))
    return RawData(x, y, meta)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def mmd(a: torch.Tensor, b: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """Squared maximum mean discrepancy with an RBF kernel: 0 when the two samples come
    from the same distribution (a measure of sample quality that sees dropped modes)."""
    k = lambda u, v: torch.exp(-torch.cdist(u, v).pow(2) / (2 * scale**2))  # noqa: E731
    return k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()


@MODELS.register("gan2d")
class GAN2d(nn.Module):
    """Generator z (latent_dim) -> R^2 and discriminator R^2 -> logit, both MLPs.
    `forward(x)` is the discriminator's logit; `sample(n)` draws from the generator."""

    def __init__(self, meta: DatasetMeta, latent_dim: int = 8, hidden: int = 128):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = mlp([latent_dim, hidden, hidden, meta.input_dim])
        self.discriminator = mlp([meta.input_dim, hidden, hidden, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x).squeeze(-1)  # (B,)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return self.generator(torch.randn(n, self.latent_dim, generator=generator, device=device))

    def training_step(self, batch, ctx):
        x, _ = batch  # (B, 2); the mode labels are not used
        real, fake_label = torch.ones(len(x), device=x.device), torch.zeros(len(x), device=x.device)
        with ctx.autocast():
            fake = self.sample(len(x))
            d_loss = (F.binary_cross_entropy_with_logits(self(x), real)
                      + F.binary_cross_entropy_with_logits(self(fake.detach()), fake_label))
        ctx.backward(d_loss)
        ctx.step("disc")
        with ctx.autocast():
            g_loss = F.binary_cross_entropy_with_logits(self(fake), real)  # non-saturating loss
        ctx.backward(g_loss)
        ctx.step("gen")  # the discriminator's gradients from g_loss are dropped after the step
        return {"d_loss": d_loss, "g_loss": g_loss}

    def validation_step(self, batch, ctx):
        x, _ = batch
        fake = self.sample(len(x))
        real, fake_label = torch.ones(len(x), device=x.device), torch.zeros(len(x), device=x.device)
        d_loss = (F.binary_cross_entropy_with_logits(self(x), real)
                  + F.binary_cross_entropy_with_logits(self(fake), fake_label))
        return {"d_loss": d_loss, "g_loss": F.binary_cross_entropy_with_logits(self(fake), real),
                "mmd": mmd(fake, x)}


@DIAGNOSTICS.register("gan_samples", description="Generated samples over the data (2-D scatter).")
class GanSamples(Diagnostic):
    """Scatter of `n` generated samples (the same latent draws every time) over the fixed
    data batch; scalar `mmd` between the two."""

    requires = ("sample",)

    def __init__(self, n: int = 512, **schedule):
        super().__init__(**schedule)
        self.n = n

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        fake = ctx.model.sample(self.n, generator=ctx.generator)  # (n, 2)
        points = torch.cat([ctx.x, fake])
        labels = torch.cat([torch.zeros(len(ctx.x)), torch.ones(len(fake))]).long()
        figure = drawing("latent_space", embedding=numpy(points), labels=numpy(labels),
                         class_names=["data", "generated"], title=f"GAN samples, step {ctx.step}")
        return DiagnosticResult({"mmd": mmd(fake, ctx.x).item()}, figure, {"samples": numpy(fake)})
