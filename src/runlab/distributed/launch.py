"""Starting a distributed run: `runlab train CONFIG --nproc N` runs torchrun's elastic
agent in this process, which starts N local workers, each `python -m runlab train CONFIG`
with RANK/WORLD_SIZE/... set. The agent forwards SIGINT/SIGTERM to the workers (they
checkpoint and stop together) and, when one fails, stops the rest: no worker outlives it.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

EXIT_FAILED = 1
LAUNCHER_PID_ENV = "RUNLAB_LAUNCHER_PID"
LAUNCHER_GONE_GRACE_S = 30.0
"""After the launcher dies, how long a worker may take to checkpoint and stop (SIGTERM)
before it exits at once."""


def watch_launcher() -> None:
    """In a worker started by `launch`: when the launcher process is gone (SIGKILL, OOM),
    stop like on SIGTERM (every worker sees it, so they checkpoint and stop together), and
    exit outright if that has not happened within `LAUNCHER_GONE_GRACE_S`. Without this
    the workers of a killed launcher train on as orphans."""
    import signal
    import threading
    import time

    launcher = os.environ.get(LAUNCHER_PID_ENV, "")
    if not launcher.isdigit() or os.name == "nt":
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(LAUNCHER_GONE_GRACE_S)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="runlab-launcher-watch", daemon=True).start()


def train_args(config: Path | str, overrides: list[str], runs_dir: Path | str,
               run_dir: Path | str | None = None, sweep_info: str | None = None,
               force: bool = False) -> list[str]:
    """The `runlab train` arguments every worker gets (no `--nproc`: each is one process)."""
    args = [str(config), *overrides, "--runs-dir", str(runs_dir)]
    if run_dir is not None:
        args += ["--run-dir", str(run_dir)]
    if sweep_info:
        args += ["--sweep-info", sweep_info]
    return args + (["--force"] if force else [])


def torchrun_command(args: list[str], nproc: int, nnodes: int = 1, rdzv_endpoint: str | None = None,
                     python: str = sys.executable) -> list[str]:
    """`torchrun ... -m runlab train ARGS`: one run over `nproc` processes on each of `nnodes`
    machines (a single machine by default; several meet at `rdzv_endpoint` host:port).

    >>> torchrun_command(["configs/quickstart.yaml"], 2)[-5:]
    ['--nproc-per-node=2', '-m', 'runlab', 'train', 'configs/quickstart.yaml']
    """
    rdzv = ["--standalone"] if nnodes == 1 and rdzv_endpoint is None else [
        f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    return [python, "-m", "torch.distributed.run", *rdzv, f"--nproc-per-node={nproc}",
            "-m", "runlab", "train", *args]


def launch(config: Path | str, overrides: list[str], nproc: int, runs_dir: Path | str,
           run_dir: Path | str | None = None, sweep_info: str | None = None,
           force: bool = False) -> int:
    """Train one run over `nproc` local processes; returns the exit code of the first
    process that failed (1 failed, 2 bad config, 128+N stopped by signal N), else 0."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: the workers share the cores
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())  # the workers stop when this process dies
    config_ = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                           rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    args = ["-m", "runlab", "train", *train_args(config, overrides, runs_dir, run_dir, sweep_info, force)]
    try:
        elastic_launch(config_, sys.executable)(*args)
    except ChildFailedError as e:
        # the first to end is the root cause; the agent then SIGTERMs the others
        code = e.get_first_failure()[1].exitcode
        return code if code > 0 else 128 - code
    except SignalException as e:
        return 128 + int(e.sigval)
    return 0
