"""Per-layer weight and gradient norms, and their histograms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult
from runlab.diagnostics.render import new_figure
from runlab.registry import DIAGNOSTICS


@DIAGNOSTICS.register(
    "weights_and_grads", description="Norms and histograms of each parameter and its gradient."
)
class WeightsAndGrads(Diagnostic):
    """Norms of every parameter tensor and of its last gradient (when the Trainer
    left one). Scalars: `weight_norm`, `grad_norm` (global L2), and with
    `per_layer`, `weight_norm/<param>` and `grad_norm/<param>`."""

    n = 0  # looks at the parameters only, not at data

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
        weights = _flat(params.values())
        arrays = {
            "names": np.array(list(w_norms)),
            "weight_norms": np.array(list(w_norms.values())),
            "weight_hist": np.histogram(weights, self.bins)[0],
        }
        if g_norms:
            arrays["grad_norms"] = np.array([g_norms.get(k, np.nan) for k in w_norms])
            arrays["grad_hist"] = np.histogram(_flat(grads.values()), self.bins)[0]
        return DiagnosticResult(
            scalars, self._plot(w_norms, g_norms, weights, grads, ctx.step), arrays
        )

    def _plot(self, w_norms, g_norms, weights, grads, step):
        fig = new_figure(12, 3.6)
        bars, w_ax, g_ax = fig.subplots(1, 3)
        pos = np.arange(len(w_norms))
        bars.barh(pos - 0.2, list(w_norms.values()), height=0.4, label="weight")
        if g_norms:
            bars.barh(pos + 0.2, [g_norms.get(k, 0.0) for k in w_norms], height=0.4, label="grad")
        bars.set_yticks(pos, list(w_norms), fontsize=6)
        bars.invert_yaxis()
        bars.set_xscale("log")
        bars.set_title(f"L2 norms, step {step}", fontsize=9)
        bars.legend(fontsize=7)
        w_ax.hist(weights, bins=self.bins, log=True)
        w_ax.set_title("weights", fontsize=9)
        if grads:
            g_ax.hist(_flat(grads.values()), bins=self.bins, log=True, color="C1")
        g_ax.set_title("gradients" if grads else "gradients (none)", fontsize=9)
        return fig


def _flat(tensors: Any) -> np.ndarray:
    """All values of the tensors as one float array (a histogram's input)."""
    return torch.cat([t.detach().float().flatten().cpu() for t in tensors]).numpy()
