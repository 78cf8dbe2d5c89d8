"""Config-driven diagnostics: build them from `diagnostics:`, run them on schedule.

    diagnostics:
      - {name: latent_space, every: 5}
      - {name: reconstructions, every: 5, n: 16}
      - {name: jacobian, every_steps: 500, strict: true}

Every diagnostic sees the same seeded validation batch, runs with the model in eval
mode and the global RNG state saved and restored, so a run with diagnostics trains
exactly like one without. Results land in `diagnostics/<name>/step-<N>.png|.npz`,
scalars in metrics.csv as `diag/<name>/<key>`, figures in the writers. Figures are
drawn in the background drawing process (a diagnostic returns a `Drawing`); only
writers that take figures (TensorBoard, wandb) make this process draw them too.
"""

from __future__ import annotations

import inspect
import random
import sys
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from runlab.data.base import num_samples, take
from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult, Drawing
from runlab.errors import ConfigError, did_you_mean
from runlab.registry import DIAGNOSTICS
from runlab.train.events import Callback, TrainState

if TYPE_CHECKING:
    from runlab.data.base import DatasetMeta


class DiagnosticError(RuntimeError):
    """A diagnostic with `strict: true` failed; names the diagnostic and the step."""


class Slot(NamedTuple):
    """One configured diagnostic: its registry name, output key, config location, instance."""

    name: str
    key: str  # folder and metric name: the name, suffixed `-2`, `-3` for repeats
    where: str  # e.g. "diagnostics[1]"
    diagnostic: Diagnostic


def _parse(specs: Any) -> tuple[list[Slot], list[str]]:
    """Build every spec; collect every problem instead of stopping at the first."""
    if specs is None:
        return [], []
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        return [], [f"diagnostics must be a list of {{name: ..., ...}} entries, got {specs!r}"]
    slots, problems, seen = [], [], Counter()
    for i, spec in enumerate(specs):
        where = f"diagnostics[{i}]"
        spec = {"name": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, Mapping) or "name" not in spec:
            problems.append(f"{where} must be a mapping with a 'name', got {spec!r}")
            continue
        name = str(spec["name"]).lower()
        if name not in DIAGNOSTICS:
            problems.append(DIAGNOSTICS.unknown_message(spec["name"], key=f"{where}.name"))
            continue
        cls = DIAGNOSTICS.get(name).obj
        if not (inspect.isclass(cls) and issubclass(cls, Diagnostic)):
            problems.append(f"diagnostic '{name}' at {where} is not a Diagnostic subclass")
            continue
        params = {k: v for k, v in spec.items() if k != "name"}
        allowed = cls.param_names()
        unknown = [k for k in params if k not in allowed]
        for k in unknown:
            problems.append(
                f"{where}.{k}: unknown parameter of diagnostic {name} (value {params[k]!r})."
                f"{did_you_mean(k, allowed)} "
                f"Allowed: {', '.join(allowed)}"
            )
        if unknown:
            continue
        try:
            diagnostic = cls(**params)
        except (TypeError, ValueError) as e:
            problems.append(f"{where}: bad parameters for diagnostic {name}: {e}")
            continue
        seen[name] += 1
        key = name if seen[name] == 1 else f"{name}-{seen[name]}"
        slots.append(Slot(name, key, where, diagnostic))
    return slots, problems


def build_diagnostics(specs: list[dict[str, Any]] | None) -> list[Slot]:
    """The configured diagnostics, or a ConfigError listing every problem in `specs`."""
    slots, problems = _parse(specs)
    if problems:
        raise ConfigError(problems)
    return slots


def validate_diagnostics(
    specs: list[dict[str, Any]] | None,
    model: torch.nn.Module | None = None,
    meta: DatasetMeta | None = None,
) -> list[str]:
    """Every problem with `specs` (names, parameters) and, given the model and the
    dataset's meta, every diagnostic the model cannot support. For config checking."""
    slots, problems = _parse(specs)
    if model is not None and meta is not None:
        for slot in slots:
            for p in slot.diagnostic.check(model, meta):
                problems.append(f"diagnostic '{slot.name}' at {slot.where} {p}")
    return problems


def run_diagnostic(diagnostic: Diagnostic, ctx: DiagnosticContext) -> DiagnosticResult:
    """Run one diagnostic with the model in eval mode and every RNG state protected.

    Each module's train/eval flag and the torch (CPU and CUDA), numpy and Python RNG
    states are exactly as before afterwards, also when the diagnostic raises.
    """
    modes = [(m, m.training) for m in ctx.model.modules()]
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            ctx.model.eval()
            return diagnostic.run(ctx)
    finally:
        for module, training in modes:
            module.training = training
        np.random.set_state(np_state)
        random.setstate(py_state)


class FigureSink:
    """Sends figures to the background drawing process (`runlab.background`) and keeps
    the futures, so the run waits for the PNGs once, at its end, not after each one."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Any]] = []

    def submit(self, figure: Drawing | Any, path: Path) -> None:
        from runlab import background

        if isinstance(figure, Drawing):
            future = background.submit_drawing(figure, path)
        else:
            future = background.save_figure(figure, path)
        if future is not None:
            self._pending.append((path, future))

    def close(self) -> None:
        """Wait for every pending PNG; a failed one is reported, never raised."""
        for path, future in self._pending:
            try:
                future.result()
            except Exception as e:  # noqa: BLE001
                print(f"runlab: warning: diagnostic figure {path} could not be written: "
                      f"{type(e).__name__}: {e}", file=sys.stderr)
        self._pending.clear()


def save_result(result: DiagnosticResult, folder: Path, step: int,
                sink: FigureSink | None = None) -> list[Path]:
    """Write `step-<step>.png` (if there is a figure; drawn through `sink` when given)
    and `step-<step>.npz` into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if result.figure is not None:
        written.append(folder / f"step-{step}.png")
        if sink is not None:
            sink.submit(result.figure, written[-1])
        else:
            figure = result.figure.draw() if isinstance(result.figure, Drawing) else result.figure
            figure.savefig(written[-1], dpi=100)
    arrays = {k: np.asarray(v) for k, v in result.scalars.items()}
    arrays.update({k: np.asarray(v) for k, v in result.arrays.items()})
    written.append(folder / f"step-{step}.npz")
    np.savez_compressed(written[-1], **arrays)
    return written


def close_figure(figure: Any) -> None:
    """Release a figure; only pyplot-made ones are registered anywhere and need closing."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if figure is not None and pyplot is not None:
        pyplot.close(figure)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's model inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


class DiagnosticsCallback(Callback):
    """Runs the configured diagnostics on schedule during `Trainer.fit`.

    Example:
        >>> cb = DiagnosticsCallback([{"name": "latent_space", "every": 5}], run_dir, seed=0)
        >>> Trainer(..., callbacks=[cb]).fit()
    """

    def __init__(self, specs: list[dict[str, Any]] | None, run_dir: Path | None, seed: int):
        self.slots = build_diagnostics(specs)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed = seed
        self.x: torch.Tensor | None = None  # the fixed batch (B, *input_shape), on device
        self.y: torch.Tensor | None = None
        self.last_step: dict[str, int] = {}  # key -> step it last ran at (no double runs)
        self.grads: dict[str, torch.Tensor] = {}  # the last optimiser step's gradients
        self._hook: Any = None
        self.sink = FigureSink()

    def on_fit_start(self, state: TrainState) -> None:
        data = state.val_data if state.val_data is not None else state.train_data
        if data is None:
            raise RuntimeError("diagnostics need state.val_data or state.train_data")
        total = num_samples(data)
        n = min(total, max([s.diagnostic.n for s in self.slots] + [1]))
        # a local generator: the same batch for every run with this seed, global RNG untouched
        idx = torch.randperm(total, generator=torch.Generator().manual_seed(self.seed))[:n]
        x, y = take(data, idx)
        self.x = x.to(state.device)
        self.y = y.to(state.device) if y is not None else None
        if state.optimizer is not None and any(s.diagnostic.needs_grads for s in self.slots):
            # The Trainer zeroes grads (set_to_none) right after the step, before the
            # callbacks see them: keep references to them as the step finishes.
            model = unwrap(state.model)
            self._hook = state.optimizer.register_step_post_hook(
                lambda *_: self.grads.update(
                    (n, p.grad) for n, p in model.named_parameters() if p.grad is not None
                )
            )

    def on_train_batch_end(self, state: TrainState) -> None:
        self._run(
            state,
            [
                s
                for s in self.slots
                if s.diagnostic.every_steps and state.step % s.diagnostic.every_steps == 0
            ],
        )

    def on_epoch_end(self, state: TrainState) -> None:
        # state.epoch counts the epochs finished by now: `every: 5` runs after epochs 5, 10, ...
        self._run(
            state,
            [s for s in self.slots if s.diagnostic.every and state.epoch % s.diagnostic.every == 0],
        )

    def on_fit_end(self, state: TrainState) -> None:
        self._run(state, [s for s in self.slots if s.diagnostic.at_end])
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def run_now(self, state: TrainState) -> None:
        """Run every configured diagnostic once at the state's step (`runlab diagnose`)."""
        self._run(state, self.slots)

    def _run(self, state: TrainState, slots: list[Slot]) -> None:
        if not slots or self.x is None or _rank() != 0:
            return
        model = unwrap(state.model)
        # without an optimiser hook (a hand-written loop), whatever .grad still holds
        grads = self.grads or {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        for slot in slots:
            if self.last_step.get(slot.key) == state.step:
                continue
            self.last_step[slot.key] = state.step
            ctx = DiagnosticContext(
                model=model,
                x=self.x[: slot.diagnostic.n],
                y=None if self.y is None else self.y[: slot.diagnostic.n],
                meta=state.meta,
                step=state.step,
                epoch=state.epoch,
                device=state.device,
                grads=grads or None,
                seed=self.seed,
                generator=torch.Generator(device=state.device).manual_seed(self.seed),
            )
            self._run_one(state, slot, ctx)

    def _run_one(self, state: TrainState, slot: Slot, ctx: DiagnosticContext) -> None:
        result = None
        try:
            result = run_diagnostic(slot.diagnostic, ctx)
            for k, v in result.scalars.items():
                state.log(f"diag/{slot.key}/{k}", v)
            figure = result.figure
            wanted = figure is not None and state.writer.wants_figures
            if isinstance(figure, Drawing) and (wanted or not figure.portable):
                result.figure = figure = figure.draw()  # a Figure is needed in this process
            if self.run_dir is not None:
                save_result(result, self.run_dir / "diagnostics" / slot.key, state.step, self.sink)
            if wanted:
                state.writer.write_figure(state.step, f"diag/{slot.key}", figure)
        except Exception as e:
            message = (
                f"diagnostic '{slot.key}' failed at step {state.step}: {type(e).__name__}: {e}"
            )
            if slot.diagnostic.strict:
                raise DiagnosticError(message) from e
            warnings.warn(
                f"{message} (the run continues; set strict: true to stop)",
                RuntimeWarning,
                stacklevel=2,
            )
        finally:
            if result is not None and not isinstance(result.figure, Drawing):
                close_figure(result.figure)

    def close(self) -> None:
        self.sink.close()

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": dict(self.last_step)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step = dict(state.get("last_step", {}))


def _rank() -> int:
    """This process's rank: diagnostics run on rank 0 only."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
