"""The vectorised loop: `Trainer.fit` for K members at once.

Per step: gather each member's own batch (its seeded permutation), one vmapped
forward over the stacked weights, backward of the summed member losses (member k's
gradients depend on its own loss only), per-member gradient clipping, one optimiser
step over the stacked tensors (exact for element-wise optimisers). Metrics, callbacks,
early stopping, best/last checkpoints and run folders stay per member.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import torch

from runlab.data.loader import MEMORY_LIMIT_BYTES, epoch_permutation, make_loader
from runlab.ensemble.members import Member, slice_accumulator, slice_optimizer
from runlab.ensemble.stacked import Stack
from runlab.hparams import apply_schedules
from runlab.metric_rules import EPOCH_SUFFIX
from runlab.runs import checkpoint as ckpt
from runlab.train.build import PRECISION_DTYPES
from runlab.train.metrics import Accumulator
from runlab.train.trainer import Interrupted, NonFiniteLoss


class EnsembleTrainer:
    """Trains `members` (their tensors stacked in `stack`) with one shared optimiser."""

    def __init__(self, cfg: dict[str, Any], splits: Any, stack: Stack, members: list[Member],
                 optimizer: torch.optim.Optimizer, device: torch.device, *, scheduler: Any = None,
                 sched_interval: str = "epoch", ensemble: dict[str, Any] | None = None):
        self.cfg, self.stack, self.members, self.device = cfg, stack, members, device
        self.optimizer, self.scheduler, self.sched_interval = optimizer, scheduler, sched_interval
        self.ensemble = ensemble or {}
        t, d = cfg["trainer"], cfg["data"]
        self.max_epochs, self.max_steps, self.accumulate = t["max_epochs"], t["max_steps"], t["accumulate"]
        self.grad_clip, self.val_every = t["grad_clip"], t["val_every"]
        self.log_every = max(1, int(cfg["logging"]["log_every_steps"]))
        self.amp_dtype = PRECISION_DTYPES[str(t["precision"])]
        x, y = splits.train
        on_device = x.numel() * x.element_size() + y.numel() * y.element_size() < MEMORY_LIMIT_BYTES
        self.x, self.y = (x.to(device), y.to(device)) if on_device else (x, y)
        self.batch_size, self.drop_last = d["batch_size"], d["drop_last"]
        n = len(x)
        self.n_batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        eval_bs = d["eval_batch_size"] or max(d["batch_size"], 512)
        self.eval_loaders = {
            name: make_loader(data, eval_bs, kind=d["loader"], shuffle=False, seed=0, device=device,
                              num_workers=d["num_workers"])
            for name, data in (("val", splits.val), ("test", splits.test)) if data is not None
        }
        self.window, self.epoch_acc = Accumulator(), Accumulator()  # sums (terms, K)
        self.epoch = self.step = self.batch_in_epoch = 0
        self.stop_signal: int | None = None
        self._last_ckpt = time.monotonic()
        self.saver = ckpt.BackgroundSaver()  # K checkpoints at a time: written while training goes on
        self.hparams: dict[str, float] = {}

    @property
    def active(self) -> list[Member]:
        return [m for m in self.members if m.active]

    # ------------------------------------------------------------------ the loop
    def fit(self) -> None:
        """Train until every member stopped (max_epochs, max_steps, early stopping, failure)."""
        self.emit("on_fit_start")
        while self.epoch < self.max_epochs and self.active:
            self.emit("on_epoch_start")
            self.train_epoch()
            if self.stop_signal is not None:
                self.save_checkpoints()
                self.saver.wait()  # the checkpoints to resume from are on disk
                raise Interrupted(self.stop_signal)
            val = self.evaluate("val") if (self.epoch + 1) % self.val_every == 0 else {}
            for m in self.active:
                m.state.metrics.update({k: v[m.index] for k, v in val.items()})
            self.emit("on_validation_end")
            self.end_epoch(val)
            if self.stop_signal is not None:
                self.saver.wait()
                raise Interrupted(self.stop_signal)
        self.complete(self.active)
        self.saver.wait()  # also when no member completed

    def train_epoch(self) -> None:
        self.stack.train(True)
        for x, y in self.batches():
            self.hparams = {}
            for m in self.members:  # the same values for every member; the template's are used
                self.hparams = apply_schedules(m.scheduled, self.epoch + self.batch_in_epoch / self.n_batches,
                                               self.step)
            with self.autocast():
                terms = self.stack.terms(x, y)  # {name: (K,)}
            loss = terms["loss"].sum()  # member k's grads depend on its own loss only
            (loss / self.accumulate if self.accumulate > 1 else loss).backward()
            self.batch_in_epoch += 1
            vals = self.window.add(terms, x.shape[1])
            self.epoch_acc.add_values(vals, x.shape[1], tuple(terms))
            if self.batch_in_epoch % self.accumulate and self.batch_in_epoch < self.n_batches:
                continue
            self.optimizer_step()
            if self.step % self.log_every == 0:
                self.log_window()
            self.emit("on_train_batch_end")
            self.maybe_checkpoint_steps()
            if self.stop_signal is not None or (self.max_steps and self.step >= self.max_steps):
                if self.stop_signal is None:
                    for m in self.active:
                        m.state.should_stop = True
                return
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.sync_progress()

    def batches(self):
        """Each member's batch of this step, from its own seeded permutation: (K, B, ...)."""
        n, bs = len(self.x), self.batch_size
        perms = torch.stack([epoch_permutation(n, m.seed, self.epoch) for m in self.members])
        perms = perms.to(self.x.device)  # (K, n)
        for i in range(self.batch_in_epoch, self.n_batches):
            idx = perms[:, i * bs:(i + 1) * bs]  # (K, B)
            yield self.x[idx].to(self.device), self.y[idx].to(self.device)

    def optimizer_step(self) -> None:
        if self.grad_clip:
            self.stack.clip_grad_norm_(self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.sync_progress()
        if self.scheduler is not None and self.sched_interval == "step":
            self.scheduler.step()

    def sync_progress(self) -> None:
        for m in self.members:
            m.state.epoch, m.state.step, m.state.batch_in_epoch = self.epoch, self.step, self.batch_in_epoch

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, list[float]]:
        """Sample-weighted means of every term under every member: {`<split>/<term>`: [K]}."""
        loader = self.eval_loaders.get(split)
        if loader is None:
            return {}
        self.stack.train(False)
        acc = Accumulator()
        for x, y in loader.epoch():
            with self.autocast():
                acc.add(self.stack.eval_terms(x, y), len(x))
        self.stack.train(True)
        return {f"{split}/{k}": v for k, v in acc.means().items()}

    def end_epoch(self, val: dict[str, list[float]]) -> None:
        self.log_window()
        train = {f"train/{k}{EPOCH_SUFFIX}": v for k, v in self.epoch_acc.means().items()}
        self.epoch_acc.reset()
        for m in self.active:
            mine = {k: v[m.index] for k, v in train.items()}
            m.state.metrics.update(mine)
            m.log({**mine, **{k: v[m.index] for k, v in val.items()}})
        if self.scheduler is not None and self.sched_interval == "epoch":
            self.scheduler.step()
        self.print_epoch()
        self.emit("on_epoch_end")
        every = self.cfg["trainer"]["checkpoint_every"]
        due = every and self.epoch % every == 0 or self.epoch >= self.max_epochs
        validated = bool(val) or "val" not in self.eval_loaders
        for m in self.active:
            m.flush()
            m.monitor_check.check(set(m.summary.data) | set(m.state.metrics), validated)
            names = [name for name, wanted in (("best.pt", m.improved()), ("last.pt", due or m.state.should_stop))
                     if wanted]
            if names:  # best and last of the same moment hold the same checkpoint: written once
                self.saver.submit(self.checkpoint(m).to_dict(), *(m.record.dir / "checkpoints" / n for n in names),
                                  keep_previous=True)
            m.record.update(epoch=self.epoch, step=self.step, summary=m.summary.data)
        self.complete([m for m in self.active if m.state.should_stop])

    def complete(self, members: list[Member]) -> None:
        """Test (when configured) and finish members whose training ended."""
        if not members:
            return
        test = {}
        if self.cfg["trainer"]["test"] and "test" in self.eval_loaders:
            test = self.evaluate("test")
        self.saver.wait()  # their checkpoints are on disk before they say "completed"
        for m in members:
            mine = {k: v[m.index] for k, v in test.items()}
            m.state.metrics.update(mine)
            if mine:
                m.log(mine)
            m.emit("on_fit_end")
            m.flush()
            m.finish("completed")

    # ------------------------------------------------------------------ logging
    def log_window(self) -> None:
        means = self.window.means()
        if not means:
            return
        self.window.reset()
        lr = self.optimizer.param_groups[0]["lr"]
        for m in self.active:
            scalars = {f"train/{k}": v[m.index] for k, v in means.items()}
            if not all(math.isfinite(v) for v in scalars.values()):
                self.fail_non_finite(m)
                continue
            m.last_log_step = self.step
            scalars.update({"lr": lr, **self.hparams})
            m.state.metrics.update(scalars)
            m.log(scalars)

    def fail_non_finite(self, m: Member) -> None:
        """One member diverged: it fails like a single run would; the others go on."""
        first = m.last_log_step + 1
        where = f"step {self.step}" if first >= self.step else f"steps {first}-{self.step}"
        err = NonFiniteLoss(f"non-finite loss in {where} (epoch {self.epoch}, seed {m.seed}; "
                            "set logging.log_every_steps=1 to pin the exact step)")
        print(f"runlab: seed {m.seed} failed: {err}")
        m.finish("failed", error={"type": type(err).__name__, "message": str(err), "traceback": ""})

    def print_epoch(self) -> None:
        """One line per epoch: each shown metric's mean and spread over the active members."""
        act = self.active
        if not act:
            return
        keys = [k for k in ("train/loss_epoch", "val/loss", "val/acc") if k in act[0].state.metrics]
        parts = []
        for k in keys:
            v = torch.tensor([m.state.metrics[k] for m in act], dtype=torch.float64)
            spread = f" ± {v.std().item():.4f}" if len(v) > 1 else ""
            parts.append(f"{k} {v.mean().item():.4f}{spread}")
        print(f"epoch {self.epoch}/{self.max_epochs}  [{len(act)} seeds]  " + "  ".join(parts), flush=True)

    def emit(self, event: str) -> None:
        for m in self.active:
            if m.callbacks:
                m.emit(event)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, m: Member) -> ckpt.Checkpoint:
        """Member m's checkpoint, a single-run one (see Trainer.checkpoint)."""
        k = m.index
        return ckpt.Checkpoint(
            csv_t0=m.csv.t0, config_hash=m.config_hash, config=m.cfg,
            epoch=self.epoch, step=self.step, batch_in_epoch=self.batch_in_epoch,
            model={n: t.clone() for n, t in m.state.model.state_dict().items()},
            optimizers={ckpt.MAIN: {
                "optimizer": slice_optimizer(self.optimizer.state_dict(), self.stack.trained, k),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}},
            scaler={},
            rng=ckpt.rng_state(),
            callbacks={ckpt.callback_key(i, cb): cb.state_dict() for i, cb in enumerate(m.callbacks)},
            trainer={
                "window": slice_accumulator(self.window.state_dict(), k),
                "epoch_acc": slice_accumulator(self.epoch_acc.state_dict(), k),
                "summary": m.summary.data, "best_value": m.best_value,
                "metrics": dict(m.state.metrics), "should_stop": m.state.should_stop,
                "csv_offset": m.csv.tell(),
            },
            extra={"ensemble": {**self.ensemble, "index": k, "seeds": [x.seed for x in self.members]}},
        )

    def maybe_checkpoint_steps(self) -> None:
        """Mid-epoch checkpoints every `checkpoint_every_steps` / `_minutes` (as Trainer)."""
        t = self.cfg["trainer"]
        every_steps, minutes = t["checkpoint_every_steps"], t["checkpoint_every_minutes"]
        due = bool(every_steps) and self.step % every_steps == 0
        if minutes and time.monotonic() - self._last_ckpt >= 60 * minutes:
            due = True
        if due and self.batch_in_epoch < self.n_batches:
            self.save_checkpoints()

    def save_checkpoints(self) -> None:
        for m in self.active:
            m.flush()
            self.saver.submit(self.checkpoint(m).to_dict(), m.record.dir / "checkpoints" / "last.pt",
                              keep_previous=True)
        self._last_ckpt = time.monotonic()
