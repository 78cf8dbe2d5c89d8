"""The seed ensemble as a strategy of `Trainer.fit`: K members trained at once by the
one loop of runlab.train.trainer, with three parts swapped in.

- Batch source (`StackedBatches`): each member's batch of a step from its own seeded
  permutation, stacked (K, B, ...).
- Step: one vmapped (or stacked-kernel) forward over the stacked weights, backward of
  the summed member losses (member k's gradients depend on its own loss only),
  per-member gradient clipping; the Trainer's optimiser step then steps the stacked
  tensors (exact for element-wise optimisers).
- Records: metrics, logs, callbacks, early stopping, best/last checkpoints, status and
  run folder stay per member (`Member`); a member that stops or diverges ends alone.
  Every checkpoint is a single-run one (`run_checkpoint`) plus the chunk it trained in,
  so a member can be resumed in that same chunk (runlab.ensemble.session).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from runlab.data.loader import MEMORY_LIMIT_BYTES, epoch_permutation
from runlab.ensemble.members import Member, slice_accumulator, slice_optimizer
from runlab.ensemble.stacked import Stack
from runlab.logging.base import Writer
from runlab.optim import OptimizerSlot
from runlab.runs import checkpoint as ckpt
from runlab.train.events import SINGLE_RUN_EVENTS
from runlab.train.trainer import NonFiniteLoss, Trainer, run_checkpoint


class StackedBatches:
    """The training batches of K members: member k's batch i is batch i of its own
    seeded permutation of the epoch (or of the stored order, without `shuffle`), as its
    single run would draw it; (K, B, ...)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, seeds: list[int], batch_size: int,
                 drop_last: bool, device: torch.device, shuffle: bool = True):
        on_device = x.numel() * x.element_size() + y.numel() * y.element_size() < MEMORY_LIMIT_BYTES
        self.x, self.y = (x.to(device), y.to(device)) if on_device else (x, y)
        self.seeds, self.batch_size, self.device, self.shuffle = seeds, batch_size, device, shuffle
        n = len(x)
        self.n_batches = n // batch_size if drop_last else -(-n // batch_size)

    def __len__(self) -> int:
        return self.n_batches

    def epoch(self, epoch: int = 0, start: int = 0):
        n, bs = len(self.x), self.batch_size
        if self.shuffle:
            perms = torch.stack([epoch_permutation(n, s, epoch) for s in self.seeds]).to(self.x.device)
        else:
            perms = torch.arange(n, device=self.x.device).expand(len(self.seeds), n)
        for i in range(start, self.n_batches):
            idx = perms[:, i * bs:(i + 1) * bs]  # (K, B)
            yield self.x[idx].to(self.device), self.y[idx].to(self.device)


class EnsembleTrainer(Trainer):
    """Trains `members` (their tensors stacked in `stack`) with one optimiser `slot` over
    the stacked tensors. Members marked inactive from the start are ghosts: they fill
    their place in the chunk (so every member computes exactly what it computed in the
    chunk it began in) but keep no records."""

    sample_dim = 1

    def __init__(self, cfg: dict[str, Any], splits: Any, stack: Stack, members: list[Member],
                 slot: OptimizerSlot, device: torch.device, *, ensemble: dict[str, Any]):
        x, y = splits.train
        d = cfg["data"]
        batches = StackedBatches(x, y, [m.seed for m in members], d["batch_size"], d["drop_last"], device,
                                 d["shuffle"])
        super().__init__(cfg, splits, stack, None, {slot.name: slot}, device, Writer(),
                         scheduled=[p for m in members for p in m.scheduled], batches=batches)
        self.stack, self.members, self.ensemble = stack, members, ensemble
        self.saver = ckpt.BackgroundSaver()  # K checkpoints at a time: written while training goes on

    @property
    def active(self) -> list[Member]:
        return [m for m in self.members if m.active]

    def sync(self) -> None:
        """The members' states follow the shared progress."""
        s = self.state
        for m in self.active:
            m.state.epoch, m.state.step, m.state.batch_in_epoch = s.epoch, s.step, s.batch_in_epoch

    # ------------------------------------------------------------------ the stacked step
    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            terms = self.stack.terms(x, y)  # {name: (K,)}
        self.backward(terms["loss"].sum(), self.accumulate)  # member k's grads: its own loss only
        return terms

    def clip_gradients(self, slot: OptimizerSlot) -> None:
        self.stack.clip_grad_norm_(self.grad_clip)  # each member over its own parameters

    def default_eval_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            return self.stack.eval_terms(x, y)  # one shared batch under every member: (K,)

    def _emit(self, event: str) -> None:
        if event in SINGLE_RUN_EVENTS:  # the stacked step has no per-member backward/step
            return
        self.sync()
        for m in self.active:
            if m.callbacks:
                m.emit(event)

    # ------------------------------------------------------------------ the members' records
    def training(self) -> bool:
        return bool(self.active)

    def update_metrics(self, values: dict[str, list[float]]) -> None:
        for m in self.active:
            m.state.metrics.update(pick(values, m.index))

    def record_window(self, means: dict[str, list[float]]) -> None:
        self.sync()
        rates = self.rates()
        for m in self.active:
            scalars = {f"train/{k}": v for k, v in pick(means, m.index).items()}
            try:
                self.check_finite(scalars, m, f", seed {m.seed}")
            except NonFiniteLoss as err:  # it fails like a single run would; the others go on
                print(f"runlab: seed {m.seed} failed: {err}")
                m.finish("failed", error={"type": type(err).__name__, "message": str(err), "traceback": ""})
                continue
            m.last_log_step = self.state.step
            scalars.update(rates)
            m.state.metrics.update(scalars)
            m.log(scalars)

    def record_epoch(self, train: dict[str, list[float]], val: dict[str, list[float]]) -> None:
        for m in self.active:
            mine = pick(train, m.index)
            m.state.metrics.update(mine)
            m.log({**mine, **pick(val, m.index)})

    def show_epoch(self) -> None:
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
        print(f"epoch {self.state.epoch}/{self.max_epochs}  [{len(act)} seeds]  " + "  ".join(parts), flush=True)

    def save_epoch(self, val: dict[str, list[float]]) -> None:
        self.sync()
        due, validated = self.epoch_checkpoint_due(), bool(val) or "val" not in self.eval_loaders
        for m in self.active:
            m.flush()
            m.monitor_check.check(set(m.summary.data) | set(m.state.metrics), validated)
            stop = m.state.should_stop or self.state.should_stop
            names = [name for name, wanted in (("best.pt", m.improved()), ("last.pt", due or stop)) if wanted]
            if names:
                self.write_member(m, names)
            m.record.update(epoch=self.state.epoch, step=self.state.step, summary=m.summary.data)
        self._ckpt_due = False
        self.finish_members([m for m in self.active if m.state.should_stop or self.state.should_stop])

    def complete(self) -> None:
        self.finish_members(self.active)
        self.saver.wait()  # also when no member completed

    def finish_members(self, members: list[Member]) -> None:
        """Test (when configured) and finish members whose training ended."""
        if not members:
            return
        self.sync()
        test = self.evaluate("test") if self.cfg["trainer"]["test"] and "test" in self.eval_loaders else {}
        self.saver.wait()  # their checkpoints are on disk before they say "completed"
        for m in members:
            mine = pick(test, m.index)
            m.state.metrics.update(mine)
            if mine:
                m.log(mine)
            m.emit("on_fit_end")
            m.flush()
            m.finish("completed")

    # ------------------------------------------------------------------ checkpoints
    def member_checkpoint(self, m: Member) -> ckpt.Checkpoint:
        """Member m's checkpoint: a single-run one, plus the chunk it trains in."""
        k, slot = m.index, self.slots[ckpt.MAIN]
        return run_checkpoint(
            m, model={n: t.clone() for n, t in m.state.model.state_dict().items()},
            optimizers={ckpt.MAIN: {
                "optimizer": slice_optimizer(slot.optimizer.state_dict(), self.stack.trained, k),
                "scheduler": slot.scheduler.state_dict() if slot.scheduler is not None else None}},
            scaler=self.scaler.state_dict(),
            window=slice_accumulator(self.window.state_dict(), k),
            epoch_acc=slice_accumulator(self.epoch_acc.state_dict(), k), hparams=self.hparams,
            extra={"ensemble": {**self.ensemble, "index": k, "seeds": [x.seed for x in self.members]}})

    def write_member(self, m: Member, names: list[str] | tuple[str, ...]) -> None:
        """Member m's checkpoint as `names` in its checkpoints/ (best and last of the same
        moment hold the same checkpoint: serialised once), in the background."""
        self.saver.submit(self.member_checkpoint(m).to_dict(), *(m.record.dir / "checkpoints" / n for n in names),
                          keep_previous=True)

    def save_checkpoint(self, also_best: bool = False) -> None:
        """Every active member's last.pt (mid-epoch, or on a stop signal)."""
        self.sync()
        for m in self.active:
            m.flush()
            self.write_member(m, ("last.pt", "best.pt") if also_best else ("last.pt",))
        self._last_ckpt, self._ckpt_due = time.monotonic(), False


def pick(values: dict[str, Any], k: int) -> dict[str, float]:
    """Member k's values of {name: [K values]}."""
    return {name: v[k] for name, v in values.items()}
