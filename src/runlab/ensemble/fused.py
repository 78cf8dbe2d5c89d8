"""Stacked kernels: K members' forward pass as batched matmuls and grouped convolutions.

`vmap(functional_call)` (stacked.py) runs any model, but its per-op dispatch costs
more than the compute of a small model. For models built from common layers the
members' batches are instead folded into one batch of K*B samples (member k owns
rows k*B .. (k+1)*B - 1) and the model's own forward runs on it, with every layer
that holds parameters replaced by its stacked form:

- `nn.Linear` -> one `baddbmm` over the (K, out, in) stacked weights;
- `nn.Conv1d/2d` -> patches times the stacked kernels (one `baddbmm`);
- `nn.BatchNorm1d/2d` -> per-member batch statistics and running statistics.

Layers without parameters (activations, dropout, pooling, flatten...) act on each
sample alone, so they run unchanged; random ones draw exactly what vmap's
`randomness="different"` draws (the same numbers in the same layout). The loss, a
mean over each member's batch, comes from its per-sample form (`Loss.per_sample`)
averaged per member, or runs under vmap on the (K, B, ...) view when it has none.

`fuse` returns None for a model with any other leaf module (or parameters held
outside leaves); `vectorization_problem` also compares the fused step with the vmap
step on a trial batch and keeps vmap when they differ (e.g. a forward that mixes
samples, like `x - x.mean(0)`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap
from torch.utils._pytree import tree_map

from runlab.losses import compute_terms, has_per_sample

if TYPE_CHECKING:
    from runlab.ensemble.stacked import Stack

# Leaves that act on every sample alone (dim 0 is never touched).
PER_SAMPLE = (
    nn.Identity, nn.Upsample, nn.modules.dropout._DropoutNd, nn.AlphaDropout,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid,
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
)


def as_channels(x: torch.Tensor, k: int) -> torch.Tensor:
    """(K*B, C, *S) member-major -> (B, K*C, *S): the members side by side as channel groups."""
    kb, c, *s = x.shape
    return x.reshape(k, kb // k, c, *s).transpose(0, 1).reshape(kb // k, k * c, *s)


def from_channels(x: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of `as_channels`: (B, K*C, *S) -> (K*B, C, *S)."""
    b, kc, *s = x.shape
    return x.reshape(b, k, kc // k, *s).transpose(0, 1).reshape(k * b, kc // k, *s)


class _Stacked(nn.Module):
    """A layer of the fused model: reads its stacked tensors from the Stack at call time."""

    def __init__(self, stack: Stack, prefix: str, layer: nn.Module):
        super().__init__()
        self.k, self._prefix = stack.k, prefix
        # in lists, so that nn.Module does not register them as submodules
        self._stack, self._layer = [stack], [layer]  # layer: the template's, for its settings

    @property
    def layer(self) -> nn.Module:
        return self._layer[0]

    def tensor(self, name: str) -> torch.Tensor | None:
        key = self._prefix + name
        stack = self._stack[0]
        return stack.params[key] if key in stack.params else stack.buffers.get(key)


class StackedLinear(_Stacked):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.tensor("weight"), self.tensor("bias")  # (K, out, in), (K, out)
        h = x.reshape(self.k, -1, x.shape[-1])
        out = torch.bmm(h, w.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        return out.reshape(*x.shape[:-1], out.shape[-1])


class StackedConv(_Stacked):
    """Convolution as patches (strided views, `Tensor.unfold`) times the stacked kernels
    (one `baddbmm`): on CPU several times faster than a grouped convolution for the
    small channel counts of these models. Grouped convolutions and string padding use
    a convolution with K times the groups instead."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, w, b, k = self.layer, self.tensor("weight"), self.tensor("bias"), self.k  # w: (K, out, in/g, *ks)
        if c.groups != 1 or isinstance(c.padding, str):
            conv = F.conv1d if isinstance(c, nn.Conv1d) else F.conv2d
            bias = None if b is None else b.reshape(-1)
            out = conv(as_channels(x, k), w.reshape(-1, *w.shape[2:]), bias, c.stride, c.padding, c.dilation,
                       c.groups * k)
            return from_channels(out, k)
        dims = x.dim() - 2
        if any(c.padding):
            x = F.pad(x, [p for p in reversed(c.padding) for _ in (0, 1)])
        for i, (size, stride, dil) in enumerate(zip(c.kernel_size, c.stride, c.dilation, strict=True)):
            x = x.unfold(2 + i, dil * (size - 1) + 1, stride)  # (K*B, C, *S', ..., window)
            if dil > 1:
                x = x[..., ::dil]
        kb, ch, *rest = x.shape
        spatial = rest[:dims]
        # (K*B, C, *S', *ks) -> (K, B * prod(S'), C * prod(ks))
        order = [0, *range(2, 2 + dims), 1, *range(2 + dims, 2 + 2 * dims)]
        cols = x.permute(order).reshape(k, -1, w[0, 0].numel())
        kernels = w.reshape(k, w.shape[1], -1).transpose(1, 2)  # (K, C*ks, out)
        out = torch.bmm(cols, kernels) if b is None else torch.baddbmm(b.unsqueeze(1), cols, kernels)
        out = out.reshape(kb, -1, out.shape[-1])  # (K*B, prod(S'), out)
        return out.transpose(1, 2).reshape(kb, -1, *spatial)


class StackedBatchNorm(_Stacked):
    """nn.BatchNorm's forward with per-member statistics (running ones: (K, C) buffers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.layer
        mean, var, count = self.tensor("running_mean"), self.tensor("running_var"), self.tensor("num_batches_tracked")
        factor = 0.0 if bn.momentum is None else bn.momentum
        if self.training and bn.track_running_stats and count is not None:
            count.add_(1)
            factor = 1.0 / float(count[0]) if bn.momentum is None else bn.momentum
        use_running = not self.training or bn.track_running_stats
        w, b = self.tensor("weight"), self.tensor("bias")
        out = F.batch_norm(
            as_channels(x, self.k),
            mean.view(-1) if use_running and mean is not None else None,
            var.view(-1) if use_running and var is not None else None,
            None if w is None else w.reshape(-1), None if b is None else b.reshape(-1),
            self.training or (mean is None and var is None), factor, bn.eps)
        return from_channels(out, self.k)


def _stacked_form(module: nn.Module) -> type[_Stacked] | None:
    if isinstance(module, nn.Linear):
        return StackedLinear
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.padding_mode == "zeros":
        return StackedConv
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return StackedBatchNorm
    return None


def _acts_per_sample(module: nn.Module) -> bool:
    """Whether a leaf without tensors leaves dim 0 (the samples) alone."""
    if isinstance(module, nn.Flatten):
        return module.start_dim != 0
    if isinstance(module, nn.Unflatten):
        return module.dim != 0
    return isinstance(module, PER_SAMPLE)


def _holds_tensors(module: nn.Module) -> bool:
    return any(t is not None for t in (*module._parameters.values(), *module._buffers.values()))


class FusedStep:
    """The Stack's train/eval terms computed with stacked kernels (see module doc)."""

    def __init__(self, stack: Stack, model: nn.Module):
        self.k, self.model = stack.k, model
        step = stack.template
        self.per_sample = has_per_sample(step.loss)

        def member_terms(out, x, y, per_sample=False):
            return compute_terms(out, x, y, step.loss, step.reconstructs, step.classification, per_sample)

        self._terms = member_terms
        self._train = vmap(member_terms, in_dims=(0, 0, 0), randomness="different")

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (K, B, ...): each member's own batch -> {term: (K,)}."""
        xf, yf = x.reshape(-1, *x.shape[2:]), y.reshape(-1, *y.shape[2:])
        out = self.model(xf)  # (K*B, ...), member-major
        if self.per_sample:  # each member's mean of the per-sample terms
            return {n: v.view(self.k, -1).mean(1) for n, v in self._terms(out, xf, yf, True).items()}
        return self._train(tree_map(lambda t: t.reshape(self.k, -1, *t.shape[1:]), out), x, y)

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One shared batch x (B, ...) under every member -> {term: (K,)}."""
        return self.terms(x.unsqueeze(0).expand(self.k, *x.shape), y.unsqueeze(0).expand(self.k, *y.shape))

    def train(self, mode: bool) -> None:
        self.model.train(mode)


def fuse(stack: Stack) -> tuple[FusedStep | None, str | None]:
    """The stacked-kernel step of `stack`'s model, or (None, why not)."""
    step = stack.template
    if any(_holds_tensors(m) for m in step.loss.modules()):
        return None, "the loss has parameters or buffers"
    model = step.model
    plan: dict[str, type[_Stacked]] = {}
    for name, module in model.named_modules():
        what = f"{name or 'model'} ({type(module).__name__})"
        if list(module.children()):
            if _holds_tensors(module):
                return None, f"module {what} holds tensors itself"
        elif (form := _stacked_form(module)) is not None:
            plan[name] = form
        elif _holds_tensors(module) or not _acts_per_sample(module):
            return None, f"layer {what} has no stacked form"
    fused = copy.deepcopy(model)  # runs the model's own forward code; its layers are replaced
    for name, form in plan.items():
        layer = form(stack, f"model.{name}." if name else "model.", model.get_submodule(name))
        if not name:  # the model is a single layer
            fused = layer
            continue
        parent, _, leaf = name.rpartition(".")
        setattr(fused.get_submodule(parent), leaf, layer)
    return FusedStep(stack, fused), None
