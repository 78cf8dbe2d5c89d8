"""2-D embedding of the model's representation, coloured by label."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from runlab.diagnostics.base import (
    Diagnostic,
    DiagnosticContext,
    DiagnosticResult,
    code_of,
    drawing,
)
from runlab.registry import DIAGNOSTICS

METHODS = ("pca", "tsne", "umap")


@DIAGNOSTICS.register(
    "latent_space",
    description="2-D embedding (pca, tsne, umap) of encode(x), or features(x) for classifiers.",
)
class LatentSpace(Diagnostic):
    """Scatter of the codes of the fixed batch in 2-D, coloured by label.

    Scalars: `explained_var_2d` (share of the code variance in the top two principal
    components) and `participation_ratio` ((sum l)^2 / sum l^2 over the covariance
    eigenvalues l: the number of dimensions the codes really use).
    """

    requires = ("encode|features",)

    def __init__(
        self, method: str = "pca", n: int = 256, perplexity: float = 30.0, **schedule: Any
    ):
        super().__init__(**schedule)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if method == "umap" and importlib.util.find_spec("umap") is None:
            raise ValueError("method 'umap' needs umap-learn: pip install 'runlab[umap]'")
        self.method, self.n, self.perplexity = method, n, perplexity

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        z = code_of(ctx.model, ctx.x).float()  # (B, D)
        zc = z - z.mean(dim=0)
        _, s, vh = torch.linalg.svd(zc, full_matrices=False)  # exact: no random projections
        var = s**2
        ratio = var / var.sum().clamp_min(1e-12)
        scalars = {
            "explained_var_2d": ratio[:2].sum().item(),
            "participation_ratio": (var.sum() ** 2 / (var**2).sum().clamp_min(1e-12)).item(),
        }
        if self.method == "pca":
            emb = (zc @ vh[:2].T).cpu().numpy()
        else:
            emb = self._nonlinear(zc.cpu().numpy(), ctx.seed)
        emb = np.pad(emb, ((0, 0), (0, 2 - emb.shape[1])))  # 1-D codes: put them on the x axis
        labels = _labels(ctx.y, len(z))
        arrays = {
            "codes": z.cpu().numpy(),
            "embedding": emb,
            "explained_variance_ratio": ratio.cpu().numpy(),
        }
        if labels is not None:
            arrays["labels"] = labels
        source = "encode" if hasattr(ctx.model, "encode") else "features"
        figure = drawing("latent_space", embedding=emb, labels=labels,
                         class_names=list(ctx.meta.class_names),
                         title=f"{source}(x), {self.method}, step {ctx.step}")
        return DiagnosticResult(scalars, figure, arrays)

    def _nonlinear(self, z: np.ndarray, seed: int) -> np.ndarray:
        if self.method == "tsne":
            from sklearn.manifold import TSNE

            perplexity = min(self.perplexity, (len(z) - 1) / 3)
            return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(z)


def _labels(y: torch.Tensor | None, n: int) -> np.ndarray | None:
    """One label per sample, or None when y is not per-sample scalars (e.g. y is x)."""
    if y is None or len(y) != n or y[0].numel() != 1:
        return None
    return y.reshape(n).cpu().numpy()
