"""`runlab sweep` end to end, driving the real CLI and the real trainer in subprocesses."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml


def sweep_cli(path: Path, runs: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runlab", "sweep", str(path), "--runs-dir",
                           str(runs), *args], capture_output=True, text=True, timeout=600, **kw)


def run_dirs(runs: Path, name: str) -> dict[str, dict]:
    """run.json of every run folder of the sweep, by folder name."""
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted((runs / "sweeps" / name).glob("*/run.json"))}


def metric_rows(run_dir: Path) -> list[tuple[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [(r["step"], r["metric"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_grid_sweep_runs_every_setting_and_seed_once(make_sweep, tmp_path):
    path, runs = make_sweep(), tmp_path / "runs"
    first = sweep_cli(path, runs)
    assert first.returncode == 0, first.stdout + first.stderr
    infos = run_dirs(runs, "sw")
    assert sorted(infos) == [f"sw-s00{i}-s{k}" for i in range(2) for k in range(3)]
    assert all(i["status"] == "completed" and i["id"] == name for name, i in infos.items())
    assert infos["sw-s001-s2"]["sweep"] == {"name": "sw", "setting": "s001", "trial": 1,
                                            "params": {"optimizer.lr": 0.01}}
    assert infos["sw-s001-s2"]["seed"] == 2
    with open(runs / "sweeps" / "sw" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["setting"], r["optimizer.lr"], r["n"], r["seeds_done"]) for r in rows] == [
        ("s000", "0.001", "3", "0 1 2"), ("s001", "0.01", "3", "0 1 2")]
    values = [infos[f"sw-s000-s{k}"]["summary"]["val/loss"]["final"] for k in range(3)]
    assert float(rows[0]["mean"]) == pytest.approx(sum(values) / 3)
    assert re.search(r"^best( mean)?: s00", first.stdout, re.M)
    resolved = yaml.safe_load((runs / "sweeps" / "sw" / "sweep.yaml").read_text())
    assert resolved["seeds"] == [0, 1, 2] and resolved["method"] == "grid"

    again = sweep_cli(path, runs)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "6 of 6 runs already done" in again.stdout and "completed in" not in again.stdout
    assert run_dirs(runs, "sw") == infos  # nothing rerun: every run.json untouched


def test_one_real_run_then_the_rerun_does_nothing(make_sweep, tmp_path):
    path, runs = make_sweep(seeds=1, parameters={"optimizer.lr": [0.01]}), tmp_path / "runs"
    first = sweep_cli(path, runs)
    assert first.returncode == 0, first.stdout + first.stderr
    (info,) = run_dirs(runs, "sw").values()
    assert info["status"] == "completed" and info["id"] == "sw-s000-s0"
    assert info["sweep"]["setting"] == "s000" and "val/loss" in info["summary"]
    again = sweep_cli(path, runs)
    assert "1 of 1 runs already done" in again.stdout and "completed in" not in again.stdout
    assert run_dirs(runs, "sw") == {"sw-s000-s0": info}


@pytest.mark.slow
def test_gpus_per_run_trains_every_run_over_that_many_processes(make_sweep, tmp_path):
    """On CPU `gpus_per_run: 2` means two gloo processes per run, one run per seed."""
    path = make_sweep(seeds=2, parameters={"optimizer.lr": [0.01]},
                      launcher={"name": "local", "workers": 1, "gpus_per_run": 2})
    runs = tmp_path / "runs"
    result = sweep_cli(path, runs)
    assert result.returncode == 0, result.stdout + result.stderr
    infos = run_dirs(runs, "sw")
    assert sorted(infos) == ["sw-s000-s0", "sw-s000-s1"]
    for name, info in infos.items():
        assert info["status"] == "completed" and info["seed"] == int(name[-1])
        assert info["distributed"] == {"world_size": 2, "backend": "gloo"}
    logs = sorted(p.name for p in (runs / "sweeps" / "sw" / "logs").iterdir())
    assert logs == ["sw-s000-s0.log", "sw-s000-s1.log"]  # one process group per seed


def test_bad_sweep_file_exits_2_with_every_problem(make_sweep, tmp_path):
    path = make_sweep(metod="tpe", parameters={"optimizer.lrr": [1.0], "model.hidden": [[-3]]})
    result = sweep_cli(path, tmp_path / "runs")
    assert result.returncode == 2
    assert "Did you mean 'method'?" in result.stderr
    assert "optimizer.lrr: unknown parameter of adam" in result.stderr
    assert "Did you mean 'lr'?" in result.stderr
    assert not (tmp_path / "runs").exists()


def _descendants(pid: int) -> list[int]:
    """Pids of every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


@pytest.mark.slow
def test_killed_sweep_resumes_its_runs_instead_of_restarting_them(make_sweep, tmp_path,
                                                                  base_config):
    cfg = yaml.safe_load(base_config.read_text())
    cfg["trainer"]["max_epochs"] = 150
    cfg["model"]["dropout"] = 0.2  # the members' shared random stream must continue exactly
    base_config.write_text(yaml.safe_dump(cfg))
    path, runs = make_sweep(seeds=2), tmp_path / "runs"
    cmd = [sys.executable, "-m", "runlab", "sweep", str(path), "--runs-dir", str(runs)]
    sweep = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    folder = runs / "sweeps" / "sw"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for a run with a checkpoint, mid-training
        infos = run_dirs(runs, "sw")
        mid = [n for n, i in infos.items() if i["status"] == "running"
               and (folder / n / "checkpoints" / "last.pt").exists() and i.get("epoch", 0) >= 2]
        if mid:
            break
        time.sleep(0.2)
    assert mid, "no run reached a checkpoint"
    victims = [sweep.pid, *_descendants(sweep.pid)]
    os.killpg(sweep.pid, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    sweep.wait()
    before = run_dirs(runs, "sw")
    interrupted = [n for n, i in before.items() if i["status"] != "completed"]
    done_before = {n: i["ended"] for n, i in before.items() if i["status"] == "completed"}

    result = sweep_cli(path, runs)
    assert result.returncode == 0, result.stdout + result.stderr
    after = run_dirs(runs, "sw")
    assert sorted(after) == [f"sw-s00{i}-s{k}" for i in range(2) for k in range(2)]
    assert all(i["status"] == "completed" for i in after.values())
    assert {n: after[n]["ended"] for n in done_before} == done_before  # not rerun
    for name in mid:
        assert name in interrupted and after[name]["id"] == before[name]["id"] == name
        assert "runlab: resumed at epoch" in (folder / name / "stdout.log").read_text()
    for name in after:
        rows = metric_rows(folder / name)
        assert len(rows) == len(set(rows)), f"{name}: duplicate metric rows after resume"

    # every run equals its twin in the same sweep run without a kill, bit for bit
    assert sweep_cli(path, tmp_path / "ref").returncode == 0
    twins = run_dirs(tmp_path / "ref", "sw")
    for name, info in after.items():
        assert info["summary"] == twins[name]["summary"], name
        ours, theirs = (torch.load(r / "sweeps" / "sw" / name / "checkpoints" / "last.pt",
                                   weights_only=True)["model"] for r in (runs, tmp_path / "ref"))
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name


@pytest.mark.slow
def test_tpe_sweep_proposes_the_same_settings_twice(make_sweep, tmp_path):
    path = make_sweep(method="tpe", trials=2, seeds=1, seed=3, parameters={
        "optimizer.lr": {"distribution": "log_uniform", "min": 1.0e-4, "max": 1.0e-1}})
    params = []
    for runs in (tmp_path / "a", tmp_path / "b"):
        result = sweep_cli(path, runs)
        assert result.returncode == 0, result.stdout + result.stderr
        params.append([i["sweep"]["params"] for i in run_dirs(runs, "sw").values()])
    assert params[0] == params[1] and len(params[0]) == 2
