"""Draws from a generative model's prior, decoded."""

from __future__ import annotations

import math
from typing import Any

import torch

from runlab.data.base import DatasetMeta
from runlab.diagnostics.base import (
    MAX_PANELS,
    Diagnostic,
    DiagnosticContext,
    DiagnosticResult,
    drawing,
    is_image,
    numpy,
)
from runlab.registry import DIAGNOSTICS


@DIAGNOSTICS.register(
    "samples", description="Decoded prior draws: model.sample(n), or decode(z), z ~ N(0, I)."
)
class Samples(Diagnostic):
    """Decodes `n` prior draws, the same draws at every step so pictures compare.

    Uses `model.sample(n, generator=...)` when the model has it, else decodes
    z ~ N(0, temperature^2 I) of size latent_dim. Scalar `std_ratio`: per-element
    std of the samples over that of the data batch (near 0 = collapsed samples).
    """

    requires = ("decode", "latent_dim")

    def __init__(self, n: int = 16, temperature: float = 1.0, **schedule: Any):
        super().__init__(**schedule)
        self.n, self.temperature = n, temperature

    def check(self, model: torch.nn.Module, meta: DatasetMeta) -> list[str]:
        return [] if hasattr(model, "sample") else super().check(model, meta)

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        model = ctx.model
        if hasattr(model, "sample"):
            x = model.sample(self.n, generator=ctx.generator)
        else:
            z = torch.randn(self.n, model.latent_dim, generator=ctx.generator, device=ctx.device)
            x = model.decode(z * self.temperature)
        x = x.reshape(self.n, *ctx.meta.input_shape)  # (n, *input_shape)
        ratio = x.std(dim=0).mean() / ctx.x.std(dim=0).mean().clamp_min(1e-12)
        samples = numpy(x)
        title = f"prior samples, step {ctx.step}"
        if is_image(tuple(x.shape[1:])):
            cols = min(self.n, 8)
            rows = math.ceil(self.n / cols)
            blank = x.new_full((rows * cols - self.n, *x.shape[1:]), x.min().item())
            grid = torch.cat([x, blank]).reshape(rows, cols, *x.shape[1:])
            fig = drawing("image_rows", rows=numpy(grid), row_labels=[""] * rows, title=title)
        else:
            fig = drawing("signal_panels", panels=samples[:MAX_PANELS, None], title=title)
        return DiagnosticResult({"std_ratio": ratio.item()}, fig, {"samples": samples})
