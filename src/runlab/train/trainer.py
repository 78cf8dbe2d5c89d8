"""The Trainer: `fit()` reads top to bottom as the training loop it runs.

Per step it does only what a hand-written loop does (forward, backward, optimiser
step) plus two device-side additions (metric sums, a non-finite check). Values
reach the host only every `logging.log_every_steps` steps and at epoch ends.
A user's `training_step` (runlab.train.step) replaces forward-backward-step; the
rest of the loop (data, logging, validation, checkpoints) stays the same.

Strategies change parts of one run of this loop, never the loop itself: a data-parallel
rank (runlab.distributed) reduces its metrics over processes and shards the batches; a
seed ensemble (runlab.ensemble) brings a stacked batch source and step, and keeps the
per-run records (metrics, logs, checkpoints, status) of K runs. The per-run records go
through the `record_*` / `save_epoch` / `complete` hooks below.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runlab.config import config_hash
from runlab.data.base import Splits
from runlab.data.loader import make_loader
from runlab.data.transforms import pipelines
from runlab.hparams import ScheduledParam, apply_schedules
from runlab.logging.base import Writer
from runlab.losses import compute_terms
from runlab.metric_rules import EPOCH_SUFFIX, MetricRules
from runlab.optim import OptimizerSlot
from runlab.runs import checkpoint as ckpt
from runlab.train.build import PRECISION_DTYPES
from runlab.train.events import Callback, TrainState, emit, log_scalars
from runlab.train.metrics import Accumulator, MonitorCheck, Summary, console_metrics
from runlab.train.step import StepContext, user_step


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Interrupted(Exception):
    """Training stopped on a signal; a checkpoint was saved."""

    signum: int


class Trainer:
    """Trains one model as its config says. Build it with `runlab.train.api` (or by hand:
    every collaborator is passed in explicitly, nothing is global). `optimizers`: the
    run's optimizers by name (`runlab.optim.build_optimizers`); `step`: a `step:`
    component (else the model's own `training_step`, else the default step).
    `shard=(rank, world)` makes the loaders yield one process's part of every batch
    (`runlab.distributed`); `batches` replaces the training loader (any object with
    `__len__` and `epoch(epoch, start)`, as `runlab.data.loader`'s)."""

    accumulator_type: type[Accumulator] = Accumulator  # metric sums; distributed runs reduce them
    sample_dim = 0  # the samples' dimension of a training batch (1 for a seed ensemble's (K, B, ...))

    def __init__(self, cfg: dict[str, Any], splits: Splits, model: nn.Module, loss: nn.Module,
                 optimizers: dict[str, OptimizerSlot], device: torch.device, writer: Writer, *,
                 scheduled: list[ScheduledParam] | None = None, step: Any = None,
                 callbacks: list[Callback] | None = None, run_dir: Path | None = None,
                 progress: Any = None, csv: Any = None, on_epoch: Any = None,
                 shard: tuple[int, int] = (0, 1), batches: Any = None):
        self.cfg, self.splits, self.device = cfg, splits, device
        self.model, self.loss, self.slots = model, loss, optimizers
        self.optimizer = next(iter(optimizers.values())).optimizer  # its lr is logged as `lr`
        self.writer, self.scheduled = writer, scheduled or []
        self.callbacks, self.run_dir = callbacks or [], run_dir
        self.progress, self.csv, self.on_epoch = progress, csv, on_epoch
        t, d = cfg["trainer"], cfg["data"]
        self.max_epochs, self.max_steps, self.accumulate = t["max_epochs"], t["max_steps"], t["accumulate"]
        self.grad_clip, self.val_every = t["grad_clip"], t["val_every"]
        self.log_every = max(1, int(cfg["logging"]["log_every_steps"]))
        self.amp_dtype = PRECISION_DTYPES[str(t["precision"])]
        use_scaler = self.amp_dtype is torch.float16 and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.forward = torch.compile(model) if t["compile"] else model
        self.reconstructs = bool(getattr(model, "reconstructs", False))
        self.classification = splits.meta.task == "classification"
        seed = cfg["seed"]
        common = dict(kind=d["loader"], seed=seed, device=device, num_workers=d["num_workers"],
                      shard=shard, memory_limit=d["memory_limit_mb"] << 20,
                      prefetch_factor=d["prefetch_factor"])
        train_tf, eval_tf = pipelines(d["transforms"], seed)
        eval_bs = d["eval_batch_size"] or max(d["batch_size"], 512)
        self.train_loader = batches if batches is not None else make_loader(
            splits.train, d["batch_size"], shuffle=d["shuffle"], drop_last=d["drop_last"], transform=train_tf, **common)
        # evaluation loaders: val and test here; `runlab.saved` adds train on demand
        self.make_eval_loader = functools.partial(make_loader, batch_size=eval_bs, shuffle=False,
                                                  transform=eval_tf, **common)
        self.eval_loaders = {name: self.make_eval_loader(data)
                             for name, data in (("val", splits.val), ("test", splits.test))
                             if data is not None}
        self.state = TrainState(cfg, run_dir, splits.meta, model, self.optimizer, device, writer,
                                self.max_epochs)
        self.state.train_data, self.state.val_data = splits.train, splits.val
        self.state.optimizers = {name: slot.optimizer for name, slot in optimizers.items()}
        self.state.write_checkpoint = self.write_checkpoint if run_dir is not None else None
        # The step: the default forward-loss-backward-step, or the user's own.
        self.user_step = user_step(model, step)
        self.step_ctx = StepContext(self) if self.user_step is not None else None
        if self.step_ctx is not None:
            self.train_step, self.end_step = self.custom_train_step, self.custom_end_step
        else:
            self.train_step, self.end_step = self.forward_backward, self.optimizer_step
        own_val = callable(getattr(self.user_step, "validation_step", None))
        self.eval_step = self.custom_eval_step if own_val else self.default_eval_step
        self.window, self.epoch_acc = self.accumulator_type(), self.accumulator_type()
        self.rules = MetricRules.from_config(cfg)  # goal/best of every metric
        self.summary = Summary(self.rules)
        self.monitor = t["monitor"] or (t["early_stopping"] or {}).get("monitor") or (
            "val/loss" if splits.val is not None else f"train/loss{EPOCH_SUFFIX}")
        self.monitor_check = MonitorCheck(cfg, {
            "trainer.monitor": self.monitor,
            **{"scheduler.monitor" if n == ckpt.MAIN else f"optimizers.{n}.scheduler.monitor":
               slot.monitor for n, slot in optimizers.items() if slot.monitor},
            **{f"{type(cb).__name__}.monitor": cb.monitor for cb in self.callbacks
               if isinstance(getattr(cb, "monitor", None), str)}})
        self.best_value: float | None = None
        self.stop_signal: int | None = None
        self.hparams: dict[str, float] = {}
        self.last_log_step = 0
        self._last_ckpt = time.monotonic()
        self._ckpt_due = False  # a step checkpoint fell on an epoch's last step: end_epoch saves it

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, dict[str, float]]:
        """Train, validate every `val_every` epochs, test at the end. Returns the summary."""
        try:
            return self._fit()
        finally:  # DataLoader workers end with the run (they persist across its epochs)
            for loader in (self.train_loader, *self.eval_loaders.values()):
                close = getattr(loader, "close", None)
                if close is not None:
                    close()

    def _fit(self) -> dict[str, dict[str, float]]:
        s = self.state
        self._emit("on_fit_start")
        while s.epoch < self.max_epochs and self.training():
            self._emit("on_epoch_start")
            self.train_epoch()
            if self.stop_signal is not None:
                self.save_checkpoint()
                raise Interrupted(self.stop_signal)
            val = self.evaluate("val") if (s.epoch + 1) % self.val_every == 0 else {}
            self.update_metrics(val)
            self._emit("on_validation_end")
            self.end_epoch(val)
            if self.stop_signal is not None:
                raise Interrupted(self.stop_signal)
        self.complete()
        return self.summary.data

    def train_epoch(self) -> None:
        s, loader = self.state, self.train_loader
        n_batches = len(loader)
        if self.progress is not None:
            self.progress.start_epoch(s.epoch, self.max_epochs, n_batches)
        self.model.train()
        for x, y in loader.epoch(s.epoch, start=s.batch_in_epoch):
            if self.scheduled:
                self.hparams = apply_schedules(self.scheduled, s.epoch + s.batch_in_epoch / n_batches, s.step)
            terms = self.train_step(x, y)
            s.batch_in_epoch += 1
            n = x.shape[self.sample_dim]
            vals = self.window.add(terms, n)
            self.epoch_acc.add_values(vals, n, tuple(terms))
            if s.batch_in_epoch % self.accumulate and s.batch_in_epoch < n_batches:
                continue  # gradient accumulation: step after `accumulate` batches
            self.end_step()
            if self.progress is not None:
                self.progress.advance(self.accumulate, n)
            if s.step % self.log_every == 0:
                self.log_window()
            self._emit("on_train_batch_end")
            self.maybe_checkpoint_steps()
            if self.stop_signal is not None or (self.max_steps and s.step >= self.max_steps):
                s.should_stop = s.should_stop or self.stop_signal is None
                return
        s.epoch, s.batch_in_epoch = s.epoch + 1, 0

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The default step's first half: forward, the loss's terms, backward."""
        with self.autocast():
            out = self.forward(x)
            terms = compute_terms(out, x, y, self.loss, self.reconstructs, self.classification)
        self.state.terms = terms
        self.backward(terms["loss"], self.accumulate)
        return terms

    def backward(self, loss: torch.Tensor, accumulate: int, **kwargs: Any) -> None:
        self._emit("on_before_backward")
        self.scaler.scale(loss / accumulate if accumulate > 1 else loss).backward(**kwargs)

    def optimizer_step(self) -> None:
        """The default step's second half: step every optimizer, count the step."""
        for slot in self.slots.values():
            self.step_optimizer(slot)
        self.scaler.update()
        self.state.step += 1

    def step_optimizer(self, slot: OptimizerSlot) -> None:
        """Clip, step (through the scaler), zero the gradients, step a per-step scheduler."""
        self.state.optimizer_name = slot.name
        self._emit("on_before_optimizer_step")
        if self.grad_clip:
            self.scaler.unscale_(slot.optimizer)
            self.clip_gradients(slot)
        self.scaler.step(slot.optimizer)
        self._emit("on_after_optimizer_step")
        slot.optimizer.zero_grad(set_to_none=True)
        if slot.scheduler is not None and slot.interval == "step":
            slot.scheduler.step()

    def clip_gradients(self, slot: OptimizerSlot) -> None:
        nn.utils.clip_grad_norm_(slot.params, self.grad_clip)

    def custom_train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The user's `training_step`; a returned `loss` is backpropagated unless the step
        called `ctx.backward` / `ctx.step` itself (runlab.train.step)."""
        ctx = self.step_ctx
        ctx.begin()
        terms = ctx.terms(self.user_step.training_step((x, y), ctx), "training_step")
        loss = terms.get("loss")
        if not ctx.manual and loss is not None and loss.requires_grad:
            self.state.terms = terms
            self.backward(loss, self.accumulate)
        return terms

    def custom_end_step(self) -> None:
        if not self.step_ctx.manual:
            self.optimizer_step()
            return
        if self.step_ctx.stepped:
            self.scaler.update()
        for slot in self.slots.values():  # no gradient of this step leaks into the next
            slot.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        """Sample-weighted means of every term on a split, as `<split>/<term>`."""
        loader = self.eval_loaders.get(split)
        if loader is None:
            return {}
        self.state.evaluating = split
        self._emit("on_evaluate_start")
        self.model.eval()
        acc = self.accumulator_type()
        for x, y in loader.epoch():
            acc.add(self.eval_step(x, y), len(x))
        self.model.train()
        self._emit("on_evaluate_end")
        self.state.evaluating = ""
        return {f"{split}/{k}": v for k, v in acc.means().items()}

    def default_eval_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            out = self.forward(x)
            return compute_terms(out, x, y, self.loss, self.reconstructs, self.classification)

    def custom_eval_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.step_ctx.begin()
        return self.step_ctx.terms(self.user_step.validation_step((x, y), self.step_ctx), "validation_step")

    def end_epoch(self, val: dict[str, float]) -> None:
        s = self.state
        self.log_window()
        train = {f"train/{k}{EPOCH_SUFFIX}": v for k, v in self.epoch_acc.means().items()}
        self.epoch_acc.reset()
        self.record_epoch(train, val)
        for slot in self.slots.values():
            if slot.scheduler is not None and slot.interval == "epoch":
                if slot.monitor:
                    worst = -math.inf if getattr(slot.scheduler, "mode", "min") == "max" else math.inf
                    slot.scheduler.step(s.metrics.get(slot.monitor, worst))
                else:
                    slot.scheduler.step()
        self.show_epoch()
        self._emit("on_epoch_end")
        self.save_epoch(val)

    def epoch_checkpoint_due(self) -> bool:
        """Whether last.pt is written at this epoch's end (`trainer.checkpoint_every`, a
        step checkpoint that fell on the epoch's last step, the end, a stop)."""
        s, every = self.state, self.cfg["trainer"]["checkpoint_every"]
        return (bool(every) and s.epoch % every == 0 or self._ckpt_due or s.epoch >= self.max_epochs
                or s.should_stop or self.stop_signal is not None)

    # ------------------------------------------------------------------ the run's records
    # What a strategy with several runs (runlab.ensemble) does once per run.
    def training(self) -> bool:
        """Whether the run goes on (early stopping, max_steps or a callback can end it)."""
        return not self.state.should_stop

    def update_metrics(self, values: dict[str, float]) -> None:
        self.state.metrics.update(values)

    def record_window(self, means: dict[str, float]) -> None:
        """Log the step window's means, with the learning rates and scheduled hparams."""
        self.check_finite(means)
        self.last_log_step = self.state.step
        scalars = {f"train/{k}": v for k, v in means.items()}
        scalars.update(self.rates())
        self.state.metrics.update(scalars)
        self.log(scalars)

    def record_epoch(self, train: dict[str, float], val: dict[str, float]) -> None:
        self.state.metrics.update(train)
        self.log({**train, **val})

    def show_epoch(self) -> None:
        if self.progress is not None:
            self.progress.end_epoch(console_metrics(self.state.metrics))

    def save_epoch(self, val: dict[str, float]) -> None:
        """After an epoch: check the monitors, write best.pt / last.pt as due."""
        s = self.state
        self.flush_logs()
        self.monitor_check.check(set(self.summary.data) | set(s.metrics),
                                 validated=bool(val) or "val" not in self.eval_loaders)
        best = self.improved()
        if self.epoch_checkpoint_due():
            self.save_checkpoint(also_best=best)  # one serialisation for both files
        elif best:
            ckpt.write(self.checkpoint(), self.run_dir / "checkpoints" / "best.pt")
        if self.on_epoch is not None:
            self.on_epoch(self)

    def complete(self) -> None:
        """Training ended: test (when configured), `on_fit_end`."""
        if self.cfg["trainer"]["test"] and "test" in self.eval_loaders:
            test = self.evaluate("test")
            self.state.metrics.update(test)
            self.log(test)
        self._emit("on_fit_end")
        self.flush_logs()

    # ------------------------------------------------------------------ logging
    def log_window(self) -> None:
        """Sync the step window's means (one device->host copy) and log them."""
        means = self.window.means()
        if not means:
            return
        self.window.reset()
        self.record_window(means)

    def rates(self) -> dict[str, float]:
        """The learning rate(s) (`lr`, or `lr/<name>` with several optimizers) and the
        scheduled hparams' current values."""
        if len(self.slots) == 1:
            out = {"lr": self.optimizer.param_groups[0]["lr"]}
        else:
            out = {f"lr/{n}": slot.optimizer.param_groups[0]["lr"] for n, slot in self.slots.items()}
        return {**out, **self.hparams}

    def check_finite(self, means: dict[str, float], run: Any = None, label: str = "") -> None:
        """The loss sums are NaN/inf iff some step since the last logging point was.
        `run`: whose records (default: this Trainer's; a seed-ensemble member's)."""
        if all(math.isfinite(v) for v in means.values()):
            return
        run = run or self
        last = {k: v for k, v in run.summary.data.items() if k.startswith("train/")}
        finals = ", ".join(f"{k}={v['final']:.6g}" for k, v in last.items()) or "none logged yet"
        first, now = run.last_log_step + 1, self.state.step
        where = f"step {now}" if first >= now else f"steps {first}-{now}"
        raise NonFiniteLoss(
            f"non-finite loss in {where} (epoch {self.state.epoch}{label}; set logging.log_every_steps=1 "
            f"to pin the exact step); last finite values: {finals}")

    def log(self, scalars: dict[str, float]) -> None:
        log_scalars(self.state, self.summary, scalars)

    def flush_logs(self) -> None:
        if self.state.pending:
            self.log({})
        self.writer.flush()

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _emit(self, event: str) -> None:
        if self.callbacks:
            emit(self.callbacks, event, self.state)

    # ------------------------------------------------------------------ checkpoints
    def maybe_checkpoint_steps(self) -> None:
        """A mid-epoch checkpoint every `trainer.checkpoint_every_steps` / `_minutes`."""
        every_steps = self.cfg["trainer"]["checkpoint_every_steps"]
        due = bool(every_steps) and self.state.step % every_steps == 0
        if not (due or self.checkpoint_time_due()):
            return
        if self.state.batch_in_epoch < len(self.train_loader):
            self.save_checkpoint()
        else:  # after validation, so the checkpoint holds the finished epoch
            self._ckpt_due = True

    def checkpoint_time_due(self) -> bool:
        """`trainer.checkpoint_every_minutes` have passed since the last checkpoint."""
        minutes = self.cfg["trainer"]["checkpoint_every_minutes"]
        return bool(minutes) and time.monotonic() - self._last_ckpt >= 60 * minutes

    def improved(self) -> bool:
        """Whether the monitored metric beat the best so far (it becomes the best); only
        where checkpoints are written."""
        value = self.state.metrics.get(self.monitor)
        better = self.run_dir is not None and self.rules.rule(self.monitor).better(value, self.best_value)
        if better:
            self.best_value = value
        return better

    def checkpoint(self) -> ckpt.Checkpoint:
        return run_checkpoint(
            self, model=self.model.state_dict(),
            optimizers={n: ckpt.optimizer_entry(slot.optimizer, slot.scheduler)
                        for n, slot in self.slots.items()},
            scaler=self.scaler.state_dict(), window=self.window.state_dict(),
            epoch_acc=self.epoch_acc.state_dict(), hparams=self.hparams)

    def write_checkpoint(self, path: Path) -> None:
        """Write this moment's checkpoint to `path` (a kept copy: `checkpoints/epoch-N.pt`)."""
        ckpt.write(self.checkpoint(), path)

    def save_checkpoint(self, also_best: bool = False) -> None:
        """Write last.pt (and best.pt, the same checkpoint, with `also_best`). Pending
        callback scalars go into it rather than into metrics.csv, so when (and whether)
        checkpoints happen never changes what gets logged."""
        if self.run_dir is None:
            return
        self.writer.flush()
        names = ("last.pt", "best.pt") if also_best else ("last.pt",)
        ckpt.write(self.checkpoint(), *(self.run_dir / "checkpoints" / n for n in names))
        self._last_ckpt, self._ckpt_due = time.monotonic(), False

    def load_checkpoint(self, state: ckpt.Checkpoint) -> None:
        """Restore everything the rest of the run depends on (see `checkpoint`)."""
        self.model.load_state_dict(state.model)
        saved = state.optimizers
        if saved.keys() != self.slots.keys():
            raise ValueError(f"the checkpoint holds optimizers {sorted(saved)}, the run has {sorted(self.slots)}")
        for name, slot in self.slots.items():
            slot.optimizer.load_state_dict(saved[name]["optimizer"])
            if slot.scheduler is not None and saved[name]["scheduler"] is not None:
                slot.scheduler.load_state_dict(saved[name]["scheduler"])
        self.scaler.load_state_dict(state.scaler)
        restore_run(self, state)
        self.window.load_state_dict(state.trainer["window"], self.device)
        self.epoch_acc.load_state_dict(state.trainer["epoch_acc"], self.device)
        self.hparams = dict(state.trainer.get("hparams", {}))
        ckpt.set_rng_state(state.rng)


# A run's records: the Trainer's own, or one seed-ensemble member's (runlab.ensemble.members),
# each with cfg, state, summary, best_value, callbacks, csv, scheduled and last_log_step.

def run_checkpoint(run: Any, *, model: dict[str, Any], optimizers: dict[str, Any], scaler: dict[str, Any],
                   window: dict[str, Any], epoch_acc: dict[str, Any], hparams: dict[str, float],
                   extra: dict[str, Any] | None = None) -> ckpt.Checkpoint:
    """The checkpoint of one run: its records plus the given tensors' states."""
    s = run.state
    return ckpt.Checkpoint(
        csv_t0=run.csv.t0 if run.csv is not None else None,
        config_hash=config_hash(run.cfg), config=run.cfg,
        epoch=s.epoch, step=s.step, batch_in_epoch=s.batch_in_epoch,
        model=model, optimizers=optimizers, scaler=scaler, rng=ckpt.rng_state(),
        callbacks={ckpt.callback_key(i, cb): cb.state_dict() for i, cb in enumerate(run.callbacks)},
        trainer={
            "window": window, "epoch_acc": epoch_acc,
            "summary": run.summary.data, "best_value": run.best_value,
            "metrics": dict(s.metrics), "should_stop": s.should_stop,
            # scalars waiting for the next logging point, and what that point will show
            "pending": dict(s.pending), "hparams": dict(hparams),
            "last_log_step": run.last_log_step,
            "scheduled": {p.key: getattr(p.target, p.attr) for p in run.scheduled},
            "csv_offset": run.csv.tell() if run.csv is not None else None,
        },
        extra=extra or {},
    )


def restore_run(run: Any, state: ckpt.Checkpoint) -> None:
    """Put a run's records (not its tensors) back as `run_checkpoint` saved them."""
    s, t = run.state, state.trainer
    s.epoch, s.step, s.batch_in_epoch = state.epoch, state.step, state.batch_in_epoch
    for i, cb in enumerate(run.callbacks):
        cb.load_state_dict(state.callback_state(i, cb))
    run.summary.data, run.best_value = t["summary"], t["best_value"]
    s.metrics, s.should_stop = dict(t["metrics"]), t["should_stop"]
    s.pending = dict(t.get("pending", {}))
    run.last_log_step = t.get("last_log_step", s.step)
    for p in run.scheduled:  # validation may come before the next batch sets them again
        if p.key in t.get("scheduled", {}):
            setattr(p.target, p.attr, t["scheduled"][p.key])
