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


FORKED_CHILD_AND_EXIT = """
import multiprocessing, sys
from runlab import background
background.submit(len, [1, 2]).result()  # the pool exists and is busy-free
child = multiprocessing.get_context("fork").Process(target=print, args=("child",))
child.start()
child.join()
print("child exit", child.exitcode, flush=True)
"""


def test_forked_children_and_exit_leave_the_pool_alone():
    """A DataLoader worker is a forked child: it inherits the pool's exit hook and must not
    act on the parent's pool (it failed with exit code 1 when it did); the parent's own
    exit ends the drawing workers without waiting for long."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", FORKED_CHILD_AND_EXIT], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "child exit 0" in done.stdout, done.stdout + done.stderr
