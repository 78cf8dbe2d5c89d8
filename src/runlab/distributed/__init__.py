"""Data-parallel training over several processes (torch.distributed, DDP).

- `launch`: `runlab train CONFIG --nproc N` (N local processes through torchrun's agent).
- `rendezvous_for`: is this process one rank of a run started by torchrun or `srun`?
- `torchrun_command` / `train_args`: the commands a launcher (sweeps) runs for a run
  that uses several devices.
- `worker.train`: what each rank does; `trainer.DistributedTrainer`: the loop.
"""

from __future__ import annotations

from typing import Any

from runlab.distributed.env import Rendezvous, rendezvous
from runlab.distributed.launch import launch, torchrun_command, train_args
from runlab.errors import ConfigError

__all__ = ["Rendezvous", "launch", "rendezvous_for", "torchrun_command", "train_args"]


def rendezvous_for(cfg: dict[str, Any]) -> Rendezvous | None:
    """This process's place in a distributed run, or None to train in one process.
    `trainer.strategy`: auto and ddp follow the environment (ddp in one process is plain
    training); single refuses to run as one of several processes."""
    rv = rendezvous()
    if rv is None or rv.world == 1:
        return None
    if cfg["trainer"]["strategy"] == "single":
        raise ConfigError(f"trainer.strategy: got 'single', but this process is rank {rv.rank} of "
                          f"{rv.world} (torchrun/SLURM). Use auto or ddp, or start one process")
    return rv
