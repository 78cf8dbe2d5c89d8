"""Test-only plugin for tests/metrics: names that appear at runtime, from every component.

- `zoo_loss`: cross-entropy plus a term that exists only from epoch 2 on (`late`), a term
  whose name changes every batch (`part/<call % 3>`), terms with awkward names (`,`, `"`,
  a newline, `[x]`), and in distributed runs a term only rank 1 has (`rank1_only`).
- `class_acc` callback: per-class validation accuracies `val/acc_class/<c>` and a scripted
  `cb/score` (values from $RUNLAB_TEST_SCORES, one per epoch) to early-stop on.
- `layer_norms` diagnostic: per-layer weight norms `diag/layer_norms/<param>` (plus one
  awkward name).
"""

import os

import torch
import torch.nn.functional as F

from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult
from runlab.losses import Loss
from runlab.registry import CALLBACKS, DIAGNOSTICS, LOSSES
from runlab.train.events import Callback, TrainState

WEIRD = ("a,b", 'say "hi"', "two\nlines", "cell[x]", "cost $x$")
LATE_FROM_EPOCH = 2
_epoch = {"now": 0}  # set by the callback: the loss does not see the epoch


@LOSSES.register("zoo_loss")
class ZooLoss(Loss):
    """Cross-entropy plus terms that come and go (see the module doc)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, out, target):
        ce = F.cross_entropy(out, target)
        const = ce.detach() * 0
        terms = {"loss": ce, f"part/{self.calls % 3}": const + self.calls % 3}
        self.calls += 1
        if _epoch["now"] >= LATE_FROM_EPOCH:
            terms["late"] = const + 0.25
        for i, name in enumerate(WEIRD):
            terms[name] = const + i
        if os.environ.get("RANK") == "1":
            terms["rank1_only"] = const + 7.0
        return terms


@CALLBACKS.register("class_acc")
class ClassAccuracy(Callback):
    """Per-class accuracy on the validation split, and a scripted score."""

    def on_epoch_start(self, state: TrainState) -> None:
        _epoch["now"] = state.epoch

    @torch.no_grad()
    def on_validation_end(self, state: TrainState) -> None:
        if state.val_data is None:
            return
        x, y = (t.to(state.device) for t in state.val_data)
        was = state.model.training
        state.model.eval()
        pred = state.model(x).argmax(-1)
        state.model.train(was)
        for c in range(state.meta.num_classes):
            hit = (pred[y == c] == c).float()
            if len(hit):
                state.log(f"val/acc_class/{c}", hit.mean().item())
        state.log("val/acc_class/odd[x],\"q\"", 0.5)
        scores = os.environ.get("RUNLAB_TEST_SCORES")
        if scores:
            values = [float(v) for v in scores.split(",")]
            done = state.epoch - 1  # state.epoch counts finished epochs here
            state.log("cb/score", values[min(done, len(values) - 1)])


@DIAGNOSTICS.register("layer_norms", description="Per-layer weight norms (test plugin).")
class LayerNorms(Diagnostic):
    """`diag/layer_norms/<param>`: the norm of every parameter tensor."""

    n = 0

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        scalars = {name: p.detach().float().norm().item()
                   for name, p in ctx.model.named_parameters()}
        scalars["w[x],y"] = 1.0
        return DiagnosticResult(scalars)
