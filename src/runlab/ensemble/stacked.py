"""K models of one architecture as one set of stacked tensors, run with torch.func.

Every parameter and buffer gets a leading member dimension K (`stack_module_state`);
one `vmap(functional_call)` computes all members' loss terms at once, or, for models
built from common layers, stacked kernels on the same tensors (fused.py: faster, and
checked against vmap before training). The members' own modules keep working
(diagnostics, checkpoints): their tensors are re-pointed at their slice of the
stacked storage, so they always show that member's current state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from runlab.losses import compute_terms
from runlab.runs import checkpoint as ckpt

STACKED_KERNELS = True  # False: always vmap (the tests run both paths)


class StepModule(nn.Module):
    """Model + loss as one module, so `functional_call` swaps the weights for both
    (a model's own `loss` method may read its parameters)."""

    def __init__(self, model: nn.Module, loss: nn.Module, classification: bool):
        super().__init__()
        self.model, self.loss = model, loss
        self.reconstructs = bool(getattr(model, "reconstructs", False))
        self.classification = classification

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return compute_terms(self.model(x), x, y, self.loss, self.reconstructs, self.classification)


def _set_tensor(module: nn.Module, name: str, value: torch.Tensor, is_param: bool) -> None:
    *path, leaf = name.split(".")
    owner = module.get_submodule(".".join(path)) if path else module
    if is_param:
        getattr(owner, leaf).data = value
    else:
        owner._buffers[leaf] = value


class Stack:
    """Stacked parameters/buffers of `steps` (one StepModule per member, same architecture).

    Example:
        >>> stack = Stack([StepModule(m, loss, True) for m in models])
        >>> terms = stack.terms(x, y)        # x: (K, B, ...) -> {"loss": (K,), ...}
        >>> terms["loss"].sum().backward()  # each member's grads land in its slice
    """

    def __init__(self, steps: list[StepModule], fuse: bool | None = None):
        from runlab.ensemble.fused import fuse as build_fused

        self.k = len(steps)
        self.template = steps[0]  # its forward is the one vmapped (with swapped tensors)
        self.params, self.buffers = stack_module_state(steps)  # (K, ...) leaves
        for i, step in enumerate(steps):
            for name, p in self.params.items():
                _set_tensor(step, name, p.detach()[i], is_param=True)
            for name, b in self.buffers.items():
                _set_tensor(step, name, b[i], is_param=False)
        # what the optimiser steps and the clipping sees: the models' own parameters
        self.trained = [p for n, p in self.params.items() if n.startswith("model.") and p.requires_grad]

        def member(params, buffers, x, y):
            return functional_call(self.template, (params, buffers), (x, y))

        self._train = vmap(member, in_dims=(0, 0, 0, 0), randomness="different")
        self._eval = vmap(member, in_dims=(0, 0, None, None), randomness="different")
        # the stacked-kernel step, or None and why (vectorization_problem may still drop it)
        fuse = STACKED_KERNELS if fuse is None else fuse
        self.fused, self.fused_off = build_fused(self) if fuse else (None, "switched off")

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Train-time terms; x (K, B, ...) holds each member's own batch."""
        if self.fused is not None:
            return self.fused.terms(x, y)
        return self._train(self.params, self.buffers, x, y)

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Terms of one shared batch x (B, ...) under every member; values (K,)."""
        if self.fused is not None:
            return self.fused.eval_terms(x, y)
        return self._eval(self.params, self.buffers, x, y)

    @property
    def method(self) -> str:
        """How the members run, in words (printed when an ensemble starts)."""
        return "stacked kernels" if self.fused is not None else f"torch.func.vmap ({self.fused_off})"

    def train(self, mode: bool = True) -> None:
        self.template.train(mode)
        if self.fused is not None:
            self.fused.train(mode)

    def eval(self) -> None:
        self.train(False)

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """`nn.utils.clip_grad_norm_` for each member over its own parameters; norms (K,)."""
        grads = [p.grad for p in self.trained if p.grad is not None]
        if not grads:
            return torch.zeros(self.k)
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(self.k, -1), dim=1) for g in grads])
        total = torch.linalg.vector_norm(norms, dim=0)  # (K,)
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))).to(g.dtype))
        return total


def vectorization_problem(stack: Stack, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2) -> str | None:
    """Why the model/loss cannot run under vmap (None if it can), found by a trial
    train step and eval batch of `batch_size` samples per member (from x, y: the
    training data). When the stack has a fused step, the same trial runs through it,
    and it is dropped (`fused_off` says why) unless it matches vmap: terms, gradients
    and updated buffers.

    The trials run on copies of the stacked tensors and put the global RNG back,
    so training afterwards is exactly what it would have been without them."""
    rng = ckpt.rng_state()
    saved, fused = (stack.params, stack.buffers), stack.fused
    idx = torch.arange(stack.k * batch_size, device=x.device).remainder(len(x)).view(stack.k, batch_size)
    batch = (x[idx], y[idx], x[:batch_size], y[:batch_size])
    try:
        stack.fused = None
        try:
            reference = _trial(stack, saved, *batch)
        except Exception as e:  # noqa: BLE001 - any failure means "not vectorisable", reported
            return _reason(e)
        if fused is not None:
            stack.fused = fused
            try:
                differs = _differs(reference, _trial(stack, saved, *batch))
            except Exception as e:  # noqa: BLE001 - the vmap step works: fall back to it
                differs = _reason(e)
            if differs:
                stack.fused, stack.fused_off = None, f"stacked kernels differ from vmap: {differs}"
    finally:
        stack.params, stack.buffers = saved
        stack.train(True)
        ckpt.set_rng_state(rng)
    return None


def _reason(e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}"


def _trial(stack: Stack, saved: tuple[dict, dict], xs: torch.Tensor, ys: torch.Tensor,
           x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """One train step's terms and gradients, then one eval batch's terms, on fresh copies."""
    torch.manual_seed(0)  # both trials draw the same dropout masks / noise
    stack.params = {n: p.detach().clone().requires_grad_(p.requires_grad) for n, p in saved[0].items()}
    stack.buffers = {n: b.clone() for n, b in saved[1].items()}
    stack.train(True)
    terms = stack.terms(xs, ys)
    terms["loss"].sum().backward()
    stack.train(False)
    with torch.no_grad():
        evals = stack.eval_terms(x, y)
    out = {f"train {k}": v.detach() for k, v in terms.items()}
    out.update({f"eval {k}": v for k, v in evals.items()})
    out.update({f"grad {n}": p.grad for n, p in stack.params.items() if p.grad is not None})
    out.update({f"buffer {n}": b for n, b in stack.buffers.items()})
    return out


def _differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> str | None:
    if a.keys() != b.keys():
        return f"different results: {sorted(a.keys() ^ b.keys())}"
    for key, va in a.items():
        vb = b[key].to(va.dtype)
        scale = float(va.abs().max()) if va.numel() and va.is_floating_point() else 1.0
        if va.shape != vb.shape or not torch.allclose(va, vb, rtol=1e-4, atol=1e-6 * max(scale, 1.0)):
            return f"{key} differs"
    return None


def member_bytes(step: StepModule, x: torch.Tensor, y: torch.Tensor) -> int:
    """Rough memory one member needs: parameters x 4 (weights, grads, two optimiser
    moments) plus twice the activations of one batch (kept for backward, their grads)."""
    sizes: list[int] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    leaves = [m for m in step.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    rng, was_training = ckpt.rng_state(), step.training
    step.eval()  # eval mode: BatchNorm must not update the (shared) running statistics
    try:
        with torch.no_grad():
            step(x, y)
    finally:
        for h in handles:
            h.remove()
        step.train(was_training)
        ckpt.set_rng_state(rng)
    params = sum(p.numel() * p.element_size() for p in step.parameters())
    return 4 * params + 2 * sum(sizes)
