"""A training step the user owns: `training_step(batch, ctx)` / `validation_step(batch, ctx)`.

A model may define them, or a `step:` component named in the config (registered with
`@STEPS.register`) does. Either returns a dict of named scalar terms; they are logged
as `train/<term>` / `val/<term>` like the default step's. Two ways to train:

- automatic: return `loss` (and call neither `ctx.backward` nor `ctx.step`): the
  framework backpropagates it and steps every optimizer, with `trainer.accumulate`,
  `grad_clip`, the loss scaler and step-interval schedulers, as for the default step;
- manual: call `ctx.backward(loss)` and `ctx.step("name")` yourself (a GAN steps `disc`
  then `gen`); the returned terms are only logged. Gradients left over when the step
  returns are dropped, so none leak into the next step.

Example (a model's own step, automatic):
    >>> def training_step(self, batch, ctx):
    ...     x, y = batch
    ...     with ctx.autocast():
    ...         loss = F.cross_entropy(self(x), y)
    ...     return {"loss": loss}
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch

from runlab.registry import STEPS

if TYPE_CHECKING:
    from runlab.train.trainer import Trainer


def user_step(model: torch.nn.Module, step: Any) -> Any:
    """The object whose `training_step` trains the run: the configured `step:` component,
    else the model if it defines one, else None (the default step)."""
    if step is not None:
        return step
    return model if callable(getattr(model, "training_step", None)) else None


def build_step(cfg: dict[str, Any] | None) -> Any:
    """The `step:` component of a config (None when the config names none)."""
    if not cfg:
        return None
    from runlab.errors import ConfigError

    entry = STEPS.get(cfg["name"])
    try:
        return entry.obj(**{k: v for k, v in cfg.items() if k != "name"})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"step: building '{entry.name}' failed: {e}") from None


class StepContext:
    """What a user's step may use. One per Trainer, reused every step.

    Attributes: `model`, `loss` (the configured loss module), `optimizers` (by name),
    `scaler` (the GradScaler; disabled unless fp16 on CUDA), `state` (the TrainState).
    """

    def __init__(self, trainer: Trainer):
        self._trainer = trainer
        self.model, self.loss, self.scaler = trainer.model, trainer.loss, trainer.scaler
        self.optimizers = {name: slot.optimizer for name, slot in trainer.slots.items()}
        self.state = trainer.state
        self.manual = False  # backward or step called during the current step
        self.stepped = False  # an optimizer stepped during the current step
        self.logged: dict[str, Any] = {}

    @property
    def hparams(self) -> dict[str, float]:
        """The scheduled hyperparameters' current values (`model.beta`, `loss.beta`, ...)."""
        return self._trainer.hparams

    def autocast(self) -> contextlib.AbstractContextManager:
        """The run's precision context (`trainer.precision`); a no-op at 32 bits."""
        return self._trainer.autocast()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Backpropagate `loss` through the loss scaler (`on_before_backward` first)."""
        self.manual = True
        self._trainer.backward(loss, 1, **kwargs)

    def step(self, name: str | None = None) -> None:
        """Step optimizer `name` (every optimizer when None): gradient clipping, the
        scaler's step, zero_grad and its scheduler when that steps per step."""
        slots = self._trainer.slots
        if name is not None and name not in slots:
            raise KeyError(f"ctx.step: no optimizer {name!r}; the run has: {', '.join(slots)}")
        self.manual = self.stepped = True
        for slot in ([slots[name]] if name is not None else slots.values()):
            self._trainer.step_optimizer(slot)

    def zero_grad(self, name: str | None = None) -> None:
        """Drop the gradients of optimizer `name`'s parameters (every optimizer's when None)."""
        for opt in ([self.optimizers[name]] if name is not None else self.optimizers.values()):
            opt.zero_grad(set_to_none=True)

    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Log a scalar of this step as `train/<name>` (averaged like the returned terms)."""
        self.logged[name] = value

    def begin(self) -> None:
        self.manual = self.stepped = False
        if self.logged:
            self.logged = {}

    def terms(self, returned: Any, where: str) -> dict[str, torch.Tensor]:
        """The step's terms: what it returned plus what it logged, as scalar tensors."""
        if not isinstance(returned, dict):
            raise TypeError(f"{where} must return a dict of named scalar terms, got "
                            f"{type(returned).__name__}")
        out = {**self.logged, **returned} if self.logged else returned
        if all(torch.is_tensor(v) for v in out.values()):
            return out
        device = self._trainer.device
        return {k: v if torch.is_tensor(v) else torch.tensor(float(v), device=device)
                for k, v in out.items()}
