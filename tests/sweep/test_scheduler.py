"""Scheduling logic against the stand-in trainer: retries, failure isolation, claims, resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runlab.errors import ConfigError
from runlab.sweep import jobs, run_sweep

from .conftest import FAKE_TRAIN


def _summary(runs: Path, name: str = "sw") -> list[dict]:
    with open(runs / "sweeps" / name / "summary.csv") as f:
        return list(csv.DictReader(f))


def _attempts(runs: Path, name: str = "sw") -> dict[str, int]:
    return {p.parent.name: int(p.read_text())
            for p in (runs / "sweeps" / name).glob("*/attempts")}


def test_failing_setting_is_retried_and_isolated(make_sweep, fake_base, tmp_path, capsys):
    fake_base(fail=False)
    path = make_sweep(seeds=2, parameters={"fake.fail": [False, True]})
    runs = tmp_path / "runs"
    assert run_sweep(path, runs_dir=runs, train=FAKE_TRAIN, live=False) == 1
    assert _attempts(runs) == {"sw-s000-s0": 1, "sw-s000-s1": 1, "sw-s001-s0": 2,
                               "sw-s001-s1": 2}
    out = capsys.readouterr().out
    assert f"FAILED sw-s001-s0: RuntimeError: boom\n  run folder: {runs}/sweeps/sw/sw-s001-s0" \
        in out
    assert "retry 1 of 1" in out and "best: s000" in out
    rows = _summary(runs)
    assert [(r["setting"], r["n"], r["failed_seeds"]) for r in rows] == [
        ("s000", "2", ""), ("s001", "0", "0 1")]


def test_failed_once_succeeds_on_retry_and_the_rerun_does_nothing(make_sweep, fake_base,
                                                                  tmp_path, capsys):
    fake_base(fail_once=True)
    path = make_sweep(seeds=2)
    runs = tmp_path / "runs"
    assert run_sweep(path, runs_dir=runs, train=FAKE_TRAIN, live=False) == 0
    assert set(_attempts(runs).values()) == {2}
    capsys.readouterr()
    assert run_sweep(path, runs_dir=runs, train=FAKE_TRAIN, live=False) == 0
    assert set(_attempts(runs).values()) == {2}
    assert "4 of 4 runs already done" in capsys.readouterr().out


def test_two_sweep_processes_never_run_a_run_twice(make_sweep, fake_base, tmp_path):
    fake_base(epoch_s=0.15)
    path = make_sweep(parameters={"optimizer.lr": [0.001, 0.003, 0.01]}, seeds=2)
    runs = tmp_path / "runs"
    code = ("import sys, runlab.sweep.settings as s; s._validator = lambda: None\n"
            "from runlab.sweep import run_sweep\n"
            f"sys.exit(run_sweep({str(path)!r}, runs_dir={str(runs)!r}, "
            f"train={FAKE_TRAIN!r}))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert _attempts(runs) == {f"sw-s00{i}-s{k}": 1 for i in range(3) for k in range(2)}
    assert [r["n"] for r in _summary(runs)] == ["2", "2", "2"]
    assert all("best mean: s002" in out for out in outs)  # seeds overlap: a tie


def test_vectorize_trains_a_settings_seeds_in_one_process(make_sweep, fake_base, tmp_path,
                                                          monkeypatch, capsys):
    fake_base()
    monkeypatch.setattr(jobs, "_SEEDS_FLAG", {FAKE_TRAIN: True})
    runs = tmp_path / "runs"
    assert run_sweep(make_sweep(vectorize=True), runs_dir=runs, train=FAKE_TRAIN,
                     live=False) == 0
    logs = sorted(p.name for p in (runs / "sweeps" / "sw" / "logs").iterdir())
    assert logs == ["sw-s000-s0.log", "sw-s001-s0.log"]
    assert len(_attempts(runs)) == 6
    done = [line for line in capsys.readouterr().out.splitlines() if " completed" in line]
    timed = [line for line in done if "completed in" in line]  # one process, one wall time
    assert len(done) == 6 and len(timed) == 2
    assert all("(3 seeds trained together)" in line for line in timed)
    assert not any("eta" in line for line in timed)  # its other seeds are done too, not left


def test_random_search_runs_its_trials(make_sweep, fake_base, tmp_path):
    fake_base()
    path = make_sweep(method="random", trials=3, seeds=2, parameters={
        "optimizer.lr": {"distribution": "log_uniform", "min": 1.0e-3, "max": 1.0e-1}})
    runs = tmp_path / "runs"
    assert run_sweep(path, runs_dir=runs, train=FAKE_TRAIN, live=False) == 0
    rows = _summary(runs)
    assert [r["setting"] for r in rows] == ["s000", "s001", "s002"]
    assert all(r["n"] == "2" for r in rows)
    info = json.loads((runs / "sweeps" / "sw" / "sw-s001-s1" / "run.json").read_text())
    assert info["sweep"] == {"name": "sw", "setting": "s001", "trial": 1,
                             "params": {"optimizer.lr": float(rows[1]["optimizer.lr"])}}


def test_dry_run_lists_settings_and_runs_nothing(make_sweep, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert run_sweep(make_sweep(), runs_dir=runs, dry_run=True) == 0
    out = capsys.readouterr().out
    assert 's001  seeds 0,1,2  {"optimizer.lr": 0.01}' in out
    assert "2 settings x 3 seeds = 6 runs" in out
    assert not runs.exists()


def test_a_changed_search_space_is_not_mixed_into_an_old_sweep(make_sweep, fake_base,
                                                               tmp_path):
    fake_base()
    runs = tmp_path / "runs"
    assert run_sweep(make_sweep(seeds=1), runs_dir=runs, train=FAKE_TRAIN, live=False) == 0
    changed = make_sweep(seeds=1, parameters={"optimizer.lr": [0.01, 0.001]})
    with pytest.raises(ConfigError, match="different parameters"):
        run_sweep(changed, runs_dir=runs, train=FAKE_TRAIN, live=False)


def test_a_changed_base_config_is_named_key_by_key(make_sweep, fake_base, tmp_path):
    fake_base()
    runs = tmp_path / "runs"
    assert run_sweep(make_sweep(seeds=1), runs_dir=runs, train=FAKE_TRAIN, live=False) == 0
    changed = make_sweep(seeds=1, overrides={"trainer.max_epochs": 5, "model.dropout": 0.1})
    with pytest.raises(ConfigError) as err:
        run_sweep(changed, runs_dir=runs, train=FAKE_TRAIN, live=False)
    assert "different base config (model.dropout: '<absent>' -> 0.1; trainer.max_epochs: " \
        in str(err.value)
    assert "-> 5)" in str(err.value) and "base_hash" not in str(err.value)


def test_local_workers_get_their_own_gpu_and_a_share_of_the_cores(tmp_path, monkeypatch):
    from runlab.sweep.jobs import Job
    from runlab.sweep.local import LocalLauncher
    from runlab.sweep.settings import Setting

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    show = (sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], "
                                  "os.environ['OMP_NUM_THREADS'])")
    launcher = LocalLauncher("sw", workers=2, train=show)
    jobs_ = [Job(Setting(f"s{i}", {}), [0], [tmp_path / f"r{i}"], tmp_path / "c.yaml",
                 tmp_path / f"{i}.log") for i in range(2)]
    for handle in launcher.launch(jobs_):
        assert handle.proc.wait(30) == 0
    assert [(tmp_path / f"{i}.log").read_text().splitlines()[-1] for i in range(2)] == [
        "3 4", "5 4"]


def test_slot_gpus_gives_each_slot_its_own_consecutive_gpus():
    from runlab.sweep.local import slot_gpus

    gpus = ["0", "1", "2", "3", "4", "5"]
    assert [slot_gpus(gpus, s, 2) for s in range(4)] == ["0,1", "2,3", "4,5", "0,1"]
    assert [slot_gpus(gpus, s, 4) for s in range(2)] == ["0,1,2,3", "0,1,2,3"]
    assert [slot_gpus(["7", "3"], s) for s in range(3)] == ["7", "3", "7"]


def test_a_run_with_several_gpus_gets_its_slots_gpus_and_nproc(tmp_path, monkeypatch):
    from runlab.sweep.jobs import Job
    from runlab.sweep.local import LocalLauncher
    from runlab.sweep.settings import Setting

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    show = (sys.executable, "-c", "import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], "
                                  "os.environ['OMP_NUM_THREADS'], *sys.argv[-2:])")
    launcher = LocalLauncher("sw", workers=2, train=show, gpus_per_run=2)
    jobs_ = [Job(Setting(f"s{i}", {}), [0], [tmp_path / f"r{i}"], tmp_path / "c.yaml",
                 tmp_path / f"{i}.log") for i in range(2)]
    assert jobs_[0].command("sw", ("runlab", "train"), nproc=2)[-2:] == ["--nproc", "2"]
    assert "--nproc" not in jobs_[0].command("sw", ("runlab", "train"))
    for handle in launcher.launch(jobs_):
        assert handle.proc.wait(30) == 0
    assert [(tmp_path / f"{i}.log").read_text().splitlines()[-1] for i in range(2)] == [
        "0,1 2 --nproc 2", "2,3 2 --nproc 2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match="gpus_per_run: 2, but only 1 GPU"):
        LocalLauncher("sw", workers=1, train=show, gpus_per_run=2)


def test_gpus_per_run_never_groups_seeds_into_one_process(make_sweep, fake_base, tmp_path,
                                                         monkeypatch):
    fake_base()
    monkeypatch.setattr(jobs, "_SEEDS_FLAG", {FAKE_TRAIN: True})
    runs = tmp_path / "runs"
    path = make_sweep(seeds=2, launcher={"name": "local", "workers": 2, "gpus_per_run": 2})
    assert run_sweep(path, runs_dir=runs, train=FAKE_TRAIN, live=False) == 0
    logs = sorted(p.name for p in (runs / "sweeps" / "sw" / "logs").iterdir())
    assert logs == [f"sw-s00{i}-s{k}.log" for i in range(2) for k in range(2)]


def test_sigterm_stops_the_sweep_and_the_rerun_resumes(make_sweep, fake_base, tmp_path):
    fake_base(epoch_s=0.1)
    path = make_sweep(seeds=2, overrides={"trainer.max_epochs": 10})
    runs = tmp_path / "runs"
    code = ("import sys, runlab.sweep.settings as s; s._validator = lambda: None\n"
            "from runlab.sweep import run_sweep\n"
            f"sys.exit(run_sweep({str(path)!r}, runs_dir={str(runs)!r}, "
            f"train={FAKE_TRAIN!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    ckpt = runs / "sweeps" / "sw" / "sw-s000-s0" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 60
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130 and "run the same command again to resume" in out
    states = {n: i["status"] for n, i in _infos(runs).items()}
    assert "running" not in states.values()  # children were stopped, not orphaned
    assert run_sweep(path, runs_dir=runs, train=FAKE_TRAIN, live=False) == 0
    log = (runs / "sweeps" / "sw" / "sw-s000-s0" / "stdout.log").read_text()
    assert "resuming from epoch" in log


def _infos(runs: Path) -> dict[str, dict]:
    from runlab.runs.store import read_run

    return {p.name: read_run(p) for p in (runs / "sweeps" / "sw").glob("sw-*")}
