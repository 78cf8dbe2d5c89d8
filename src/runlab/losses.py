"""Built-in losses. A loss maps (model output, x, y) to named terms; `loss` is optimised,
every other term is logged beside it (`train/recon`, `train/kl`).

The target is `y`, or the input `x` for models that reconstruct (autoencoders, VAEs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from runlab.registry import LOSSES


def _pred(out: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    return out["recon"] if isinstance(out, dict) else out


class Loss(nn.Module):
    """Base class: `forward(out, target) -> {"loss": ...}`. `target` is y or x (see module doc)."""

    def forward(self, out, target) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """Cross-entropy on logits (classification)."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, out, target):
        return {"loss": F.cross_entropy(_pred(out), target, label_smoothing=self.label_smoothing)}


@LOSSES.register("mse")
class MSE(Loss):
    """Mean squared error."""

    def forward(self, out, target):
        return {"loss": F.mse_loss(_pred(out), target)}


@LOSSES.register("l1")
class L1(Loss):
    """Mean absolute error."""

    def forward(self, out, target):
        return {"loss": F.l1_loss(_pred(out), target)}


@LOSSES.register("huber")
class Huber(Loss):
    """Huber loss (quadratic below `delta`, linear above)."""

    def __init__(self, delta: float = 1.0):
        super().__init__()
        self.delta = delta

    def forward(self, out, target):
        return {"loss": F.huber_loss(_pred(out), target, delta=self.delta)}


@LOSSES.register("bce")
class BCE(Loss):
    """Binary cross-entropy with logits (targets in [0, 1]; class ids become one-hot)."""

    def forward(self, out, target):
        pred = _pred(out)
        if not torch.is_floating_point(target):
            target = F.one_hot(target, pred.shape[-1]).to(pred.dtype)
        return {"loss": F.binary_cross_entropy_with_logits(pred, target)}


def elbo_terms(out: dict[str, torch.Tensor], x: torch.Tensor, beta: float,
               likelihood: str = "gaussian") -> dict[str, torch.Tensor]:
    """Negative ELBO per sample: reconstruction (summed over dims) + beta * KL(q(z|x) || N(0, I))."""
    recon, mu, logvar = out["recon"], out["mu"], out["logvar"]
    if likelihood == "bernoulli":
        rec = F.binary_cross_entropy_with_logits(recon, x, reduction="none")
    else:  # unit-variance Gaussian, constants dropped
        rec = 0.5 * (recon - x) ** 2
    rec = rec.flatten(1).sum(1).mean()
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    return {"loss": rec + beta * kl, "recon": rec, "kl": kl}


@LOSSES.register("elbo")
class ELBO(Loss):
    """VAE negative ELBO: Gaussian or Bernoulli reconstruction + beta * KL."""

    def __init__(self, beta: float = 1.0, likelihood: str = "gaussian"):
        super().__init__()
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}")
        self.beta, self.likelihood = beta, likelihood

    def forward(self, out, target):
        if not isinstance(out, dict) or not {"recon", "mu", "logvar"} <= set(out):
            raise ValueError("loss 'elbo' needs a model whose forward returns recon, mu and logvar (e.g. vae)")
        return elbo_terms(out, target, self.beta, self.likelihood)


class ModelLoss(Loss):
    """Adapter for a model that computes its own loss (`model.loss(out, x, y)`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self._fn = model.loss

    def forward(self, out, target):
        raise RuntimeError("ModelLoss is called through compute_terms")


def default_loss_name(task: str) -> str:
    return "cross_entropy" if task == "classification" else "mse"


def compute_terms(model_out, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module,
                  reconstructs: bool, classification: bool) -> dict[str, torch.Tensor]:
    """All terms of one batch; pure (no state), so it vectorises with torch.func."""
    if isinstance(loss_fn, ModelLoss):
        terms = dict(loss_fn._fn(model_out, x, y))
    else:
        terms = dict(loss_fn(model_out, x if reconstructs else y))
    if classification and not reconstructs:
        terms["acc"] = (_pred(model_out).argmax(-1) == y).float().mean()
    return terms
