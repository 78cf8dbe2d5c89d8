"""Matplotlib figures over a RunSet. Each function returns a `Figure` (no pyplot state)
and saves it when `save=` names a file. The figures show themselves in Jupyter as the
value of a cell (`_repr_png_`), with or without `%matplotlib inline`."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from runlab.analysis.grouping import aggregate, group_labels, resolve_group_keys, run_values
from runlab.analysis.importance import param_importance
from runlab.analysis.load import RunSet, as_text
from runlab.analysis.stats import t_critical
from runlab.metric_rules import mpl_text

PathLike = str | os.PathLike | None


class AnalysisFigure(Figure):
    """A Figure that Jupyter displays without pyplot or `%matplotlib inline`."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        return buf.getvalue()


def _finish(fig: Figure, save: PathLike) -> Figure:
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, bbox_inches="tight")
    return fig


def align_curves(
    series: Sequence[tuple[np.ndarray, np.ndarray]], grid_points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Put runs logged at different steps on one step grid: (grid, values (runs, grid)).

    Runs that share their steps are used as logged; otherwise each run is linearly
    interpolated onto the union of steps (thinned to `grid_points`), NaN outside its range.
    """
    steps = [s for s, _ in series]
    if all(len(s) == len(steps[0]) and np.array_equal(s, steps[0]) for s in steps):
        return steps[0], np.vstack([v for _, v in series])
    grid = np.unique(np.concatenate(steps))
    if len(grid) > grid_points:
        grid = np.unique(np.linspace(grid[0], grid[-1], grid_points).round().astype(np.int64))
    rows = [np.where((grid >= s[0]) & (grid <= s[-1]), np.interp(grid, s, v), np.nan)
            for s, v in series]
    return grid, np.vstack(rows)


def curve_band(values: np.ndarray, ci: float = 0.95) -> tuple[np.ndarray, ...]:
    """Mean and t-interval over runs (axis 0), ignoring NaNs: (mean, low, high, n)."""
    n = (~np.isnan(values)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(values, axis=0) / n
        sq = np.nansum((values - mean) ** 2, axis=0)
        sem = np.sqrt(sq / (n - 1)) / np.sqrt(n)
    half = t_critical(n, ci) * sem
    return mean, mean - half, mean + half, n


def _run_series(rs: RunSet, metric: str, x: str = "step") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    m = rs.metrics[rs.metrics["metric"] == metric]
    m = m.drop_duplicates(["run_id", x], keep="last").sort_values(["run_id", x])
    return {str(rid): (g[x].to_numpy(), g["value"].to_numpy())
            for rid, g in m.groupby("run_id", observed=True)}


def curve_bands(
    rs: RunSet, metric: str, by: str | Sequence[str] | None = None, ci: float = 0.95,
    grid_points: int = 200,
) -> list[dict]:
    """Per group: `label`, `n` runs, and on one step grid the `mean` with its `ci` band
    (`low`, `high`), as numpy arrays. What `plot_curves` and the report's interactive
    chart draw."""
    keys = resolve_group_keys(rs, by)
    runs = run_values(rs, metric).dropna(subset=["value"])
    series = _run_series(rs, metric, rs.rules.rule(metric).x_axis)
    out = []
    for label, ids in runs.groupby(group_labels(runs, keys), sort=True)["run_id"]:
        grid, values = align_curves([series[i] for i in ids], grid_points)
        mean, low, high, _ = curve_band(values, ci)
        out.append({"label": str(label), "n": len(ids), "step": grid, "mean": mean,
                    "low": low, "high": high})
    return out


def plot_curves(
    rs: RunSet,
    metric: str,
    by: str | Sequence[str] | None = None,
    ci: float = 0.95,
    grid_points: int = 200,
    log_y: bool = False,
    save: PathLike = None,
) -> Figure:
    """Learning curve of `metric` per group: mean over seeds with a `ci` band.

    Example:
        >>> plot_curves(rs, "val/loss", by="optimizer.lr", save="curves.png")
    """
    keys = resolve_group_keys(rs, by)
    runs = run_values(rs, metric).dropna(subset=["value"])
    x = rs.rules.rule(metric).x_axis
    series = _run_series(rs, metric, x)
    fig = AnalysisFigure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    if all(len(series[i][0]) == 1 for i in runs["run_id"]):  # test/*: one value per run
        _plot_points(ax, runs, group_labels(runs, keys), ci)
        ax.set(ylabel=mpl_text(metric),
               title=mpl_text(f"{metric}: runs, mean and {ci:.0%} CI over seeds"))
    else:
        for band in curve_bands(rs, metric, keys, ci, grid_points):
            (line,) = ax.plot(band["step"], band["mean"], lw=1.5,
                              marker="o" if len(band["step"]) < 3 else None,
                              label=mpl_text(f"{band['label']} (n={band['n']})"))
            ax.fill_between(band["step"], band["low"], band["high"], color=line.get_color(),
                            alpha=0.2, lw=0)
        ax.set(xlabel=x, ylabel=mpl_text(metric),
               title=mpl_text(f"{metric}: mean and {ci:.0%} CI over seeds"))
        _legend(ax)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return _finish(fig, save)


def plot_family(
    rs: RunSet,
    metrics: Sequence[str],
    family: str,
    ci: float = 0.95,
    grid_points: int = 200,
    save: PathLike = None,
) -> Figure:
    """Every member of a metric family (per-class accuracies, per-layer norms) in one
    figure: each member's mean over all runs with a `ci` band, one legend entry each.

    Example:
        >>> plot_family(rs, rs.match("val/acc_class/*"), "acc_class", save="classes.png")
    """
    fig = AnalysisFigure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    x = rs.rules.rule(metrics[0]).x_axis if metrics else "step"
    for metric in metrics:
        series = list(_run_series(rs, metric, x).values())
        if not series:
            continue
        grid, values = align_curves(series, grid_points)
        mean, low, high, _ = curve_band(values, ci)
        (line,) = ax.plot(grid, mean, lw=1.2, label=mpl_text(metric))
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.15, lw=0)
    ax.set(xlabel=x, ylabel=mpl_text(family),
           title=mpl_text(f"{family}: {len(metrics)} metrics, mean and {ci:.0%} CI over "
                          f"{len(rs)} runs"))
    ax.grid(alpha=0.3)
    _legend(ax)
    return _finish(fig, save)


def _plot_points(ax: Axes, runs: pd.DataFrame, labels: pd.Series, ci: float) -> None:
    """A metric logged once per run: each group's runs as dots, its mean with CI error bars."""
    groups = list(runs.groupby(labels, sort=True)["value"])
    for x, (label, values) in enumerate(groups):
        v = values.to_numpy(float)
        mean, low, high, _ = curve_band(v[:, None], ci)
        err = np.nan_to_num(np.vstack([mean - low, high - mean]))
        ax.errorbar([x], mean, yerr=err, marker="o", ms=7, capsize=5, lw=2,
                    label=mpl_text(f"{_short(str(label))} (n={len(v)})"))
        ax.scatter(np.full(len(v), x + 0.12), v, s=14, color="0.4", zorder=3)
    ax.set_xticks(range(len(groups)), [mpl_text(_short(str(lab), 24)) for lab, _ in groups],
                  rotation=20 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center",
                  fontsize=8)
    ax.set_xlim(-0.5, len(groups) - 0.5)


def _short(label: str, limit: int = 48) -> str:
    """Legend and tick labels stay readable: long ones are cut with an ellipsis."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _legend(ax: Axes) -> None:
    """To the right of the axes, so that it never covers the data; long labels are cut."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, [_short(lab) for lab in labels], fontsize="x-small",
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _wants_log(values: np.ndarray) -> bool:
    return bool(len(values) and (values > 0).all() and values.max() / values.min() >= 100)


def plot_metric_vs_param(
    rs: RunSet,
    metric: str,
    param: str,
    stat: str = "final",
    by: str | Sequence[str] | None = None,
    ci: float = 0.95,
    goal: str | None = None,
    save: PathLike = None,
) -> Figure:
    """`stat` of `metric` against `param`: group means with CI error bars, one line per
    combination of the other group keys (default: the other varying keys)."""
    others = [k for k in resolve_group_keys(rs, by) if k != param]
    table = aggregate(rs, metric, stat, by=[param, *others], ci=ci, goal=goal)
    fig = AnalysisFigure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    numeric = _numeric(table[param])
    if not numeric:
        positions = {v: i for i, v in enumerate(sorted(as_text(table[param]).unique()))}
        ax.set_xticks(list(positions.values()), list(positions))
    for label, g in table.groupby(group_labels(table, others), sort=True):
        x = (g[param] if numeric else as_text(g[param]).map(positions)).to_numpy(float)
        order = np.argsort(x)  # sorting x, not the column: it may mix numbers and text
        mean, low, high = (g[c].to_numpy()[order] for c in ("mean", "ci_low", "ci_high"))
        err = np.vstack([mean - low, high - mean])
        ax.errorbar(x[order], mean, yerr=np.nan_to_num(err), marker="o", capsize=3,
                    label=label if others else None)
    if numeric and _wants_log(table[param].to_numpy(float)):
        ax.set_xscale("log")
    ax.set(xlabel=mpl_text(param), ylabel=mpl_text(f"{metric} ({stat})"),
           title=mpl_text(f"{metric} ({stat}) vs {param}: mean and {ci:.0%} CI"))
    ax.grid(alpha=0.3)
    if others:
        _legend(ax)
    return _finish(fig, save)


def plot_parallel_coordinates(
    rs: RunSet,
    metric: str,
    params: Sequence[str] | None = None,
    stat: str = "final",
    goal: str | None = None,
    save: PathLike = None,
) -> Figure:
    """One line per run through its parameter values and final metric, coloured by the
    metric (brighter = better). Numeric axes spanning 2+ decades are log-scaled."""
    params = list(params) if params is not None else resolve_group_keys(rs, None)
    df = run_values(rs, metric, stat, goal).dropna(subset=["value"])
    axes = [*params, "value"]
    fig = AnalysisFigure(figsize=(max(6.4, 1.6 * len(axes)), 4.0))
    ax = fig.add_subplot()
    coords, ticks = [], []
    for name in axes:
        pos, labels = _axis_positions(df[name])
        coords.append(pos)
        ticks.append(labels)
    ys = np.vstack(coords).T  # (runs, axes) in [0, 1]
    better = df["value"].to_numpy(float)
    if rs.goal(metric, goal) == "minimize":
        better = -better
    span = np.ptp(better) if len(better) else 0.0
    shade = (better - better.min()) / span if span > 0 else np.full(len(better), 0.5)
    colours = colormaps["viridis"](shade)
    xs = np.arange(len(axes))
    for row, colour in zip(ys, colours, strict=True):
        ax.plot(xs, row, color=colour, alpha=0.7, lw=1.2)
    for x, labels in zip(xs, ticks, strict=True):
        ax.axvline(x, color="0.3", lw=0.8)
        for y, text in labels:
            ax.text(x + 0.03, y, text, fontsize=7, va="center")
    ax.set_xticks(xs, [*params, f"{metric} ({stat})"], rotation=15, fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(axes) - 0.6)
    mappable = ScalarMappable(Normalize(df["value"].min(), df["value"].max()),
                              "viridis_r" if rs.goal(metric, goal) == "minimize" else "viridis")
    fig.colorbar(mappable, ax=ax, label=mpl_text(metric))
    ax.set_title(f"{len(df)} runs")
    return _finish(fig, save)


def _axis_positions(values: pd.Series) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Map one column onto [0, 1]; return positions and a few (position, label) ticks."""
    if _numeric(values) and values.notna().all():
        v = values.to_numpy(float)
        t = np.log10(v) if _wants_log(v) else v
        lo, hi = t.min(), t.max()
        pos = (t - lo) / (hi - lo) if hi > lo else np.full(len(t), 0.5)
        return pos, [(0.0 if hi > lo else 0.5, f"{v.min():.3g}")] + (
            [(1.0, f"{v.max():.3g}")] if hi > lo else [])
    text = as_text(values)
    cats = sorted(text.unique())
    idx = text.map({c: i for i, c in enumerate(cats)}).to_numpy(float)
    scale = max(len(cats) - 1, 1)
    return idx / scale if len(cats) > 1 else np.full(len(idx), 0.5), [
        (i / scale if len(cats) > 1 else 0.5, c[:18]) for i, c in enumerate(cats)]


def plot_param_importance(
    rs: RunSet,
    metric: str,
    stat: str = "final",
    params: Sequence[str] | None = None,
    goal: str | None = None,
    save: PathLike = None,
) -> Figure:
    """Horizontal bars of `param_importance` (fANOVA share of the metric's variance)."""
    imp = param_importance(rs, metric, stat, params, goal).sort_values()
    fig = AnalysisFigure(figsize=(6.4, 0.5 + 0.45 * max(len(imp), 1)))
    ax = fig.add_subplot()
    ax.barh(imp.index, imp.to_numpy(), color="tab:blue")
    ax.set(xlabel="importance (fANOVA)", xlim=(0, 1),
           title=mpl_text(f"parameter importance for {metric} ({stat})"))
    return _finish(fig, save)
