"""Where this process sits in a distributed run, read from the environment.

torchrun (and `runlab train --nproc N`, which starts torchrun's agent) exports RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. A SLURM job step started by `srun`
with several tasks exports SLURM_PROCID, SLURM_STEP_NUM_TASKS and SLURM_LOCALID instead: the
rendezvous is then on the step's first node, on a port derived from the job id.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

SLURM_PORT_BASE = 15000


@dataclass(frozen=True)
class Rendezvous:
    """This process's rank, the number of processes, and where they meet."""

    rank: int
    world: int
    local_rank: int
    master_addr: str
    master_port: int

    def export(self) -> None:
        """Set the variables `torch.distributed`'s `env://` initialisation reads."""
        os.environ.update(RANK=str(self.rank), WORLD_SIZE=str(self.world),
                          LOCAL_RANK=str(self.local_rank), MASTER_ADDR=self.master_addr,
                          MASTER_PORT=str(self.master_port))


def rendezvous(environ: Mapping[str, str] = os.environ) -> Rendezvous | None:
    """torchrun's variables, else a multi-task SLURM step's, else None (one process).

    Only `srun` sets SLURM_STEP_NUM_TASKS, so a batch script's own shell (one task) never
    counts as a distributed run even when the job asked for several tasks."""
    if "WORLD_SIZE" in environ and "RANK" in environ:
        return Rendezvous(int(environ["RANK"]), int(environ["WORLD_SIZE"]),
                          int(environ.get("LOCAL_RANK", "0")), environ.get("MASTER_ADDR", "127.0.0.1"),
                          int(environ.get("MASTER_PORT", "29500")))
    if int(environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1 and "SLURM_PROCID" in environ:
        nodes = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST", "127.0.0.1")
        port = environ.get("MASTER_PORT") or SLURM_PORT_BASE + int(environ.get("SLURM_JOB_ID", "0")) % 20000
        return Rendezvous(int(environ["SLURM_PROCID"]), int(environ["SLURM_STEP_NUM_TASKS"]),
                          int(environ.get("SLURM_LOCALID", "0")),
                          environ.get("MASTER_ADDR") or first_host(nodes), int(port))
    return None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM nodelist: `gpu[03-05,9],cpu1` -> `gpu03`."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if m is None:
        raise ValueError(f"cannot read a host from the SLURM nodelist {nodelist!r}")
    prefix, ranges = m.groups()
    return prefix + (ranges.split(",")[0].split("-")[0] if ranges else "")
