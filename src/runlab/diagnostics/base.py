"""The Diagnostic base class, the context it runs in and the result it returns.

A diagnostic looks at the model on a fixed, seeded validation batch and returns
scalars, the arrays behind its figure and the figure: best as a `Drawing` (a
function of plain arrays that the background drawing process calls), or a
matplotlib Figure made in the run's process. The runner
(`runlab.diagnostics.runner`) decides when it runs, puts the model in eval mode,
protects the RNG state and writes the results; a diagnostic only computes.

Example:
    >>> @DIAGNOSTICS.register("code_norm", description="Mean norm of encode(x).")
    ... class CodeNorm(Diagnostic):
    ...     requires = ("encode",)
    ...
    ...     def run(self, ctx):
    ...         z = ctx.model.encode(ctx.x)  # (B, latent_dim)
    ...         return DiagnosticResult(scalars={"norm": z.norm(dim=1).mean().item()})
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from runlab.background import Drawing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from runlab.data.base import DatasetMeta

# Requirements that are attributes rather than methods (for the error message).
ATTRIBUTES = ("latent_dim",)
MAX_PANELS = 8  # signal panels per figure: more are slow to draw and hard to read


@dataclass
class DiagnosticContext:
    """What a diagnostic sees. `model` is in eval mode and on `device`; `x` is the
    fixed validation batch (B, *input_shape) on `device`, the same at every call.
    `generator` is freshly seeded for every call, so random draws (prior samples)
    are the same at every step and the global RNG is never touched."""

    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor | None
    meta: DatasetMeta
    step: int
    epoch: int
    device: torch.device
    grads: dict[str, torch.Tensor] | None = None  # last optimiser step's grads by param name
    seed: int = 0
    generator: torch.Generator | None = None


@dataclass
class DiagnosticResult:
    """Scalars (logged as `diag/<name>/<key>`), a figure (saved as png; a `Drawing` or a
    matplotlib Figure) and arrays (npz)."""

    scalars: dict[str, float] = field(default_factory=dict)
    figure: Drawing | Figure | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class Diagnostic:
    """Base class: set `requires` / `tasks`, take your own parameters in `__init__`
    (pass the schedule parameters through `**schedule`), implement `run`.

    `requires` names model methods or attributes (`encode`, `decode`, `features`,
    `sample`, `latent_dim`); `"a|b"` means either one. `tasks` restricts the
    dataset task (`("classification",)`), None allows any. `n` is how many samples
    of the fixed batch `ctx.x` holds for you (set it from an `n` parameter); set
    `needs_grads` to get the last step's gradients in `ctx.grads`. `run` is called under
    torch.no_grad(): differentiate with torch.func transforms (they ignore the outer
    no_grad and never touch `.grad`) or inside torch.enable_grad().
    """

    requires: tuple[str, ...] = ()
    tasks: tuple[str, ...] | None = None
    n: int = 256  # fixed-batch samples this diagnostic looks at
    needs_grads: bool = False  # True: the runner keeps the last step's gradients for ctx.grads

    def __init__(
        self,
        *,
        every: int | None = 1,
        every_steps: int | None = None,
        strict: bool = False,
        at_end: bool = True,
    ):
        for key, value in (("every", every), ("every_steps", every_steps)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{key} must be a positive integer or null, got {value!r}")
        self.every = every
        self.every_steps = every_steps
        self.strict = strict
        self.at_end = at_end

    @classmethod
    def param_names(cls) -> list[str]:
        """Every parameter a config may set: the class's own and the inherited schedule ones."""
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            params = inspect.signature(klass.__init__).parameters.values()
            names += [
                p.name
                for p in params
                if p.name != "self"
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and p.name not in names
            ]
            if not any(p.kind == p.VAR_KEYWORD for p in params) or klass is Diagnostic:
                break
        return names

    def requirements(self) -> tuple[str, ...]:
        """What the model must have; override when it depends on the parameters."""
        return self.requires

    def check(self, model: torch.nn.Module, meta: DatasetMeta) -> list[str]:
        """Problems that would stop this diagnostic on this model and data (empty if none)."""
        label = model_label(model)
        problems = []
        if self.tasks is not None and meta.task not in self.tasks:
            problems.append(
                f"needs a {' or '.join(self.tasks)} dataset, but '{meta.name}' is {meta.task}"
            )
        for req in self.requirements():
            options = req.split("|")
            if not any(hasattr(model, o) for o in options):
                kind = "attribute" if all(o in ATTRIBUTES for o in options) else "method"
                names = " or ".join(f"'{o}'" for o in options)
                problems.append(f"needs model {kind} {names}, which model '{label}' lacks")
        return problems

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        raise NotImplementedError


def model_label(model: torch.nn.Module) -> str:
    """The registered name of the model's class (its class name when unregistered)."""
    from runlab.registry import MODELS

    try:
        for entry in MODELS:
            if entry.obj is type(model):
                return entry.name
    except ImportError:  # the built-in models could not be imported; names still help
        pass
    return type(model).__name__


def is_image(shape: tuple[int, ...]) -> bool:
    """(C, H, W) inputs are drawn as images; everything else as 1-D signals."""
    return len(shape) == 3


def drawing(name: str, **kwargs: Any) -> Drawing:
    """A `Drawing` of the built-in figure `runlab.diagnostics.render.<name>`."""
    return Drawing(f"runlab.diagnostics.render:{name}", kwargs)


def numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float32 (or its own integer type) numpy array on the CPU."""
    t = t.detach()
    return (t.float() if t.is_floating_point() else t).cpu().numpy()


def model_output(model: torch.nn.Module, x: torch.Tensor, key: str) -> torch.Tensor:
    """model(x) as a tensor; for models returning a dict (a VAE), its entry `key`."""
    out = model(x)
    if isinstance(out, dict):
        if key not in out:
            raise TypeError(f"model returned a dict without '{key}' (keys: {sorted(out)})")
        return out[key]
    return out


def code_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's representation of x: encode(x) if it has one, else features(x). (B, D)"""
    z = model.encode(x) if hasattr(model, "encode") else model.features(x)
    return z.flatten(1)
