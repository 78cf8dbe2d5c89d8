"""Mean, spread and dead units of every activation layer, via forward hooks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.diagnostics.base import (
    Diagnostic,
    DiagnosticContext,
    DiagnosticResult,
    drawing,
    model_label,
)
from runlab.registry import DIAGNOSTICS

ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softsign,
)
DEAD_ATOL = 1e-6  # a unit whose outputs over the batch span less than this is dead


@DIAGNOSTICS.register(
    "activation_stats", description="Mean, std and dead-unit fraction of each activation layer."
)
class ActivationStats(Diagnostic):
    """Hooks every activation module (nn.ReLU, nn.GELU, ...) during one forward pass
    of the fixed batch. A unit (a feature, or a channel of a conv map) is dead when
    its output is constant over the batch: a ReLU that never fires, a saturated
    tanh. Scalars: `<layer>/mean`, `<layer>/std`,
    `<layer>/dead`, and `dead_fraction` over all units."""

    def __init__(self, n: int = 256, bins: int = 50, **schedule: Any):
        super().__init__(**schedule)
        self.n, self.bins = n, bins

    def check(self, model: torch.nn.Module, meta: DatasetMeta) -> list[str]:
        if any(isinstance(m, ACTIVATIONS) for m in model.modules()):
            return super().check(model, meta)
        return [
            f"needs activation modules (nn.ReLU, nn.GELU, ...), which model "
            f"'{model_label(model)}' lacks (functional activations cannot be hooked)"
        ]

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        outputs: dict[str, torch.Tensor] = {}

        def hook(name: str):
            def record(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
                calls = sum(1 for k in outputs if k == name or k.startswith(f"{name}#"))
                outputs[name if calls == 0 else f"{name}#{calls + 1}"] = out.detach()

            return record

        handles = [
            m.register_forward_hook(hook(name))
            for name, m in ctx.model.named_modules()
            if isinstance(m, ACTIVATIONS)
        ]
        try:
            ctx.model(ctx.x)
        finally:
            for h in handles:
                h.remove()
        if not outputs:
            raise ValueError("no activation module ran in the forward pass")
        scalars, stats = {}, {}
        for name, a in outputs.items():
            a = a.float()
            units = a.transpose(0, 1).flatten(1) if a.dim() > 1 else a[None]  # (units, values)
            spread = units.max(dim=1).values - units.min(dim=1).values
            dead = (spread <= DEAD_ATOL).float()
            stats[name] = (a.mean().item(), a.std().item(), dead.mean().item(), len(dead))
            scalars.update(
                {
                    f"{name}/mean": stats[name][0],
                    f"{name}/std": stats[name][1],
                    f"{name}/dead": stats[name][2],
                }
            )
        table = np.array(list(stats.values()))  # (layers, 4): mean, std, dead, units
        scalars["dead_fraction"] = float((table[:, 2] * table[:, 3]).sum() / table[:, 3].sum())
        arrays = {
            "layers": np.array(list(stats)),
            "mean": table[:, 0],
            "std": table[:, 1],
            "dead": table[:, 2],
            "units": table[:, 3].astype(int),
        }
        histograms = {  # the first layers' only: more would be unreadable
            name: np.histogram(a.flatten().float().cpu().numpy(), bins=self.bins)
            for name, a in list(outputs.items())[:8]
        }
        figure = drawing("activation_stats", names=list(outputs), table=table,
                         histograms=histograms, step=ctx.step)
        return DiagnosticResult(scalars, figure, arrays)
