"""The drawing worker never outlives its run: a run killed with SIGKILL, even while the
worker is still starting, must not leave a process holding the run's output pipe (a
caller waiting for the run's output would wait forever)."""

from __future__ import annotations

import os
import subprocess
import sys

KILLED_WHILE_WORKER_STARTS = """
import os, signal
from runlab import background
background.prewarm()  # spawns the worker; its interpreter is still starting when we die
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_worker_exits_when_its_run_is_killed_while_it_starts():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WHILE_WORKER_STARTS], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # EOF on the pipe means every process that inherited it (worker, resource tracker) is gone.
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -9, out
