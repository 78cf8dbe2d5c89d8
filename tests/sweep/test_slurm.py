"""The SLURM launcher on a real single-node SLURM cluster started by the test fixture."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from runlab.sweep.jobs import Job
from runlab.sweep.settings import Setting
from runlab.sweep.slurm import SlurmLauncher, TrainCommand, job_parameters
from runlab.sweep.spec import Launcher

from .conftest import FAKE_TRAIN
from .test_e2e import run_dirs, sweep_cli


@pytest.mark.slurm
def test_slurm_launcher_runs_a_sweep_on_local_slurm(slurm_cluster, make_sweep, tmp_path):
    path = make_sweep(seeds=2, launcher={"name": "slurm", "partition": "debug",
                                         "timeout_min": 10, "cpus_per_task": 1,
                                         "array_parallelism": 4})
    runs = tmp_path / "runs"
    result = sweep_cli(path, runs)
    assert result.returncode == 0, result.stdout + result.stderr
    infos = run_dirs(runs, "sw")
    assert sorted(infos) == [f"sw-s00{i}-s{k}" for i in range(2) for k in range(2)]
    assert all(i["status"] == "completed" for i in infos.values())
    logs = (runs / "sweeps" / "sw" / "logs" / "sw-s000-s0.log").read_text()
    assert "(job " in logs  # ran inside a SLURM job
    again = sweep_cli(path, runs)
    assert "4 of 4 runs already done" in again.stdout


def test_preempted_job_stops_its_run_and_requeues_the_same_command(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"optimizer": {"lr": 0.01}, "trainer": {"max_epochs": 20},
                               "fake": {"epoch_s": 0.05}}))
    run_dir = tmp_path / "run"
    cmd = [*FAKE_TRAIN, str(cfg), "seed=0", "--run-dir", str(run_dir), "--sweep-info", "{}"]
    job = TrainCommand(cmd, str(tmp_path / "log"), {})
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(job()))
    thread.start()
    while not (run_dir / "checkpoints" / "last.pt").exists():
        time.sleep(0.05)
    again = job.checkpoint()
    thread.join(30)
    assert codes == [-signal.SIGTERM]
    assert again.function.cmd == cmd and again.function._proc is None
    assert again.function() == 0  # the requeued command resumes and finishes
    assert "resuming from epoch" in (run_dir / "stdout.log").read_text()


def test_a_run_with_several_gpus_is_one_task_holding_them_all(tmp_path):
    cfg = Launcher(name="slurm", gpus_per_run=4, cpus_per_task=8, partition="gpu")
    params = job_parameters("sw", cfg)
    assert params["gpus_per_node"] == 4 and params["tasks_per_node"] == 1
    assert params["nodes"] == 1 and params["slurm_partition"] == "gpu"
    assert job_parameters("sw", Launcher(name="slurm", gpus_per_job=1))["gpus_per_node"] == 1
    assert "gpus_per_node" not in job_parameters("sw", Launcher(name="slurm"))

    launcher = SlurmLauncher("sw", cfg, tmp_path)
    sbatch = launcher.executor._executor.parameters  # what submitit turns into #SBATCH lines
    assert (sbatch["gpus_per_node"], sbatch["ntasks_per_node"], sbatch["nodes"]) == (4, 1, 1)
    job = Job(Setting("s000", {}), [0], [tmp_path / "r"], tmp_path / "c.yaml", tmp_path / "log")
    command = launcher._command(job)
    assert command.cmd[-2:] == ["--nproc", "4"] and "seed=0" in command.cmd
    assert command.env["OMP_NUM_THREADS"] == "2"  # 8 CPUs shared by the run's 4 processes
