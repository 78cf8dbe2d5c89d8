"""Per-layer weight and gradient norms, and their histograms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult, drawing
from runlab.registry import DIAGNOSTICS


@DIAGNOSTICS.register(
    "weights_and_grads", description="Norms and histograms of each parameter and its gradient."
)
class WeightsAndGrads(Diagnostic):
    """Norms of every parameter tensor and of its last gradient (when the Trainer
    left one). Scalars: `weight_norm`, `grad_norm` (global L2), and with
    `per_layer`, `weight_norm/<param>` and `grad_norm/<param>`."""

    n = 0  # looks at the parameters only, not at data
    needs_grads = True

    def __init__(self, bins: int = 50, per_layer: bool = True, **schedule: Any):
        super().__init__(**schedule)
        self.bins, self.per_layer = bins, per_layer

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        params = dict(ctx.model.named_parameters())
        grads = {k: g for k, g in (ctx.grads or {}).items() if k in params}
        w_norms = {k: p.detach().float().norm().item() for k, p in params.items()}
        g_norms = {k: g.float().norm().item() for k, g in grads.items()}
        scalars = {"weight_norm": float(np.linalg.norm(list(w_norms.values())))}
        if g_norms:
            scalars["grad_norm"] = float(np.linalg.norm(list(g_norms.values())))
        if self.per_layer:
            scalars.update({f"weight_norm/{k}": v for k, v in w_norms.items()})
            scalars.update({f"grad_norm/{k}": v for k, v in g_norms.items()})
        arrays = {
            "names": np.array(list(w_norms)),
            "weight_norms": np.array(list(w_norms.values())),
        }
        arrays["weight_hist"], arrays["weight_edges"] = np.histogram(
            _flat(params.values()), self.bins
        )
        if g_norms:
            arrays["grad_norms"] = np.array([g_norms.get(k, np.nan) for k in w_norms])
            arrays["grad_hist"], arrays["grad_edges"] = np.histogram(
                _flat(grads.values()), self.bins
            )
        figure = drawing("weights_and_grads", w_norms=w_norms, g_norms=g_norms, arrays=arrays,
                         step=ctx.step)
        return DiagnosticResult(scalars, figure, arrays)


def _flat(tensors: Any) -> np.ndarray:
    """All values of the tensors as one float array (a histogram's input)."""
    return torch.cat([t.detach().float().flatten().cpu() for t in tensors]).numpy()
