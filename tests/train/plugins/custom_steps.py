"""Test-only plugin: models and a `step:` component that own their training step.

Each does exactly the default step's work (forward, the configured loss, accuracy), so a
run with it must equal the default step's run bit for bit.
"""

from __future__ import annotations

import torch

from runlab.models.classifiers import MLP
from runlab.registry import MODELS, STEPS


def supervised_terms(model, batch, ctx) -> dict[str, torch.Tensor]:
    x, y = batch
    with ctx.autocast():
        out = model(x)
        terms = dict(ctx.loss(out, y))
    terms["acc"] = (out.argmax(-1) == y).float().mean()
    return terms


@MODELS.register("mlp_auto_step")
class AutoStepMLP(MLP):
    """MLP whose training_step returns `loss`: the framework backpropagates and steps."""

    def training_step(self, batch, ctx):
        return supervised_terms(self, batch, ctx)

    def validation_step(self, batch, ctx):
        return supervised_terms(self, batch, ctx)


@MODELS.register("mlp_manual_step")
class ManualStepMLP(MLP):
    """MLP that backpropagates and steps each optimizer itself (body first, then head when
    the config names them, else the one optimizer); logs a scalar through ctx.log."""

    def training_step(self, batch, ctx):
        terms = supervised_terms(self, batch, ctx)
        ctx.backward(terms["loss"])
        for name in ctx.optimizers:
            ctx.step(name)
        ctx.log("hp_seen", float(len(ctx.hparams)))
        return terms


@STEPS.register("supervised")
class Supervised:
    """A `step:` component doing the default step's work, `loss` returned."""

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def training_step(self, batch, ctx):
        terms = supervised_terms(ctx.model, batch, ctx)
        terms["loss"] = terms["loss"] * self.weight
        return terms
