"""Figures: curve alignment, CI bands, metric vs parameter, parallel coordinates, importance."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from runlab.analysis import (
    load_runs,
    param_importance,
    plot_curves,
    plot_metric_vs_param,
    plot_parallel_coordinates,
    plot_param_importance,
)
from runlab.analysis.plots import align_curves, curve_band


def test_align_same_steps_keeps_them():
    s = np.array([10, 20, 30])
    grid, values = align_curves([(s, np.array([1.0, 2, 3])), (s, np.array([3.0, 2, 1]))])
    assert list(grid) == [10, 20, 30] and values.shape == (2, 3)


def test_align_different_steps_interpolates_inside_each_range():
    a = (np.array([0, 10, 20]), np.array([0.0, 1.0, 2.0]))
    b = (np.array([5, 15]), np.array([10.0, 20.0]))
    grid, values = align_curves([a, b])
    assert list(grid) == [0, 5, 10, 15, 20]
    np.testing.assert_allclose(values[0], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(values[1], [np.nan, 10, 15, 20, np.nan])
    grid, _ = align_curves([(np.arange(0, 1000), np.zeros(1000)), b], grid_points=50)
    assert len(grid) <= 50 and grid[0] == 0 and grid[-1] == 999


def test_curve_band_matches_scipy_per_step():
    values = np.array([[1.0, 2.0, np.nan], [2.0, 2.5, 3.0], [1.5, 4.0, 5.0]])
    mean, low, high, n = curve_band(values)
    assert list(n) == [3, 3, 2]
    for j in range(3):
        v = values[:, j][~np.isnan(values[:, j])]
        ref = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
        np.testing.assert_allclose([low[j], high[j]], ref, atol=1e-9)


def test_curves_one_band_per_group(sweep_dir, tmp_path):
    rs = load_runs(sweep_dir, status="completed")
    out = tmp_path / "curves.png"
    fig = plot_curves(rs, "val/loss", by="optimizer.lr", save=out)
    assert isinstance(fig, Figure) and out.stat().st_size > 1000
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "optimizer.lr=0.01 (n=6)", "optimizer.lr=0.1 (n=6)"]
    assert len(ax.collections) == 2  # the CI bands
    line = ax.lines[0]
    m = rs.metrics.merge(rs.runs[["run_id", "optimizer.lr"]], on="run_id")
    m = m[(m["metric"] == "val/loss") & (m["optimizer.lr"] == 0.01)]
    np.testing.assert_allclose(line.get_ydata(), m.groupby("step")["value"].mean())


def test_metric_vs_param_error_bars(sweep_dir):
    rs = load_runs(sweep_dir, status="completed")
    fig = plot_metric_vs_param(rs, "val/loss", "optimizer.lr", stat="best")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "optimizer.lr" and len(ax.containers) == 2  # one line per width
    fig = plot_metric_vs_param(rs, "val/loss", "model.hidden", by=["model.hidden"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["[32, 32]", "[64, 64]"]


def test_parallel_coordinates_and_importance(sweep_dir, tmp_path):
    rs = load_runs(sweep_dir, status="completed")
    fig = plot_parallel_coordinates(rs, "val/loss", save=tmp_path / "pc.svg")
    assert len(fig.axes[0].lines) == 12 + 3 and (tmp_path / "pc.svg").exists()  # runs + axes
    imp = param_importance(rs, "val/loss")
    assert set(imp.index) == {"optimizer.lr", "model.width"}
    assert imp.sum() == pytest.approx(1.0) and imp.idxmax() == "optimizer.lr"
    assert len(plot_param_importance(rs, "val/loss").axes[0].patches) == 2


def test_heterogeneous_runs(tmp_path, make_run):
    """Runs of different models: a key holding numbers and lists, and keys some runs lack."""
    from runlab.analysis import aggregate, write_report

    configs = [{"model": {"name": "mlp", "hidden": 128}},
               {"model": {"name": "vae", "hidden": [256, 128], "latent_dim": 8}},
               {"model": {"name": "cnn", "channels": [16, 32]}}]
    for i, cfg in enumerate(configs):
        for seed in range(2):
            make_run(tmp_path, f"m{i}", {"seed": seed, **cfg}, {"val/loss": [1.0, 0.5 + i + seed]})
    rs = load_runs(tmp_path)
    table = aggregate(rs, "val/loss", by="model.hidden")
    assert list(table["n"]) == [2, 2, 2]
    fig = plot_metric_vs_param(rs, "val/loss", "model.hidden", by=["model.hidden"])
    assert {t.get_text() for t in fig.axes[0].get_xticklabels()} == {"128", "[256, 128]", "none"}
    plot_parallel_coordinates(rs, "val/loss")
    assert param_importance(rs, "val/loss").sum() == pytest.approx(1.0)
    assert "none" in write_report(rs, tmp_path / "r.html").read_text(encoding="utf-8")


def test_metric_logged_once_is_drawn_as_points_with_error_bars(tmp_path, make_run):
    """test/acc has one value per run: no empty axes, a mean with CI bars per group."""
    values = {0.01: [0.80, 0.82, 0.81], 0.1: [0.90, 0.86, 0.88]}
    for lr, accs in values.items():
        for seed, acc in enumerate(accs):
            make_run(tmp_path, f"lr{lr}", {"seed": seed, "optimizer": {"lr": lr}},
                     {"val/acc": [0.5, acc], "test/acc": ([20], [acc])})
    fig = plot_curves(load_runs(tmp_path), "test/acc")
    ax = fig.axes[0]
    assert len(ax.containers) == 2  # one errorbar per group
    for container, accs in zip(ax.containers, values.values(), strict=True):
        line, _, (bars,) = container
        assert line.get_marker() == "o"
        assert line.get_ydata()[0] == pytest.approx(np.mean(accs))
        low, high = stats.t.interval(0.95, 2, loc=np.mean(accs), scale=stats.sem(accs))
        np.testing.assert_allclose(bars.get_segments()[0][:, 1], [low, high], atol=1e-9)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["optimizer.lr=0.01",
                                                             "optimizer.lr=0.1"]


def test_legends_sit_outside_the_axes_and_long_labels_are_cut(tmp_path, make_run):
    for seed in range(2):
        for w in (1, 2):
            make_run(tmp_path, f"w{w}", {"seed": seed, "model": {"name": "x" * 80 + str(w)}},
                     {"val/loss": [1.0, 0.5 + seed + w]})
    fig = plot_curves(load_runs(tmp_path), "val/loss")
    legend = fig.axes[0].get_legend()
    assert legend.get_bbox_to_anchor().x0 > fig.axes[0].get_window_extent().x1 - 1
    assert all(len(t.get_text()) <= 48 for t in legend.get_texts())
