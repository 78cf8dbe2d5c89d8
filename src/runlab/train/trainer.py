"""The Trainer: `fit()` reads top to bottom as the training loop it runs.

Per step it does only what a hand-written loop does (forward, backward, optimiser
step) plus two device-side additions (metric sums, a non-finite check). Values
reach the host only every `logging.log_every_steps` steps and at epoch ends.
A user's `training_step` (runlab.train.step) replaces forward-backward-step; the
rest of the loop (data, logging, validation, checkpoints) stays the same.
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
    (`runlab.distributed`)."""

    accumulator_type: type[Accumulator] = Accumulator  # metric sums; distributed runs reduce them

    def __init__(self, cfg: dict[str, Any], splits: Splits, model: nn.Module, loss: nn.Module,
                 optimizers: dict[str, OptimizerSlot], device: torch.device, writer: Writer, *,
                 scheduled: list[ScheduledParam] | None = None, step: Any = None,
                 callbacks: list[Callback] | None = None, run_dir: Path | None = None,
                 progress: Any = None, csv: Any = None, on_epoch: Any = None,
                 shard: tuple[int, int] = (0, 1)):
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
        self.train_loader = make_loader(splits.train, d["batch_size"], shuffle=True,
                                        drop_last=d["drop_last"], transform=train_tf, **common)
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
        self._last_log_step = 0
        self._last_ckpt = time.monotonic()
        self._ckpt_due = False  # a step checkpoint fell on an epoch's last step: end_epoch saves it

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, dict[str, float]]:
        """Train, validate every `val_every` epochs, test at the end. Returns the summary."""
        s = self.state
        self._emit("on_fit_start")
        while s.epoch < self.max_epochs and not s.should_stop:
            self._emit("on_epoch_start")
            self.train_epoch()
            if self.stop_signal is not None:
                self.save_checkpoint()
                raise Interrupted(self.stop_signal)
            val = self.evaluate("val") if (s.epoch + 1) % self.val_every == 0 else {}
            s.metrics.update(val)
            self._emit("on_validation_end")
            self.end_epoch(val)
            if self.stop_signal is not None:
                raise Interrupted(self.stop_signal)
        if self.cfg["trainer"]["test"] and "test" in self.eval_loaders:
            test = self.evaluate("test")
            s.metrics.update(test)
            self.log(test)
        self._emit("on_fit_end")
        self.flush_logs()
        return self.summary.data

    def train_epoch(self) -> None:
        s, loader = self.state, self.train_loader
        n_batches = len(loader)
        if self.progress is not None:
            self.progress.start_epoch(s.epoch, self.max_epochs, n_batches)
        self.model.train()
        for x, y in loader.epoch(s.epoch, start=s.batch_in_epoch):
            self.hparams = apply_schedules(self.scheduled, s.epoch + s.batch_in_epoch / n_batches, s.step)
            terms = self.train_step(x, y)
            s.batch_in_epoch += 1
            vals = self.window.add(terms, len(x))
            self.epoch_acc.add_values(vals, len(x), tuple(terms))
            if s.batch_in_epoch % self.accumulate and s.batch_in_epoch < n_batches:
                continue  # gradient accumulation: step after `accumulate` batches
            self.end_step()
            if self.progress is not None:
                self.progress.advance(self.accumulate, len(x))
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
            nn.utils.clip_grad_norm_(slot.params, self.grad_clip)
        self.scaler.step(slot.optimizer)
        self._emit("on_after_optimizer_step")
        slot.optimizer.zero_grad(set_to_none=True)
        if slot.scheduler is not None and slot.interval == "step":
            slot.scheduler.step()

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
        s.metrics.update(train)
        self.log({**train, **val})
        for slot in self.slots.values():
            if slot.scheduler is not None and slot.interval == "epoch":
                if slot.monitor:
                    worst = -math.inf if getattr(slot.scheduler, "mode", "min") == "max" else math.inf
                    slot.scheduler.step(s.metrics.get(slot.monitor, worst))
                else:
                    slot.scheduler.step()
        if self.progress is not None:
            self.progress.end_epoch(console_metrics(s.metrics))
        self._emit("on_epoch_end")
        self.flush_logs()
        self.monitor_check.check(set(self.summary.data) | set(s.metrics),
                                 validated=bool(val) or "val" not in self.eval_loaders)
        best = self.improved()
        every = self.cfg["trainer"]["checkpoint_every"]
        due = bool(every) and s.epoch % every == 0 or self._ckpt_due
        if due or s.epoch >= self.max_epochs or s.should_stop or self.stop_signal is not None:
            self.save_checkpoint(also_best=best)  # one serialisation for both files
        elif best:
            ckpt.write(self.checkpoint(), self.run_dir / "checkpoints" / "best.pt")
        if self.on_epoch is not None:
            self.on_epoch(self)

    # ------------------------------------------------------------------ logging
    def log_window(self) -> None:
        """Sync the step window's means (one device->host copy) and log them."""
        means = self.window.means()
        if not means:
            return
        self.window.reset()
        self.check_finite(means)
        self._last_log_step = self.state.step
        scalars = {f"train/{k}": v for k, v in means.items()}
        if len(self.slots) == 1:
            scalars["lr"] = self.optimizer.param_groups[0]["lr"]
        else:
            scalars.update({f"lr/{n}": slot.optimizer.param_groups[0]["lr"] for n, slot in self.slots.items()})
        scalars.update(self.hparams)
        self.state.metrics.update(scalars)
        self.log(scalars)

    def check_finite(self, means: dict[str, float]) -> None:
        """The loss sums are NaN/inf iff some step since the last logging point was."""
        if all(math.isfinite(v) for v in means.values()):
            return
        last = {k: v for k, v in self.summary.data.items() if k.startswith("train/")}
        finals = ", ".join(f"{k}={v['final']:.6g}" for k, v in last.items()) or "none logged yet"
        first, now = self._last_log_step + 1, self.state.step
        where = f"step {now}" if first >= now else f"steps {first}-{now}"
        raise NonFiniteLoss(
            f"non-finite loss in {where} (epoch {self.state.epoch}; set logging.log_every_steps=1 "
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
        emit(self.callbacks, event, self.state)

    # ------------------------------------------------------------------ checkpoints
    def maybe_checkpoint_steps(self) -> None:
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
        s = self.state
        return ckpt.Checkpoint(
            csv_t0=self.csv.t0 if self.csv is not None else None,
            config_hash=config_hash(self.cfg), config=self.cfg,
            epoch=s.epoch, step=s.step, batch_in_epoch=s.batch_in_epoch,
            model=self.model.state_dict(),
            optimizers={n: ckpt.optimizer_entry(slot.optimizer, slot.scheduler)
                        for n, slot in self.slots.items()},
            scaler=self.scaler.state_dict(),
            rng=ckpt.rng_state(),
            callbacks={ckpt.callback_key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)},
            trainer={
                "window": self.window.state_dict(), "epoch_acc": self.epoch_acc.state_dict(),
                "summary": self.summary.data, "best_value": self.best_value,
                "metrics": dict(s.metrics), "should_stop": s.should_stop,
                # scalars waiting for the next logging point, and what that point will show
                "pending": dict(s.pending), "hparams": dict(self.hparams),
                "last_log_step": self._last_log_step,
                "scheduled": {p.key: getattr(p.target, p.attr) for p in self.scheduled},
                "csv_offset": self.csv.tell() if self.csv is not None else None,
            },
        )

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
        s = self.state
        self.model.load_state_dict(state.model)
        saved = state.optimizers
        if saved.keys() != self.slots.keys():
            raise ValueError(f"the checkpoint holds optimizers {sorted(saved)}, the run has {sorted(self.slots)}")
        for name, slot in self.slots.items():
            slot.optimizer.load_state_dict(saved[name]["optimizer"])
            if slot.scheduler is not None and saved[name]["scheduler"] is not None:
                slot.scheduler.load_state_dict(saved[name]["scheduler"])
        self.scaler.load_state_dict(state.scaler)
        s.epoch, s.step, s.batch_in_epoch = state.epoch, state.step, state.batch_in_epoch
        for i, cb in enumerate(self.callbacks):
            cb.load_state_dict(state.callback_state(i, cb))
        t = state.trainer
        self.window.load_state_dict(t["window"], self.device)
        self.epoch_acc.load_state_dict(t["epoch_acc"], self.device)
        self.summary.data, self.best_value = t["summary"], t["best_value"]
        s.metrics, s.should_stop = dict(t["metrics"]), t["should_stop"]
        s.pending, self.hparams = dict(t.get("pending", {})), dict(t.get("hparams", {}))
        self._last_log_step = t.get("last_log_step", s.step)
        for p in self.scheduled:  # validation may come before the next batch sets them again
            if p.key in t.get("scheduled", {}):
                setattr(p.target, p.attr, t["scheduled"][p.key])
        ckpt.set_rng_state(state.rng)
