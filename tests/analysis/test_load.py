"""load_runs: discovery, filters, flattened config, long metrics, per-run summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from runlab.analysis import load_runs, metric_goal
from runlab.errors import ConfigError


def test_loads_every_status_but_running(sweep_dir):
    rs = load_runs(sweep_dir)
    assert len(rs) == 13
    assert set(rs.runs["status"]) == {"completed", "failed"}
    assert len(load_runs(sweep_dir, status="running")) == 1
    assert len(load_runs(sweep_dir, status=["completed"])) == 12
    assert len(load_runs(sweep_dir.parent.parent)) == 13  # the runs root finds the sweep too


def test_flattened_config_and_provenance(sweep_dir):
    rs = load_runs(sweep_dir, status="completed")
    row = rs.runs.set_index("run_id").iloc[0]
    assert {"model.width", "optimizer.lr", "data.root", "seed", "name"} <= set(rs.config_keys)
    assert row["model.hidden"] in ("[32, 32]", "[64, 64]")
    assert row["sweep.name"] == "demo" and row["git.commit"] == "0" * 40
    assert rs.metric_names == ["train/loss", "val/acc", "val/loss"]


@pytest.mark.parametrize("where", [
    {"optimizer.lr": 0.1, "model.width": 64},
    ["optimizer.lr=1.0e-1", "model.width=64"],
    lambda runs: (runs["optimizer.lr"] == 0.1) & (runs["model.width"] == 64),
])
def test_where_filters(sweep_dir, where):
    rs = load_runs(sweep_dir, where=where)
    assert len(rs) == 3
    assert set(rs.metrics["run_id"].astype(str)) == set(rs.runs["run_id"])


def test_where_list_value_and_unknown_key(sweep_dir):
    assert len(load_runs(sweep_dir, where="model.hidden=[64, 64]")) == 6
    with pytest.raises(ConfigError, match="Did you mean 'optimizer.lr'"):
        load_runs(sweep_dir, where="optimizer.lrr=0.1")
    with pytest.raises(ConfigError, match="unknown status"):
        load_runs(sweep_dir, status="done")
    with pytest.raises(ConfigError, match="no such file"):
        load_runs(sweep_dir / "nope")


def test_summaries_match_pandas(sweep_dir):
    rs = load_runs(sweep_dir, last_k=5)
    m = rs.metrics
    assert list(m.columns) == ["run_id", "step", "epoch", "time", "metric", "value"]
    assert len(m) == 12 * 3 * 20 + 3 * 5
    g = m.groupby(["run_id", "metric"], observed=True)["value"]
    expected = pd.DataFrame({"final": g.last(), "min": g.min(), "max": g.max(),
                             "mean_last": g.apply(lambda v: v.tail(5).mean())})
    got = rs.summaries.set_index(["run_id", "metric"]).loc[expected.index]
    for col in expected:
        np.testing.assert_allclose(got[col], expected[col], rtol=1e-12)
    loss = rs.summaries[rs.summaries["metric"] == "val/loss"]
    acc = rs.summaries[rs.summaries["metric"] == "val/acc"]
    assert (loss["best"] == loss["min"]).all() and (acc["best"] == acc["max"]).all()
    one = m[(m["run_id"] == loss["run_id"].iloc[0]) & (m["metric"] == "val/loss")]
    assert loss["best_step"].iloc[0] == one.loc[one["value"].idxmin(), "step"]


def test_goal_override_and_guess(sweep_dir):
    assert metric_goal("val/loss") == "minimize" and metric_goal("test/error") == "minimize"
    assert metric_goal("val/acc") == "maximize" and metric_goal("val/f1") == "maximize"
    rs = load_runs(sweep_dir, goals={"val/loss": "maximize"})
    loss = rs.summaries[rs.summaries["metric"] == "val/loss"]
    assert (loss["best"] == loss["max"]).all()


def test_partial_line_nan_final_and_differing_steps(tmp_path, make_run):
    a = make_run(tmp_path, "a", {"seed": 0}, {"val/loss": ([2, 4, 6], [1.0, 0.5, float("nan")])})
    with open(a / "metrics.csv", "a") as f:
        f.write("8,0,0.1,val/lo")  # a running run's half-flushed line
    make_run(tmp_path, "b", {"seed": 1}, {"val/loss": [3.0, 2.0], "lr": [0.1, 0.1]})
    rs = load_runs([a, tmp_path / rs_id(tmp_path, "b")])
    s = rs.summaries.set_index(["run_id", "metric"])
    row = s.loc[(rs.runs["run_id"][rs.runs["name"] == "a"].item(), "val/loss")]
    assert np.isnan(row["final"]) and row["min"] == 0.5 and row["final_step"] == 6
    assert row["n"] == 3 and row["mean_last"] == pytest.approx(0.75)
    assert len(rs.summaries) == 3


def rs_id(root, name):
    return next(p.name for p in root.iterdir() if p.name.startswith(f"{name}-"))


def test_summaries_do_not_depend_on_row_order(sweep_dir):
    """The general path (runs interleaved) agrees with the fast one (runs contiguous)."""
    from runlab.analysis.summary import summarize

    rs = load_runs(sweep_dir)
    shuffled = rs.metrics.sort_values(["step", "metric"], kind="stable")  # interleaves runs
    a = rs.summaries.set_index(["run_id", "metric"]).sort_index()
    b = summarize(shuffled, last_k=10).set_index(["run_id", "metric"]).sort_index()
    pd.testing.assert_frame_equal(a, b)


def test_running_run_with_stale_heartbeat_counts_as_crashed(tmp_path, make_run):
    import json

    folder = make_run(tmp_path, "gone", {"seed": 0}, {"val/loss": [1.0]}, status="running")
    info = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**info, "heartbeat": 0.0}))
    rs = load_runs(tmp_path)
    assert list(rs.runs["status"]) == ["crashed"]


def test_pandas_fallback_reads_like_pyarrow(tmp_path, make_run):
    from runlab.analysis import load

    folder = make_run(tmp_path, "a", {"seed": 0}, {"val/loss": [1.0, float("nan")], "lr": [0.1, 0.2]})
    with open(folder / "metrics.csv", "a") as f:
        f.write("3,0,0.03,val/loss,0.12")  # complete-looking fields, but no newline yet
    data = (folder / "metrics.csv").read_bytes()
    arrow = load._read_metrics(str(folder))
    pandas = load._read_csv_pandas(data[: data.rfind(b"\n") + 1])
    assert arrow.names == pandas.names == ["val/loss", "lr"] and len(arrow) == 4
    for col in ("step", "epoch", "time", "value"):
        np.testing.assert_array_equal(arrow.arrays[col], pandas.arrays[col])
    np.testing.assert_array_equal(arrow.metric, pandas.metric)


def test_a_metrics_summary_rule_is_the_default_statistic_and_agrees_with_run_json(tmp_path):
    """`metrics: {val/loss: {summary: mean_last_k, k: 3}, val/acc: {summary: best}}`: analysis
    compares runs by those values unless told otherwise, and they are run.json's."""
    import json

    from runlab.analysis.grouping import run_values
    from runlab.analysis.objective import objectives
    from runlab.metric_rules import MetricRules, summary_value
    from runlab.train.api import train
    from runlab_testing import tiny_config

    section = {"val/loss": {"summary": "mean_last_k", "k": 3}, "val/acc": {"summary": "best"}}
    cfg = tiny_config(tmp_path, metrics=section, trainer={"max_epochs": 6})
    assert train(cfg, tmp_path / "runs") == 0
    rs = load_runs(tmp_path / "runs")
    chosen = {o.metric: o.stat for o in objectives(rs, ["val/loss", "val/acc", "train/loss"])}
    assert chosen == {"val/loss": "mean_last", "val/acc": "best", "train/loss": "final"}
    (info,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("run.json")]
    rules = MetricRules(section)
    for metric, stat in chosen.items():
        ours = run_values(rs, metric, stat)["value"].iloc[0]
        assert ours == pytest.approx(summary_value(info["summary"][metric], rules.rule(metric)), abs=1e-12)
    losses = rs.metrics.query("metric == 'val/loss'")["value"].to_numpy()
    assert run_values(rs, "val/loss", "mean_last")["value"].iloc[0] == pytest.approx(losses[-3:].mean())
