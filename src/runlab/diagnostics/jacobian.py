"""Jacobians of the encoder, decoder or whole model at the fixed inputs (torch.func)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import jacrev, vmap

from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult, drawing
from runlab.registry import DIAGNOSTICS

MAPS = ("auto", "encoder", "decoder", "both", "model")


def effective_rank(singular_values: torch.Tensor) -> torch.Tensor:
    """exp of the entropy of the normalised singular values (Roy & Vetterli, 2007).

    Between 1 (rank one) and the number of values (all equal). (..., k) -> (...)
    """
    p = singular_values / singular_values.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(dim=-1)
    return entropy.exp()


@DIAGNOSTICS.register(
    "jacobian", description="Singular values, norm and effective rank of encoder/decoder Jacobians."
)
class Jacobian(Diagnostic):
    """Per-example Jacobians via torch.func (vmap over jacrev) at `n` fixed inputs.

    `of`: encoder (dz/dx), decoder (dx_hat/dz at z = encode(x)), both, model
    (d model(x)/dx, e.g. logits of a classifier), or auto (both for models with
    encode and decode, else model). Scalars per map: `<map>/frobenius`,
    `<map>/spectral` (largest singular value), `<map>/effective_rank`, means over inputs.
    """

    def __init__(self, n: int = 8, of: str = "auto", **schedule: Any):
        super().__init__(**schedule)
        if of not in MAPS:
            raise ValueError(f"of must be one of {', '.join(MAPS)}, got {of!r}")
        self.n, self.of = n, of

    def requirements(self) -> tuple[str, ...]:
        return {
            "encoder": ("encode",),
            "decoder": ("encode", "decode"),
            "both": ("encode", "decode"),
        }.get(self.of, ())

    def _methods(self, model: torch.nn.Module) -> tuple[str, ...]:
        """The model methods whose Jacobians to take."""
        of = self.of
        if of == "auto":
            of = "both" if hasattr(model, "encode") and hasattr(model, "decode") else "model"
        return {
            "encoder": ("encode",),
            "decoder": ("decode",),
            "both": ("encode", "decode"),
            "model": ("forward",),
        }[of]

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        model, x = ctx.model, ctx.x
        scalars, arrays, spectra = {}, {}, {}
        for method in self._methods(model):
            points = model.encode(x).detach() if method == "decode" else x
            fn = getattr(model, method)
            name = {"encode": "encoder", "decode": "decoder", "forward": "model"}[method]

            def single(p: torch.Tensor, fn: Callable = fn, name: str = name) -> torch.Tensor:
                out = fn(p.unsqueeze(0))
                if not isinstance(out, torch.Tensor):
                    raise TypeError(
                        f"the {name} returns {type(out).__name__}, not a tensor; "
                        "use of: encoder|decoder|both"
                    )
                return out.flatten()

            try:
                jac = vmap(jacrev(single))(points)
            except RuntimeError:  # layers vmap cannot batch (nn.GRU): one input at a time
                jac = torch.stack([jacrev(single)(p) for p in points])
            jac = jac.flatten(2)  # (n, out_dim, in_dim)
            sv = torch.linalg.svdvals(jac.float())  # (n, min(out_dim, in_dim)), descending
            scalars[f"{name}/frobenius"] = jac.flatten(1).norm(dim=1).mean().item()
            scalars[f"{name}/spectral"] = sv[:, 0].mean().item()
            scalars[f"{name}/effective_rank"] = effective_rank(sv).mean().item()
            spectra[name] = sv.cpu().numpy()
            arrays[f"{name}_singular_values"] = spectra[name]
        figure = drawing("jacobian_spectra", spectra=spectra, step=ctx.step)
        return DiagnosticResult(scalars, figure, arrays)
