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
    drawing,
    model_label,
    model_output,
)
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
        figure = drawing("confusion", counts=counts, shown=shown,
                         class_names=list(ctx.meta.class_names), step=ctx.step)
        return DiagnosticResult(scalars, figure, {"counts": counts})
