"""Names that appear at runtime, end to end: a plugin logs per-class accuracies from a
callback, per-layer norms from a diagnostic, a loss term that exists only from epoch 2, a
term with per-batch names and names holding `,` `"` a newline `[x]` and `$`. Trained
single, `--seeds 3`, `--nproc 2` and in a sweep; every value round-trips through
metrics.csv, `load_runs`, `analyze` and the report; best agrees everywhere."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from runlab.analysis import load_runs
from runlab.analysis.report import write_report
from runlab_testing import run_cli

PLUGIN = Path(__file__).with_name("plugins") / "metric_zoo.py"
WEIRD = ("a,b", 'say "hi"', "two\nlines", "cell[x]", "cost $x$")
EPOCHS = 4


def write_config(tmp_path: Path, **sections) -> Path:
    cfg = {
        "name": "zoo", "seed": 0, "plugins": [str(PLUGIN)],
        "data": {"name": "moons", "n_samples": 64, "batch_size": 16,
                 "root": str(tmp_path / "data")},
        "model": {"name": "mlp", "hidden": [8]},
        "loss": {"name": "zoo_loss"},
        "optimizer": {"name": "adam", "lr": 1.0e-2},
        "trainer": {"max_epochs": EPOCHS, "device": "cpu", "test": False},
        "callbacks": [{"name": "class_acc"}],
        "diagnostics": [{"name": "layer_norms", "every": 1}],
        "logging": {"log_every_steps": 1, "console": True},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg[key], **value} if isinstance(cfg.get(key), dict) else value
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("run.json"))


def check_run(run_dir: Path, distributed: bool = False) -> dict:
    """Every dynamic name is in metrics.csv verbatim, with the values the plugin logged."""
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed", info.get("error")
    rows = csv_rows(run_dir)
    names = {r["metric"] for r in rows}
    for w in WEIRD:
        assert f"train/{w}" in names and f"val/{w}" in names and f"train/{w}_epoch" in names
        values = {float(r["value"]) for r in rows if r["metric"] == f"train/{w}"}
        assert values == {float(WEIRD.index(w))}
    assert {"train/part/0", "train/part/1", "train/part/2"} <= names  # per-batch names
    late = [r for r in rows if r["metric"] == "train/late"]
    assert late and {int(r["epoch"]) for r in late} == set(range(2, EPOCHS))
    assert {float(r["value"]) for r in late} == {0.25}
    assert {"val/acc_class/0", "val/acc_class/1", 'val/acc_class/odd[x],"q"'} <= names
    assert any(n.startswith("diag/layer_norms/") and n.endswith(".weight") for n in names)
    assert "diag/layer_norms/w[x],y" in names
    assert "train/loss_epoch" in names  # the epoch mean the console shows is logged
    if distributed:  # only rank 1's batches have it: the union of names, its own mean
        assert {float(r["value"]) for r in rows if r["metric"] == "train/rank1_only"} == {7.0}
    # run.json summary: every metric, best by its goal
    summary = info["summary"]
    assert set(summary) == names
    assert summary["val/acc_class/0"]["goal"] == "max" and summary["train/loss"]["goal"] == "min"
    assert summary["lr"]["goal"] == "none" and "best" not in summary["lr"]
    return info


def check_best_agrees(root: Path) -> None:
    """best in run.json == best by load_runs, for every metric of every run."""
    rs = load_runs(root)
    table = rs.summaries.set_index(["run_id", "metric"])
    for run_dir in run_dirs(root):
        info = json.loads((run_dir / "run.json").read_text())
        for metric, entry in info["summary"].items():
            row = table.loc[(info["id"], metric)]
            assert row["final"] == entry["final"], metric
            if "best" in entry:
                assert row["best"] == entry["best"], metric
            else:
                assert math.isnan(row["best"]), metric


@pytest.mark.slow
def test_single_run_everything_round_trips(tmp_path):
    config, runs = write_config(tmp_path), tmp_path / "runs"
    result = run_cli("train", str(config), "--runs-dir", str(runs), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = run_dirs(runs)
    info = check_run(run_dir)
    check_best_agrees(runs)
    stdout = (run_dir / "stdout.log").read_text()
    assert "train/loss_epoch" in stdout  # the console shows what was logged

    # one plot per family, with every member in it
    plots = {p.name for p in (run_dir / "plots").iterdir()}
    assert {"loss.png", "acc_class.png", "diag-layer_norms.png"} <= plots
    assert not any(p.startswith("acc_class-") for p in plots)

    # analyze: a glob gives one row per metric, values from the summaries
    out = run_cli("analyze", str(runs), "--metric", "val/acc_class/*", "--stat", "best",
                  "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = {r["metric"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"val/acc_class/0", "val/acc_class/1", 'val/acc_class/odd[x],"q"'}
    assert rows["val/acc_class/0"]["mean"] == info["summary"]["val/acc_class/0"]["best"]
    exact = run_cli("analyze", str(runs), "--metric", "train/cell[x]", "--format", "json")
    assert json.loads(exact.stdout)[0]["mean"] == 3.0  # an exact name is not a glob

    # runs show / runs list print names verbatim (no rich markup eaten)
    show = run_cli("runs", "show", str(run_dir))
    assert "train/cell[x]" in show.stdout and 'val/acc_class/odd[x],"q"' in show.stdout
    listed = run_cli("runs", "list", str(runs), "--sort", "train/cell[x]")
    assert listed.returncode == 0 and "train/cell[x]" in listed.stdout
    as_json = json.loads(run_cli("runs", "list", str(runs), "--json").stdout)
    assert as_json[0]["summary"] == info["summary"]  # runs list's best is run.json's

    # the report: html-escaped names, one section per family, train/loss not pushed out
    html = write_report(load_runs(runs), tmp_path / "r.html").read_text()
    assert "acc_class (3 metrics)" in html and "learning curve train/loss" in html
    assert "train/say &quot;hi&quot;" in html and 'say "hi"' not in html


@pytest.mark.slow
def test_seed_ensemble_round_trips(tmp_path):
    config, runs = write_config(tmp_path), tmp_path / "runs"
    result = run_cli("train", str(config), "--runs-dir", str(runs), "--seeds", "3", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    dirs = run_dirs(runs)
    assert len(dirs) == 3
    for d in dirs:
        check_run(d)
    check_best_agrees(runs)


@pytest.mark.slow
def test_two_processes_agree_on_the_union_of_names(tmp_path):
    config, runs = write_config(tmp_path), tmp_path / "runs"
    result = run_cli("train", str(config), "--runs-dir", str(runs), "--nproc", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = run_dirs(runs)
    check_run(run_dir, distributed=True)
    check_best_agrees(runs)


@pytest.mark.slow
def test_sweep_on_a_callback_metric_and_one_never_logged(tmp_path):
    config = write_config(tmp_path)
    runs = tmp_path / "runs"

    def sweep(name: str, metric: str):
        spec = {"base": str(config), "name": name, "metric": {"name": metric},
                "parameters": {"optimizer.lr": [0.01, 0.02]}, "seeds": 1,
                "launcher": {"name": "local", "workers": 2}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return run_cli("sweep", str(path), "--runs-dir", str(runs), timeout=600)

    ok = sweep("cls", "val/acc_class/1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with open(runs / "sweeps" / "cls" / "summary.csv") as f:
        assert [r["n"] for r in csv.DictReader(f)] == ["1", "1"]
    for d in run_dirs(runs / "sweeps" / "cls"):
        check_run(d)
    check_best_agrees(runs / "sweeps" / "cls")
    bad = sweep("typo", "val/acc_clas/1")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "'val/acc_clas/1': no completed run logged it" in bad.stdout
    assert "Did you mean 'val/acc_class/1'" in bad.stdout


def test_early_stopping_on_a_callback_metric_stops_when_it_should(tmp_path):
    """cb/score (goal max by the defaults) rises to 0.6 in epoch 2, then falls: with
    patience 2 the run stops after epoch 4 of 8, and best.pt holds epoch 2."""
    config = write_config(tmp_path, trainer={"max_epochs": 8, "early_stopping": {
        "monitor": "cb/score", "patience": 2}, "monitor": "cb/score"}, diagnostics=[],
        logging={"log_every_steps": 4, "console": False})
    runs = tmp_path / "runs"
    result = run_cli("train", str(config), "--runs-dir", str(runs),
                     env={"RUNLAB_TEST_SCORES": "0.5,0.6,0.55,0.52,0.9,0.9,0.9,0.9"})
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = run_dirs(runs)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["epoch"] == 4
    assert info["summary"]["cb/score"]["best"] == 0.6 and info["summary"]["cb/score"]["goal"] == "max"
    import torch

    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert best["epoch"] == 2


def test_a_monitor_nothing_logs_fails_at_the_first_validation_with_exit_2(tmp_path):
    config = write_config(tmp_path, trainer={"monitor": "val/acc_clas/0", "max_epochs": 3},
                          diagnostics=[], logging={"log_every_steps": 4, "console": False})
    runs = tmp_path / "runs"
    result = run_cli("train", str(config), "--runs-dir", str(runs))
    assert result.returncode == 2, result.stdout + result.stderr
    (run_dir,) = run_dirs(runs)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["epoch"] == 1
    message = info["error"]["message"]
    assert "trainer.monitor: 'val/acc_clas/0' was never logged" in message
    assert "Did you mean 'val/acc_class/0'" in message


def test_an_early_stopping_mode_against_the_declared_goal_is_refused_before_the_run(tmp_path):
    config = write_config(tmp_path, trainer={"early_stopping": {
        "monitor": "cb/score", "mode": "min"}}, metrics={"cb/*": {"goal": "max"}})
    runs = tmp_path / "runs"
    result = run_cli("train", str(config), "--runs-dir", str(runs))
    assert result.returncode == 2
    assert "trainer.early_stopping.mode: got 'min', but metrics: declares goal 'max'" in result.stderr
    assert not runs.exists() or not run_dirs(runs)
