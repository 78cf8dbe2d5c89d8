"""Confusion matrix of a classifier on the fixed validation batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from runlab.data.base import DatasetMeta
from runlab.diagnostics.base import (
    Diagnostic,
    DiagnosticContext,
    DiagnosticResult,
    model_label,
    model_output,
)
from runlab.diagnostics.render import new_figure
from runlab.registry import DIAGNOSTICS


@DIAGNOSTICS.register(
    "confusion_matrix", description="Confusion matrix and accuracy of a classifier on val data."
)
class ConfusionMatrix(Diagnostic):
    """Rows are true classes, columns predicted ones (row-normalised in the picture
    with `normalize`, raw counts in the npz). Scalars: `accuracy`, `balanced_accuracy`."""

    tasks = ("classification",)

    def __init__(self, n: int = 1024, normalize: bool = True, **schedule: Any):
        super().__init__(**schedule)
        self.n, self.normalize = n, normalize

    def check(self, model: torch.nn.Module, meta: DatasetMeta) -> list[str]:
        problems = super().check(model, meta)
        if not problems and not meta.num_classes:
            problems.append(f"needs the number of classes, which dataset '{meta.name}' lacks")
        if hasattr(model, "decode"):  # by the model protocol, forward gives no logits then
            problems.append(
                f"needs a classifier, but model '{model_label(model)}' is an "
                "autoencoder (it has decode)"
            )
        return problems

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        k = ctx.meta.num_classes
        pred = model_output(ctx.model, ctx.x, key="logits").argmax(dim=1)  # (B,)
        true = ctx.y.reshape(-1).long()
        counts = torch.bincount(true * k + pred, minlength=k * k).reshape(k, k).cpu().numpy()
        support = counts.sum(axis=1)
        recall = np.diag(counts)[support > 0] / support[support > 0]
        scalars = {
            "accuracy": float(np.trace(counts) / counts.sum()),
            "balanced_accuracy": float(recall.mean()),
        }
        shown = counts / np.maximum(support[:, None], 1) if self.normalize else counts
        return DiagnosticResult(scalars, self._plot(counts, shown, ctx), {"counts": counts})

    def _plot(self, counts: np.ndarray, shown: np.ndarray, ctx: DiagnosticContext):
        k = len(counts)
        names = list(ctx.meta.class_names) or [str(i) for i in range(k)]
        fig = new_figure(1.5 + 0.45 * k, 1.2 + 0.4 * k)
        ax = fig.add_subplot()
        image = ax.imshow(shown, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, shrink=0.8)
        if k <= 20:  # numbers stay legible
            for i, j in np.ndindex(k, k):
                ax.text(
                    j,
                    i,
                    counts[i, j],
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if shown[i, j] > shown.max() / 2 else "black",
                )
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"confusion, step {ctx.step}", fontsize=9)
        return fig
