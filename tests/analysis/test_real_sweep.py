"""`runlab analyze` on a real sweep (2 settings x 3 seeds, trained by `runlab sweep`) prints
what a hand computation from the runs' metrics.csv gives; the sweep's summary.csv agrees."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest
import yaml
from scipy.stats import t

from runlab_testing import run_cli

pytestmark = pytest.mark.slow  # six real training runs

LRS = (0.01, 0.05)
SEEDS = 3
METRIC = "val/loss"
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/sweeps/real: optimizer.lr in LRS x SEEDS seeds of a tiny MLP on moons, on CPU."""
    root = tmp_path_factory.mktemp("real_sweep")
    base = {
        "name": "tiny",
        "data": {"name": "moons", "n_samples": 64, "batch_size": 16, "root": str(root / "data")},
        "model": {"name": "mlp", "hidden": [8]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "trainer": {"max_epochs": 2, "device": "cpu"},
        "logging": {"console": False},
    }
    sweep = {
        "base": "tiny.yaml", "name": "real", "method": "grid",
        "metric": {"name": METRIC, "goal": "minimize"}, "seeds": SEEDS,
        "parameters": {"optimizer.lr": list(LRS)}, "launcher": {"name": "local", "workers": 2},
    }
    (root / "tiny.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    result = run_cli("sweep", str(root / "sweep.yaml"), "--runs-dir", str(root / "runs"),
                     env=ENV, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "runs" / "sweeps" / "real"


def final_value(metrics_csv: Path, metric: str) -> float:
    """The metric's last row in a run's metrics.csv."""
    with open(metrics_csv, newline="") as f:
        values = [float(row["value"]) for row in csv.DictReader(f) if row["metric"] == metric]
    assert values, f"{metrics_csv} has no {metric} rows"
    return values[-1]


def by_hand(sweep: Path) -> dict[float, dict[str, float]]:
    """Per learning rate: n, mean, std (ddof 1), sem and the 95% t interval of the final
    val/loss, from each run folder's config.yaml and metrics.csv alone."""
    finals: dict[float, list[float]] = {}
    for run in sorted(p.parent for p in sweep.glob("*/metrics.csv")):
        lr = yaml.safe_load((run / "config.yaml").read_text())["optimizer"]["lr"]
        finals.setdefault(lr, []).append(final_value(run / "metrics.csv", METRIC))
    out = {}
    for lr, values in finals.items():
        n, mean, std = len(values), statistics.fmean(values), statistics.stdev(values)
        sem = std / math.sqrt(n)
        half = t.ppf(0.975, n - 1) * sem
        out[lr] = {"n": n, "mean": mean, "std": std, "sem": sem, "ci_low": mean - half,
                   "ci_high": mean + half}
    return out


def assert_matches(got: dict[str, float], want: dict[str, float]) -> None:
    assert int(got["n"]) == want["n"] == SEEDS
    for key in ("mean", "std", "sem", "ci_low", "ci_high"):
        assert float(got[key]) == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


def analyze(sweep: Path, fmt: str) -> str:
    result = run_cli("analyze", str(sweep), "--metric", METRIC, "--format", fmt, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_sweep_trained_every_setting_and_seed(sweep_dir: Path):
    infos = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/run.json"))]
    assert len(infos) == len(LRS) * SEEDS
    assert all(i["status"] == "completed" for i in infos)
    hand = by_hand(sweep_dir)
    assert sorted(hand) == list(LRS)
    assert all(row["std"] > 0 for row in hand.values())  # seeds really differ


def test_analyze_json_equals_the_hand_computation(sweep_dir: Path):
    records = json.loads(analyze(sweep_dir, "json"))
    hand = by_hand(sweep_dir)
    assert [r["optimizer.lr"] for r in records] == list(LRS)  # the one key that varies
    assert {k for r in records for k in r} >= {"n", "mean", "std", "sem", "ci_low", "ci_high"}
    for record in records:
        assert_matches(record, hand[record["optimizer.lr"]])


def test_analyze_csv_equals_the_hand_computation(sweep_dir: Path):
    rows = list(csv.DictReader(analyze(sweep_dir, "csv").splitlines()))
    hand = by_hand(sweep_dir)
    assert [float(r["optimizer.lr"]) for r in rows] == list(LRS)
    for row in rows:
        assert_matches(row, hand[float(row["optimizer.lr"])])


def test_analyze_table_shows_the_hand_computed_means(sweep_dir: Path):
    out = analyze(sweep_dir, "table")
    for row in by_hand(sweep_dir).values():
        for key in ("mean", "std", "ci_low", "ci_high"):
            assert f"{row[key]:.4g}" in out, (key, out)


def test_summary_csv_agrees(sweep_dir: Path):
    with open(sweep_dir / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    hand = by_hand(sweep_dir)
    assert [float(r["optimizer.lr"]) for r in rows] == list(LRS)
    for row in rows:
        assert row["seeds_done"] == "0 1 2" and row["failed_seeds"] == ""
        renamed = {**row, "ci_low": row["ci95_low"], "ci_high": row["ci95_high"]}
        assert_matches(renamed, hand[float(row["optimizer.lr"])])
