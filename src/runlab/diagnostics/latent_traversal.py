"""Decode one input's code while moving along one latent dimension at a time."""

from __future__ import annotations

from typing import Any

import torch

from runlab.diagnostics.base import (
    Diagnostic,
    DiagnosticContext,
    DiagnosticResult,
    drawing,
    is_image,
    numpy,
)
from runlab.registry import DIAGNOSTICS


@DIAGNOSTICS.register(
    "latent_traversal", description="Decode the code of one input shifted along each latent dim."
)
class LatentTraversal(Diagnostic):
    """Rows = latent dims, columns = offsets in [-span, span] added to the (mean) code
    of input `index` of the fixed batch. With more than `dims` latent dims, the `dims`
    with the most variance over the batch are shown (the ones the model uses).

    Scalar `sensitivity_mean`: mean over dims of the output's RMS change per unit
    of latent shift (per-dim values in the npz).
    """

    requires = ("encode", "decode", "latent_dim")

    def __init__(
        self,
        span: float = 3.0,
        steps: int = 7,
        dims: int = 8,
        index: int = 0,
        n: int = 256,
        **schedule: Any,
    ):
        super().__init__(**schedule)
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        self.span, self.steps, self.dims, self.index, self.n = span, steps, dims, index, n

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        model = ctx.model
        codes = model.encode(ctx.x).flatten(1)  # (B, latent_dim)
        order = (
            codes.var(dim=0).argsort(descending=True)
            if len(codes) > 1
            else torch.arange(codes.shape[1])
        )
        dims = order[: self.dims].sort().values  # (d,)
        offsets = torch.linspace(-self.span, self.span, self.steps, device=codes.device)  # (s,)
        z = codes[self.index % len(codes)].repeat(len(dims), self.steps, 1)  # (d, s, latent_dim)
        z[torch.arange(len(dims)), :, dims] += offsets
        out = model.decode(z.flatten(0, 1)).reshape(len(dims), self.steps, *ctx.x.shape[1:])
        diffs = out.flatten(2).diff(dim=1)  # (d, s-1, features): change per offset step
        step = 2 * self.span / (self.steps - 1)
        sensitivity = diffs.pow(2).mean(dim=2).sqrt().mean(dim=1) / step  # (d,)
        names = [f"z[{d}]" for d in dims.tolist()]
        arrays = {
            "dims": numpy(dims),
            "offsets": numpy(offsets),
            "outputs": numpy(out),
            "sensitivity": numpy(sensitivity),
        }
        title = f"latent traversal of input {self.index}, step {ctx.step}"
        if is_image(tuple(ctx.x.shape[1:])):
            fig = drawing("image_rows", rows=arrays["outputs"], row_labels=names,
                          col_labels=[f"{o:+.1f}" for o in offsets.tolist()], title=title)
        else:
            fig = drawing("signal_panels", panels=arrays["outputs"], titles=names, colormap=True,
                          title=title)
        return DiagnosticResult({"sensitivity_mean": sensitivity.mean().item()}, fig, arrays)
