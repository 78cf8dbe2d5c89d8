"""One vectorised chunk of an ensemble: from prepared members to a ready EnsembleTrainer.

Builds the Stack, checks that it vectorises (before any run folder exists), then
opens each member's run folder (new or resumed), one optimiser and scheduler over
the stacked tensors, and restores every member's checkpoint when resuming.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import torch

from runlab.ensemble.members import Member, stack_accumulators, stack_optimizer
from runlab.ensemble.stacked import Stack, StepModule, vectorization_problem
from runlab.ensemble.trainer import EnsembleTrainer
from runlab.logging.csv import truncate_csv
from runlab.runs import checkpoint as ckpt
from runlab.runs.folder import RunRecord
from runlab.train.events import TrainState


def stream_seed(seeds: list[int]) -> int:
    """Seed of the RNG stream the vectorised members share (dropout masks, VAE noise)."""
    return zlib.crc32(",".join(str(s) for s in seeds).encode())


class Session:
    """`prepared`: one `runlab.train.api.Prepared` per member (its model built under its
    seed exactly as a single run builds it); `part`: (cfg, run_dir, resume_state) each.
    `ghosts`: indices of chunk places whose seed is not trained now (a member resumed
    without the rest of the chunk it began in): they are computed, so that the others
    compute exactly what they did in that chunk, but keep no records."""

    def __init__(self, prepared: list, part: list[tuple], splits: Any, extra: dict[str, Any],
                 ghosts: frozenset[int] = frozenset()):
        self.prepared, self.part, self.splits, self.extra = prepared, part, splits, extra
        self.ghosts = ghosts
        self.ensemble_id = extra["ensemble"]
        self.cfg, self.device = prepared[0].cfg, prepared[0].device
        classification = splits.meta.task == "classification"
        self.stack = Stack([StepModule(p.model, p.loss, classification) for p in prepared])
        self.members: list[Member] = []
        self.trainer: EnsembleTrainer | None = None

    @property
    def trained(self) -> list[Member]:
        """The members with a run folder (not the ghosts)."""
        return [m for m in self.members if m.record is not None]

    def problem(self) -> str | None:
        """Why this chunk cannot train vectorised, or None."""
        train = self.splits.train
        if not (isinstance(train, tuple) and all(isinstance(t, torch.Tensor) for t in train)):
            return f"dataset '{self.splits.meta.name}' is not held as tensors"
        x, y = train
        n = min(len(x), self.cfg["data"]["batch_size"])  # one real batch per member
        found = vectorization_problem(self.stack, x[:n * self.stack.k].to(self.device),
                                      y[:n * self.stack.k].to(self.device), n)
        if found is not None:
            return f"model '{self.cfg['model']['name']}' with its loss does not run under torch.func.vmap: {found}"
        return None

    def open(self, runs_dir: Path) -> None:
        """Run folders, writers, optimiser, scheduler, trainer; restore checkpoints."""
        from runlab.optim import OptimizerSlot, build_optimizer, build_scheduler

        cfg = self.cfg
        optimizer = build_optimizer(cfg["optimizer"], self.stack.trained)
        n_batches = -(-len(self.splits.train[0]) // cfg["data"]["batch_size"])
        steps = max(1, n_batches // cfg["trainer"]["accumulate"])
        scheduler, interval, monitor = build_scheduler(cfg["scheduler"], optimizer, cfg["trainer"]["max_epochs"],
                                                       steps)
        slot = OptimizerSlot(ckpt.MAIN, optimizer, self.stack.trained, scheduler, interval, monitor)
        self.members = [self._ghost(i, p) if i in self.ghosts
                        else self._member(i, p, run_dir, state, runs_dir, optimizer)
                        for i, (p, (_, run_dir, state)) in enumerate(zip(self.prepared, self.part, strict=True))]
        self.trainer = EnsembleTrainer(cfg, self.splits, self.stack, self.members, slot, self.device,
                                       ensemble={"id": self.ensemble_id})
        states = [s for _, _, s in self.part]
        if all(s is None for s in states):
            ckpt.seed_everything(stream_seed([m.seed for m in self.members]))
        else:
            self._restore(states)

    def _ghost(self, i: int, p: Any) -> Member:
        return Member(i, p.cfg, None, None, None, None, p.scheduled, active=False)

    def _member(self, i: int, p: Any, run_dir: Path | None, state: Any, runs_dir: Path,
                optimizer: torch.optim.Optimizer) -> Member:
        from runlab.train.api import create_run_dir, make_writers

        cfg = p.cfg
        if run_dir is not None and (run_dir / "run.json").exists():
            record = RunRecord.load(run_dir)
            record.info["resumes"] = int(record.info.get("resumes", 0)) + 1
            if state is not None and state.trainer["csv_offset"] is not None:
                truncate_csv(run_dir / "metrics.csv", state.trainer["csv_offset"])
            elif state is None:  # nothing to continue from: start over in the same folder
                (run_dir / "metrics.csv").unlink(missing_ok=True)
        else:
            record = create_run_dir(cfg, runs_dir, run_dir, self.extra)
        quiet = {**cfg, "logging": {**cfg["logging"], "console": False}}  # one ensemble line instead
        writer, csv, _ = make_writers(quiet, record.dir, record, None, state)
        callbacks = list(p.callbacks)
        if cfg["diagnostics"]:
            from runlab.diagnostics.runner import DiagnosticsCallback

            callbacks.append(DiagnosticsCallback(cfg["diagnostics"], record.dir, cfg["seed"]))
        t = cfg["trainer"]
        ts = TrainState(cfg, record.dir, self.splits.meta, p.model, optimizer, self.device, writer,
                        t["max_epochs"])
        ts.train_data, ts.val_data = self.splits.train, self.splits.val
        monitor = t["monitor"] or (t["early_stopping"] or {}).get("monitor") or (
            "val/loss" if self.splits.val is not None else "train/loss_epoch")
        return Member(i, cfg, record, ts, writer, csv, p.scheduled, callbacks, monitor=monitor)

    def _restore(self, states: list[Any]) -> None:
        """Load every member's checkpoint into the stacked tensors and its records; a
        ghost takes a copy of a trained member's, so that its place computes sanely."""
        from runlab.train.trainer import restore_run

        tr = self.trainer
        some = next(s for s in states if s is not None)
        states = [some if i in self.ghosts else s for i, s in enumerate(states)]
        for p, m, s in zip(self.prepared, self.members, states, strict=True):
            p.model.load_state_dict(s.model)  # copies into the member's stacked slice
            if m.record is not None:
                restore_run(m, s)
        saved = [s.optimizers[ckpt.MAIN] for s in states]
        slot = tr.slots[ckpt.MAIN]
        slot.optimizer.load_state_dict(stack_optimizer([s["optimizer"] for s in saved], self.stack.trained))
        if slot.scheduler is not None and saved[0]["scheduler"] is not None:
            slot.scheduler.load_state_dict(saved[0]["scheduler"])
        s = tr.state
        s.epoch, s.step, s.batch_in_epoch = some.epoch, some.step, some.batch_in_epoch
        tr.window.load_state_dict(stack_accumulators([s.trainer["window"] for s in states]), self.device)
        tr.epoch_acc.load_state_dict(stack_accumulators([s.trainer["epoch_acc"] for s in states]), self.device)
        tr.hparams = dict(some.trainer.get("hparams", {}))
        tr.sync()
        ckpt.set_rng_state(some.rng)
