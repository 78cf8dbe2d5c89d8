"""Inputs beside their reconstructions decode(encode(x))."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    "reconstructions",
    description="Inputs beside decode(encode(x)): image rows or overlaid signals.",
)
class Reconstructions(Diagnostic):
    """Shows `n` fixed validation inputs with their reconstructions; for a VAE the
    reconstruction of the mean code. Scalar: `mse` (per element, over the n inputs)."""

    requires = ("encode", "decode")

    def __init__(self, n: int = 16, **schedule: Any):
        super().__init__(**schedule)
        self.n = n

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        x = ctx.x
        x_hat = ctx.model.decode(ctx.model.encode(x)).reshape(x.shape)  # (n, *input_shape)
        mse = (x_hat - x).pow(2).flatten(1).mean(dim=1)  # (n,)
        arrays = {"inputs": numpy(x), "reconstructions": numpy(x_hat), "mse_per_input": numpy(mse)}
        pairs = np.stack([arrays["inputs"], arrays["reconstructions"]])  # (2, n, *input_shape)
        title = f"reconstructions, step {ctx.step}"
        if is_image(tuple(x.shape[1:])):
            fig = drawing("image_rows", rows=pairs, row_labels=["input", "recon"], title=title)
        else:
            fig = drawing("signal_panels", panels=pairs.swapaxes(0, 1)[:MAX_PANELS],  # (p, 2, ...)
                          curve_labels=["input", "reconstruction"],
                          titles=[f"mse {m:.3g}" for m in mse[:MAX_PANELS].tolist()], title=title)
        return DiagnosticResult({"mse": mse.mean().item()}, fig, arrays)
