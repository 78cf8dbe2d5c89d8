"""One process's handle on a distributed run: the process group, its device, and the
small control protocol the ranks use besides gradient averaging.

- Gradients and metric sums travel on the default group (NCCL on GPUs, gloo on CPUs).
- Control messages (the run folder chosen by rank 0, per-rank checkpoint state, the
  step-boundary agreement) travel on a second, CPU-only gloo group, so that they never
  wait behind GPU work and work the same on every backend.
- A failure is posted to the rendezvous store (first poster wins), so rank 0 can record
  the root cause even when what it saw itself was only "peer closed the connection".
"""

from __future__ import annotations

import json
import os
import traceback
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from runlab.distributed.env import Rendezvous
from runlab.errors import ConfigError
from runlab.runs.checkpoint import seed_everything
from runlab.signals import remember_stop_signals


def pick_device(name: str, local_rank: int) -> torch.device:
    """`auto`/`cuda` mean this process's own GPU, cuda:LOCAL_RANK; else the CPU."""
    from runlab.train.build import resolve_device

    if name.startswith("cuda:"):
        raise ConfigError(f"trainer.device: got {name!r}, but each process of a distributed run "
                          "uses cuda:LOCAL_RANK. Use auto or cuda")
    device = resolve_device(name)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)  # so tensors sent to plain "cuda" land on this GPU
        return torch.device("cuda", local_rank)
    if device.type != "cpu":
        raise ConfigError(f"trainer.device: distributed training runs on cuda or cpu, not {device.type}")
    return device


class StepAgreement:
    """Every rank learns, at the same step, whether any rank got a stop signal or found a
    time-based checkpoint due. Each step boundary reads the all-reduce (MAX) started at the
    previous boundary and starts the next one, so nobody ever waits for it: the answer
    arrives one step late, on every rank alike."""

    def __init__(self, group: Any):
        self.group, self.work, self.flags = group, None, torch.zeros(2, dtype=torch.int64)

    def exchange(self, signum: int, due: bool) -> tuple[int, bool]:
        """Post this rank's (signal or 0, checkpoint due); get the agreed pair of the step before."""
        agreed = (0, False)
        if self.work is not None:
            self.work.wait()
            agreed = (int(self.flags[0]), bool(self.flags[1]))
        self.flags = torch.tensor([signum, int(due)], dtype=torch.int64)
        self.work = dist.all_reduce(self.flags, op=dist.ReduceOp.MAX, group=self.group, async_op=True)
        return agreed

    def drain(self) -> None:
        """Finish the exchange in flight (every rank started the same ones)."""
        if self.work is not None:
            self.work.wait()
            self.work = None


class Context:
    """This process's rank, device and process groups. Build it with `Context.start`."""

    def __init__(self, rv: Rendezvous, device: torch.device, control: Any):
        self.rank, self.world, self.local_rank = rv.rank, rv.world, rv.local_rank
        self.device, self.control = device, control
        self.backend = dist.get_backend()
        self.pending_signal: int | None = None  # a signal that came while no trainer listened
        self.failure: dict[str, Any] | None = None
        self._key = f"runlab/failure/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"

    @classmethod
    def start(cls, rv: Rendezvous, device_name: str) -> Context:
        device = pick_device(device_name, rv.local_rank)
        rv.export()
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rv.rank, world_size=rv.world,
                                device_id=device if device.type == "cuda" else None)
        return cls(rv, device, dist.new_group(backend="gloo"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, obj: Any = None) -> Any:
        """Rank 0's `obj`, on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` in rank order on rank 0; None elsewhere."""
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.control)
        return out

    def seed_rank(self, seed: int) -> None:
        """Rank 0 keeps the single-process random stream; the others get their own, so
        dropout masks and sampling noise are not copies across the global batch."""
        if not self.is_main:
            seed_everything((int(seed) * 1_000_003 + 7919 * self.rank) % 2**63)

    def report_failure(self, exc: BaseException) -> dict[str, Any]:
        """Post this rank's failure; return the run's root cause (the first one posted)."""
        if self.failure is not None:
            return self.failure
        mine = {"type": type(exc).__name__, "message": str(exc), "rank": self.rank,
                "traceback": "".join(traceback.format_exception(exc))}
        self.failure = mine
        try:
            store = dist.distributed_c10d._get_default_store()
            if store.add(self._key + "/count", 1) == 1:
                store.set(self._key, json.dumps(mine))
            else:
                store.wait([self._key], timedelta(seconds=10))
                self.failure = json.loads(store.get(self._key))
        except Exception:  # noqa: BLE001 - the store went down with its host: report our own
            pass
        return self.failure

    def hold_signals(self) -> None:
        """From now until the process exits, a stop signal outside training is remembered,
        never fatal: a worker that its launcher stops while it records a failure still
        finishes run.json and exits with its own code (the launcher SIGKILLs after 30 s)."""
        def remember(signum: int) -> None:
            self.pending_signal = signum

        remember_stop_signals(remember)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
