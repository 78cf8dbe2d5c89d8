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
    """Base class: `forward(out, target) -> {"loss": ...}`. `target` is y or x (see module doc).

    `per_sample` (optional) gives the same terms per sample, shape (N,) or (N, ...),
    whose batch mean is `forward`'s value; stacked seed ensembles then compute every
    member's loss in one call instead of under vmap."""

    def forward(self, out, target) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def per_sample(self, out, target) -> dict[str, torch.Tensor] | None:
        return None


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """Cross-entropy on logits (classification)."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, out, target):
        return {"loss": F.cross_entropy(_pred(out), target, label_smoothing=self.label_smoothing)}

    def per_sample(self, out, target):
        return {"loss": F.cross_entropy(_pred(out), target, label_smoothing=self.label_smoothing,
                                        reduction="none")}


@LOSSES.register("mse")
class MSE(Loss):
    """Mean squared error."""

    def forward(self, out, target):
        return {"loss": F.mse_loss(_pred(out), target)}

    def per_sample(self, out, target):
        return {"loss": F.mse_loss(_pred(out), target, reduction="none")}


@LOSSES.register("l1")
class L1(Loss):
    """Mean absolute error."""

    def forward(self, out, target):
        return {"loss": F.l1_loss(_pred(out), target)}

    def per_sample(self, out, target):
        return {"loss": F.l1_loss(_pred(out), target, reduction="none")}


@LOSSES.register("huber")
class Huber(Loss):
    """Huber loss (quadratic below `delta`, linear above)."""

    def __init__(self, delta: float = 1.0):
        super().__init__()
        self.delta = delta

    def forward(self, out, target):
        return {"loss": F.huber_loss(_pred(out), target, delta=self.delta)}

    def per_sample(self, out, target):
        return {"loss": F.huber_loss(_pred(out), target, delta=self.delta, reduction="none")}


@LOSSES.register("bce")
class BCE(Loss):
    """Binary cross-entropy with logits (targets in [0, 1]; class ids become one-hot)."""

    def forward(self, out, target):
        return {"loss": self._bce(out, target, "mean")}

    def per_sample(self, out, target):
        return {"loss": self._bce(out, target, "none")}

    @staticmethod
    def _bce(out, target, reduction: str) -> torch.Tensor:
        pred = _pred(out)
        if not torch.is_floating_point(target):
            target = F.one_hot(target, pred.shape[-1]).to(pred.dtype)
        return F.binary_cross_entropy_with_logits(pred, target, reduction=reduction)


def elbo_terms(out: dict[str, torch.Tensor], x: torch.Tensor, beta: float,
               likelihood: str = "gaussian", per_sample: bool = False) -> dict[str, torch.Tensor]:
    """Negative ELBO per sample: reconstruction (summed over dims) + beta * KL(q(z|x) || N(0, I)),
    averaged over the batch (or, with `per_sample`, each sample's (N,))."""
    recon, mu, logvar = out["recon"], out["mu"], out["logvar"]
    if likelihood == "bernoulli":
        rec = F.binary_cross_entropy_with_logits(recon, x, reduction="none")
    else:  # unit-variance Gaussian, constants dropped
        rec = 0.5 * (recon - x) ** 2
    rec = rec.flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
    if not per_sample:
        rec, kl = rec.mean(), kl.mean()
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
        return elbo_terms(self._checked(out), target, self.beta, self.likelihood)

    def per_sample(self, out, target):
        return elbo_terms(self._checked(out), target, self.beta, self.likelihood, per_sample=True)

    @staticmethod
    def _checked(out):
        if not isinstance(out, dict) or not {"recon", "mu", "logvar"} <= set(out):
            raise ValueError("loss 'elbo' needs a model whose forward returns recon, mu and logvar (e.g. vae)")
        return out


class ModelLoss(Loss):
    """Adapter for a model that computes its own loss (`model.loss(out, x, y)`, and
    optionally its per-sample form `model.loss_per_sample(out, x, y)`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self._fn = model.loss
        self._per_sample = getattr(model, "loss_per_sample", None)

    def forward(self, out, target):
        raise RuntimeError("ModelLoss is called through compute_terms")


def default_loss_name(task: str) -> str:
    return "cross_entropy" if task == "classification" else "mse"


def has_per_sample(loss_fn: nn.Module) -> bool:
    """Whether `compute_terms(..., per_sample=True)` works with this loss."""
    if isinstance(loss_fn, ModelLoss):
        return loss_fn._per_sample is not None
    fn = getattr(type(loss_fn), "per_sample", None)
    return fn is not None and fn is not Loss.per_sample


def compute_terms(model_out, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module,
                  reconstructs: bool, classification: bool, per_sample: bool = False) -> dict[str, torch.Tensor]:
    """All terms of one batch; pure (no state), so it vectorises with torch.func.
    With `per_sample` (see `has_per_sample`): each term per sample, shape (N,)."""
    if isinstance(loss_fn, ModelLoss):
        terms = dict((loss_fn._per_sample if per_sample else loss_fn._fn)(model_out, x, y))
    else:
        target = x if reconstructs else y
        terms = dict(loss_fn.per_sample(model_out, target) if per_sample else loss_fn(model_out, target))
    if classification and not reconstructs:
        hit = (_pred(model_out).argmax(-1) == y).float()
        terms["acc"] = hit if per_sample else hit.mean()
    if per_sample:  # one value per sample: the mean over its elements (the batch mean is unchanged)
        terms = {k: v.flatten(1).mean(1) if v.dim() > 1 else v for k, v in terms.items()}
    return terms
