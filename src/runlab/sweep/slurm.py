"""SLURM launcher: each job is a submitit job running the same `runlab train` command.

Jobs launched together go out as one job array (`executor.batch()`). On pre-emption or
timeout submitit calls `TrainCommand.checkpoint`: the training child gets SIGTERM (it
saves a checkpoint and stops) and the job is requeued with the same command, which
resumes from the run folder's checkpoint.

A job is one run on one node: with `gpus_per_run: k > 1` it asks for k GPUs and a single
task, which starts the run's k processes itself (`runlab train --nproc k`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from runlab.sweep.jobs import TRAIN_COMMAND, Job
from runlab.sweep.spec import Launcher

_STOP_GRACE_S = 60


class TrainCommand:
    """The callable submitit pickles: runs the training command, returns its exit code."""

    def __init__(self, cmd: list[str], log_path: str, env: dict[str, str]):
        self.cmd, self.log_path, self.env = cmd, log_path, env
        self._proc: subprocess.Popen | None = None

    def __call__(self) -> int:
        with open(self.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} start on "
                      f"{os.uname().nodename} (job {os.environ.get('SLURM_JOB_ID')})\n".encode())
            log.flush()
            self._proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL,
                                          env={**os.environ, **self.env})
            return self._proc.wait()

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Pre-empted: let the run checkpoint, then requeue the same command (it resumes)."""
        from submitit.helpers import DelayedSubmission

        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return DelayedSubmission(TrainCommand(self.cmd, self.log_path, self.env))

    def __getstate__(self) -> dict[str, Any]:
        return {"cmd": self.cmd, "log_path": self.log_path, "env": self.env, "_proc": None}


class SlurmHandle:
    """A submitted job; `poll()` gives the training command's exit code once it ended."""

    def __init__(self, job: Any, log_path: Path):
        self.job = job
        self.log_path = log_path

    def poll(self) -> int | None:
        if not self.job.done():
            return None
        try:
            return int(self.job.result())
        except Exception as e:  # noqa: BLE001 - a cancelled/failed job: keep the reason
            reason = str(e).strip().splitlines()
            with open(self.log_path, "a") as log:
                log.write(f"slurm job {self.job.job_id}: {reason[0] if reason else e!r}\n")
            return 1

    def terminate(self) -> None:
        if not self.job.done():
            self.job.cancel(check=False)

    kill = terminate


class SlurmLauncher:
    """Submits jobs through submitit with the sweep's partition, time, CPUs, GPUs, memory.

    Example:
        >>> launcher = SlurmLauncher("vae-beta", spec.launcher, Path("runs/sweeps/vae-beta"))
        >>> handles = launcher.launch(jobs)     # one job array
    """

    def __init__(self, sweep: str, cfg: Launcher, folder: Path,
                 train: tuple[str, ...] = TRAIN_COMMAND):
        import submitit

        self.sweep = sweep
        self.train = train
        self.nproc = cfg.gpus_per_run
        self.capacity = cfg.array_parallelism
        self.executor = submitit.AutoExecutor(folder=folder / "slurm" / "%j", cluster="slurm")
        self.executor.update_parameters(**job_parameters(sweep, cfg))
        threads = str(max(1, cfg.cpus_per_task // cfg.gpus_per_run))  # the run's processes share
        self.env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                    "PYTHONUNBUFFERED": "1"}

    def launch(self, jobs: list[Job]) -> list[SlurmHandle]:
        with self.executor.batch():
            submitted = [self.executor.submit(self._command(job)) for job in jobs]
        return [SlurmHandle(s, job.log_path) for s, job in zip(submitted, jobs, strict=True)]

    def release(self, handle: SlurmHandle) -> None:
        """Nothing to free: SLURM tracks its own slots."""

    def _command(self, job: Job) -> TrainCommand:
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        return TrainCommand(job.command(self.sweep, self.train, self.nproc), str(job.log_path),
                            self.env)


def job_parameters(sweep: str, cfg: Launcher) -> dict[str, Any]:
    """submitit parameters of the sweep's jobs: one task on one node per run, holding the
    run's `gpus_per_run` GPUs (else `gpus_per_job`, 0 = none) and `cpus_per_task` CPUs.

    >>> job_parameters("sw", Launcher(name="slurm", gpus_per_run=4))["gpus_per_node"]
    4
    """
    params: dict[str, Any] = {
        "name": sweep, "timeout_min": cfg.timeout_min, "cpus_per_task": cfg.cpus_per_task,
        "nodes": 1, "tasks_per_node": 1, "slurm_array_parallelism": cfg.array_parallelism,
    }
    gpus = cfg.gpus_per_run if cfg.gpus_per_run > 1 else cfg.gpus_per_job
    if gpus:
        params["gpus_per_node"] = gpus
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.mem_gb:
        params["mem_gb"] = cfg.mem_gb
    return params
