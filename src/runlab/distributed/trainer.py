"""The Trainer, data-parallel: the same loop, with DDP averaging gradients and four
collective points added where the single-process loop already stops to look.

Equivalence with one process on the global batch (`data.batch_size`): every process
takes a contiguous slice of each global batch of the epoch's seeded permutation. DDP
averages the processes' gradients, so a process whose slice holds n_r of the batch's n
samples scales its (mean) loss by n_r * world / n: the average is then exactly the
gradient of the mean loss over the global batch, also for an uneven last batch.

A custom step (runlab.train.step) may call submodules directly and so bypass DDP's
forward, which is what triggers DDP's gradient averaging. Such a run is not wrapped in
DDP: every optimizer step first averages that optimizer's gradients over the processes
itself (`average_gradients`), which no step can bypass.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from runlab.data.base import num_samples
from runlab.data.loader import batch_bounds
from runlab.distributed.context import Context, StepAgreement
from runlab.errors import ConfigError
from runlab.runs import checkpoint as ckpt
from runlab.train.metrics import Accumulator, configured_monitors, merge_states
from runlab.train.trainer import Interrupted, Trainer


class ReducedAccumulator(Accumulator):
    """Means over the samples of every process. Ranks may have seen different names (a
    term that only some batches have): they first agree on the union of their names (one
    all_gather of the name lists), then one all-reduce of [sums, counts] in that order.
    Called only where the single-process Trainer syncs anyway (log points, epoch ends,
    evaluation), and the same number of times on every rank."""

    def means(self) -> dict[str, float]:
        names: list[list[str]] = [[] for _ in range(dist.get_world_size())]
        dist.all_gather_object(names, self.keys)
        union = list(dict.fromkeys(k for ks in names for k in ks))
        if not union:
            return {}
        device = self.sums.device if self.sums is not None else _collective_device()
        shape = tuple(self.sums.shape[1:]) if self.sums is not None else ()
        sums = torch.zeros((len(union), *shape), dtype=torch.float64, device=device)
        counts = [0.0] * len(union)
        if self.sums is not None:
            rows = [union.index(k) for k in self.keys]
            sums[rows] = self.sums.double()
            for row, c in zip(rows, self.counts):
                counts[row] = float(c)
        packed = torch.cat([sums.flatten(), torch.tensor(counts, dtype=torch.float64).to(device)])
        dist.all_reduce(packed)
        n = packed[-len(union):]
        means = packed[:-len(union)].view(sums.shape) / n.clamp(min=1).view((-1,) + (1,) * len(shape))
        values, present = means.tolist(), (n > 0).tolist()
        return {k: v for k, v, ok in zip(union, values, present) if ok}


def _collective_device() -> torch.device:
    """Where the default process group's collectives take their tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def merge_accumulators(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The state of one accumulator holding all of `states`' samples (union of names)."""
    return merge_states(states)


class ShardWeightedScaler:
    """The trainer's loss scaler, plus each batch's shard weight n_r * world / n (1.0 when
    the slices are equal). Every backward pass goes through `scale`, so this is the one
    place the weight can be applied; everything else is the wrapped GradScaler's."""

    def __init__(self, scaler: torch.amp.GradScaler, trainer: Trainer, weights: list[float]):
        self.inner, self.trainer, self.weights = scaler, trainer, weights

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        w = self.weights[self.trainer.state.batch_in_epoch]  # the batch being trained on
        return self.inner.scale(loss if w == 1.0 else loss * w)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Average `params`' gradients over the processes: one all-reduce of which parameters
    have a gradient on any process (a step may leave some unused), one of the gradients
    flattened (zeros where a process has none), then each copied back."""
    trained = [p for p in params if p.requires_grad]
    if not trained:
        return
    device = trained[0].device
    present = torch.tensor([p.grad is not None for p in trained], dtype=torch.float32, device=device)
    dist.all_reduce(present)
    used = [p for p, n in zip(trained, present.tolist()) if n > 0]
    if not used:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in used]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(used, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).to(g.dtype)
        offset += n


def shard_weights(n: int, batch_size: int, drop_last: bool, rank: int, world: int) -> list[float]:
    """n_r * world / n for every batch of an epoch."""
    return [(hi - lo) * world / (ghi - glo) for (lo, hi), (glo, ghi) in
            zip(batch_bounds(n, batch_size, drop_last, rank, world), batch_bounds(n, batch_size, drop_last))]


def check_sizes(cfg: dict[str, Any], splits: Any, world: int) -> None:
    """Every process must get at least one sample of every training batch and of each
    evaluation split, and monitor only what every process sees (no diagnostic scalars);
    raises ConfigError (before any training) when not."""
    d, problems = cfg["data"], []
    if isinstance(splits.train, torch.utils.data.IterableDataset):
        raise ConfigError(f"data: dataset '{splits.meta.name}' is an iterable dataset, which cannot "
                          "be sharded over processes; return a map-style dataset for --nproc > 1")
    n = num_samples(splits.train)
    last = batch_bounds(n, d["batch_size"], d["drop_last"])[-1:]
    if last and last[0][1] - last[0][0] < world:
        size = last[0][1] - last[0][0]
        problems.append(f"data.batch_size: got {d['batch_size']}; the last batch of the {n} training "
                        f"samples holds {size}, fewer than the {world} processes. Set "
                        f"data.drop_last=true or pick a batch size that leaves at least {world}")
    for name, data in (("val", splits.val), ("test", splits.test)):
        if data is not None and num_samples(data) < world:
            problems.append(f"data: the {name} split holds {num_samples(data)} samples, fewer than the "
                            f"{world} processes")
    problems += [f"{where}: {name!r}: diagnostics run on rank 0 only, so every process could "
                 "not decide alike on it; monitor a train/, val/ or callback metric with --nproc"
                 for where, name in configured_monitors(cfg).items() if name.startswith("diag/")]
    if problems:
        raise ConfigError(problems)


class DistributedTrainer(Trainer):
    """`Trainer` for one rank of a data-parallel run (see the module docstring).

    Rank 0 alone gets a run folder, writers and diagnostics (the others are built with
    `run_dir=None` and a silent writer); every rank computes the same reduced metrics, so
    callbacks, schedulers and early stopping decide alike everywhere.
    """

    accumulator_type = ReducedAccumulator
    _requested: int | None = None   # this rank's stop signal, not yet agreed on
    _agreed: int | None = None      # the stop signal every rank agreed on
    _time_due = False
    _ranks: list[dict[str, Any]] | None = None

    def __init__(self, ctx: Context, cfg: dict[str, Any], splits: Any, model: torch.nn.Module,
                 *args: Any, **kwargs: Any):
        self.ctx = ctx
        super().__init__(cfg, splits, model, *args, shard=(ctx.rank, ctx.world), **kwargs)
        d = cfg["data"]
        weights = shard_weights(num_samples(splits.train), d["batch_size"], d["drop_last"], ctx.rank, ctx.world)
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        # a custom step averages at each optimizer step instead (see the module docstring)
        self.ddp = DistributedDataParallel(model, device_ids=ids) if self.user_step is None else None
        if self.ddp is not None:
            self.forward = torch.compile(self.ddp) if cfg["trainer"]["compile"] else self.ddp
        self.scaler = ShardWeightedScaler(self.scaler, self, weights)
        self.agreement = StepAgreement(ctx.control)
        self._requested = ctx.pending_signal

    # A signal handler sets `stop_signal` on one rank; the loop reads the agreed value.
    @property
    def stop_signal(self) -> int | None:
        """The stop signal all ranks agreed on at a step boundary (None before)."""
        return self._agreed

    @stop_signal.setter
    def stop_signal(self, signum: int | None) -> None:
        self._requested = signum

    def fit(self) -> dict[str, dict[str, float]]:
        """Train; on failure post it for the other ranks and carry the run's root cause."""
        try:
            summary = super().fit()
        except Interrupted:
            self.agreement.drain()
            raise
        except BaseException as e:
            e.run_error = self.ctx.report_failure(e)
            raise
        self.agreement.drain()
        return summary

    def step_optimizer(self, slot: Any) -> None:
        if self.ddp is None:
            average_gradients(slot.params, self.ctx.world)
        super().step_optimizer(slot)

    def maybe_checkpoint_steps(self) -> None:
        signum, self._time_due = self.agreement.exchange(self._requested or 0,
                                                         super().checkpoint_time_due())
        if signum:
            self._agreed = signum
        super().maybe_checkpoint_steps()

    def checkpoint_time_due(self) -> bool:
        return self._time_due

    # ------------------------------------------------------------------ checkpoints
    def rank_state(self) -> dict[str, Any]:
        """What differs between ranks: RNG streams and the not yet reduced metric sums."""
        return {"rng": ckpt.rng_state(), "window": self.window.state_dict(),
                "epoch_acc": self.epoch_acc.state_dict()}

    def save_checkpoint(self, also_best: bool = False) -> None:
        """Collective: every rank hands rank 0 its state, rank 0 writes the file(s)."""
        self._ranks = self.ctx.gather(self.rank_state())
        try:
            super().save_checkpoint(also_best)
        finally:
            self._ranks = None
        self._last_ckpt = time.monotonic()  # on every rank, so the time test stays alike

    def checkpoint(self) -> ckpt.Checkpoint:
        state = super().checkpoint()
        if self._ranks is not None:
            state.extra["ranks"] = self._ranks
        return state

    def load_checkpoint(self, state: ckpt.Checkpoint) -> None:
        """Each rank takes its own state back. Resumed with another number of processes
        (the data order does not depend on it), rank 0 takes all the metric sums."""
        super().load_checkpoint(state)
        t = state.trainer
        ranks = state.extra.get("ranks") or [{"rng": state.rng, "window": t["window"],
                                        "epoch_acc": t["epoch_acc"]}]
        if len(ranks) == self.ctx.world:
            mine = ranks[self.ctx.rank]
            ckpt.set_rng_state(mine["rng"])
        elif self.ctx.is_main:
            mine = {k: merge_accumulators([r[k] for r in ranks]) for k in ("window", "epoch_acc")}
        else:
            self.ctx.seed_rank(self.cfg["seed"] + state.step)
            self.window.reset()
            self.epoch_acc.reset()
            return
        self.window.load_state_dict(mine["window"], self.device)
        self.epoch_acc.load_state_dict(mine["epoch_acc"], self.device)
