"""A real single-node SLURM cluster for tests (see SLURM_LOCAL.md), as a session fixture.

Installs `slurm-wlm munge` with apt-get when missing (skips, saying why, only if that
fails), starts munged, slurmctld and slurmd from a temporary slurm.conf, puts a `sacct`
stand-in first on PATH (there is no accounting database), and stops every daemon it
started by the pid in its pid file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SACCT = """#!/bin/sh
# sacct stand-in: answer `sacct -o JobID,State,NodeList --parsable2 -j ID ...` from squeue.
ids=""
while [ $# -gt 0 ]; do
  if [ "$1" = "-j" ]; then ids="$ids${ids:+,}$2"; shift; fi
  shift
done
echo "JobID|State|NodeList"
[ -n "$ids" ] && squeue -h -r -t all -j "$ids" -o "%i|%T|%N" 2>/dev/null
exit 0
"""


def _install() -> str | None:
    """None when SLURM is usable, else why not."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "SLURM is not installed and installing it needs root and apt-get"
    cmd = "apt-get install -y --no-install-recommends slurm-wlm munge"
    result = subprocess.run(cmd.split(), capture_output=True, text=True,
                            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if result.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        result = subprocess.run(cmd.split(), capture_output=True, text=True)
    if result.returncode != 0 or not shutil.which("slurmctld"):
        return f"`{cmd}` failed: {(result.stderr or result.stdout).strip()[-300:]}"
    return None


def _conf(folder: Path) -> str:
    host = socket.gethostname().split(".")[0]
    with open("/proc/meminfo") as f:
        mem_mb = int(f.readline().split()[1]) // 1024 - 1024
    return "\n".join([
        "ClusterName=runlab-test", f"SlurmctldHost={host}", "SlurmUser=root",
        "SlurmdUser=root", "AuthType=auth/munge", f"StateSaveLocation={folder}/state",
        f"SlurmdSpoolDir={folder}/spool", f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid", f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
        "MpiDefault=none", "SwitchType=switch/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "SchedulerParameters=batch_sched_delay=0",
        "ReturnToService=2", "MailProg=/bin/true",
        f"NodeName={host} CPUs=2 RealMemory={mem_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def _stop(pid_file: Path, timeout: float = 10.0) -> None:
    pid = _alive(pid_file)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid_file) == pid:
        time.sleep(0.1)


def _start_munge() -> Path | None:
    """Start munged unless it runs; its pid file when this call started it."""
    pid_file = Path("/run/munge/munged.pid")
    if _alive(pid_file):
        return None
    subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"],
                   check=True)
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
    return pid_file


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """Environment (SLURM_CONF, PATH) under which sbatch/submitit reach the local cluster."""
    reason = _install()
    if reason is not None:
        print(f"skipping SLURM tests: {reason}")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="runlab-slurm-"))
    for sub in ("state", "spool", "bin"):
        (folder / sub).mkdir()
    (folder / "slurm.conf").write_text(_conf(folder))
    sacct = folder / "bin" / "sacct"
    sacct.write_text(SACCT)
    sacct.chmod(0o755)
    env = {"SLURM_CONF": str(folder / "slurm.conf"),
           "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    munge = _start_munge()
    try:
        subprocess.run(["slurmctld"], check=True)
        subprocess.run(["slurmd"], check=True)
        _wait_idle()
        yield env
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True)
        for name in ("slurmd.pid", "slurmctld.pid"):
            _stop(folder / name)
        if munge is not None:
            _stop(munge)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(folder, ignore_errors=True)


def _wait_idle(timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        if out.stdout.strip() == "idle":
            return
        time.sleep(0.2)
    raise RuntimeError(f"SLURM node not idle after {timeout} s: {out.stdout or out.stderr}")
