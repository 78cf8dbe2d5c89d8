"""Local launcher: N worker slots on this machine, each run in its own subprocess.

Each child gets `OMP_NUM_THREADS = max(1, cores // (workers * gpus_per_run))` so processes
do not fight over cores, and, when GPUs are visible, its slot's GPUs via CUDA_VISIBLE_DEVICES
(`gpus_per_run` of them; a run with several is started with `--nproc`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from runlab.errors import ConfigError
from runlab.sweep.jobs import TRAIN_COMMAND, Job


class LocalHandle:
    """A running child process; `poll()` gives its exit code once it ended."""

    def __init__(self, proc: subprocess.Popen, slot: int):
        self.proc = proc
        self.slot = slot

    def poll(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


class LocalLauncher:
    """Runs jobs as subprocesses, at most `workers` at a time, each over `gpus_per_run`
    processes (and as many GPUs, when there are GPUs).

    Example:
        >>> launcher = LocalLauncher("vae-beta", workers=2, gpus_per_run=2)
        >>> handle = launcher.launch([job])[0]; handle.poll()
    """

    def __init__(self, sweep: str, workers: int = 1, train: tuple[str, ...] = TRAIN_COMMAND,
                 use_gpus: bool = True, gpus_per_run: int = 1):
        self.sweep = sweep
        self.capacity = workers
        self.train = train
        self.gpus_per_run = gpus_per_run
        self.gpus = visible_gpus() if use_gpus else []
        if 0 < len(self.gpus) < gpus_per_run:
            raise ConfigError(f"launcher.gpus_per_run: {gpus_per_run}, but only "
                              f"{len(self.gpus)} GPU(s) are visible ({','.join(self.gpus)}); "
                              "lower gpus_per_run or make more GPUs visible")
        self.threads = max(1, _cores() // (workers * gpus_per_run))
        self._slots: dict[int, LocalHandle] = {}

    def launch(self, jobs: list[Job]) -> list[LocalHandle]:
        return [self._start(job) for job in jobs]

    def release(self, handle: LocalHandle) -> None:
        self._slots.pop(handle.slot, None)

    def _start(self, job: Job) -> LocalHandle:
        slot = next(i for i in range(self.capacity + 1) if i not in self._slots)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads),
               "MKL_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = slot_gpus(self.gpus, slot, self.gpus_per_run)
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} start\n".encode())
            log.flush()
            proc = subprocess.Popen(job.command(self.sweep, self.train, self.gpus_per_run),
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, pass_fds=job.claims,
                                    start_new_session=True)
        handle = LocalHandle(proc, slot)
        self._slots[slot] = handle
        return handle


def slot_gpus(gpus: list[str], slot: int, per_run: int = 1) -> str:
    """CUDA_VISIBLE_DEVICES for worker `slot`: its own `per_run` consecutive GPUs of `gpus`
    (slot s gets gpus[s*k:(s+1)*k]); more slots than whole groups share them round-robin.

    >>> slot_gpus(["0", "1", "2", "3"], 1, per_run=2)
    '2,3'
    """
    start = slot % (len(gpus) // per_run) * per_run
    return ",".join(gpus[start:start + per_run])


def visible_gpus() -> list[str]:
    """GPU ids children may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, ln in enumerate(out.stdout.splitlines()) if ln.startswith("GPU ")]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

