"""End-of-run plots: one figure per metric family from a run's metrics.csv."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

SPLITS = ("train", "val", "test")


def metric_family(metric: str) -> str:
    """The file stem a metric is drawn in. Splits of one metric share a plot, and so do
    the per-layer/per-map scalars of a diagnostic: train/loss, val/loss -> loss;
    lr -> lr; hparam/beta -> hparam-beta; diag/jacobian/encoder/frobenius and
    diag/jacobian/encoder/spectral -> diag-jacobian-encoder."""
    parts = metric.split("/")
    if parts[0] in SPLITS and len(parts) > 1:
        parts = parts[1:]
    elif parts[0] == "diag" and len(parts) > 3:
        parts = parts[:-1]
    return re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(parts)).strip("-.") or "metric"


def read_metrics(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric -> (steps, values) from a long-format metrics.csv (step,epoch,time,metric,value)."""
    return _read(path)[0]


def _read(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[int, float]]:
    """The series, and where each epoch ends: {epoch e: the first step logged with e
    epochs done}, which is the step the end-of-epoch rows carry."""
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    ends: dict[int, float] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                point = (float(row["step"]), float(row["value"]))
                epoch = int(float(row["epoch"]))
            except (TypeError, ValueError):  # a half-written last line of a running run
                continue
            points[row["metric"]].append(point)
            ends[epoch] = min(ends.get(epoch, point[0]), point[0])
    return {m: tuple(np.array(p).T) for m, p in points.items()}, ends


def plot_metrics(run_dir: Path) -> list[Path]:
    """Write `plots/<family>.png` for every metric family in run_dir/metrics.csv.

    Splits of one metric share an axis (loss.png holds train/loss, val/loss and
    test/loss), x = optimiser step below and epochs above; the run id is the title. An lr
    stepped per epoch is drawn as held since the previous logging point (a staircase of
    epochs, which is what it is); one stepped every step (`scheduler.interval: step`) as a
    line through the logged values. Returns the written paths.
    """
    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    series, ends = _read(path)
    families: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    for metric, points in sorted(series.items(), key=lambda kv: _order(kv[0])):
        families[metric_family(metric)][metric] = points
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for family, metrics in families.items():
        written.append(out / f"{family}.png")
        family_figure(run_dir, family, metrics, ends).savefig(written[-1], dpi=90)
    return written


def family_figure(run_dir: Path, family: str, metrics: dict[str, tuple[np.ndarray, np.ndarray]],
                  ends: dict[int, float]) -> Figure:
    """One family's curves: steps below, epochs above, the run id as the title."""
    fig = Figure(figsize=(5.5, 3.8))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.8)  # one draw, no layout pass
    ax = fig.add_subplot()
    for metric, (steps, values) in metrics.items():
        order = np.argsort(steps, kind="stable")
        style = "o-" if len(steps) <= 50 else "-"  # epoch-level series: show the points
        label, held = metric, False
        if metric == "lr":
            scheduler, interval = _lr_schedule(run_dir)
            label, held = f"lr ({scheduler})", interval != "step"
        ax.plot(steps[order], values[order], style, markersize=3, linewidth=1.2, label=label,
                drawstyle="steps-pre" if held else "default")
    ax.locator_params(nbins=4)  # fewer tick labels: text is most of the drawing time
    ax.set_xlabel("step")
    ax.set_ylabel(family)
    _epoch_axis(ax, ends)
    ax.set_title(run_dir.name, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=1 + len(metrics) // 8)
    return fig


def _lr_schedule(run_dir: Path) -> tuple[str, str]:
    """(legend text, interval) of the run's LR scheduler. An lr that changes only per
    epoch (or never) is drawn as held since the previous logging point, a staircase of
    epochs; one stepped every step as a line through the logged values."""
    import yaml

    try:
        sched = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("scheduler")
    except (OSError, yaml.YAMLError):
        return "as logged", "step"
    if not isinstance(sched, dict):
        return "no scheduler", "epoch"
    interval = str(sched.get("interval", "epoch"))
    return f"{sched.get('name')}, stepped every {interval}", interval


def _epoch_axis(ax, ends: dict[int, float]) -> None:
    """Epochs along the top, mapped from steps through the epochs' end steps."""
    mapping = epoch_mapping(ends)
    if mapping is None:
        return
    top = ax.secondary_xaxis("top", functions=mapping)
    top.set_xlabel("epoch", fontsize=8)
    top.tick_params(labelsize=7)


def epoch_mapping(ends: dict[int, float]) -> tuple[Callable, Callable] | None:
    """(step -> epoch, epoch -> step), piecewise linear through the epochs' end steps and
    extended beyond them at the first and the mean epoch length; None before an epoch ends."""
    b_epochs, b_steps = [0.0], [0.0]
    for e in sorted(e for e in ends if e >= 1):
        if ends[e] > b_steps[-1]:  # strictly increasing, or the inverse is not a function
            b_epochs.append(float(e))
            b_steps.append(ends[e])
    if len(b_steps) < 2:
        return None
    xs, ys = np.array(b_steps), np.array(b_epochs)
    first, mean = xs[1] / ys[1], xs[-1] / ys[-1]  # steps per epoch

    def to_epoch(step: Any) -> np.ndarray:
        step = np.asarray(step, dtype=float)
        return np.where(step < 0, step / first, np.where(
            step > xs[-1], ys[-1] + (step - xs[-1]) / mean, np.interp(step, xs, ys)))

    def to_step(epoch: Any) -> np.ndarray:
        epoch = np.asarray(epoch, dtype=float)
        return np.where(epoch < 0, epoch * first, np.where(
            epoch > ys[-1], xs[-1] + (epoch - ys[-1]) * mean, np.interp(epoch, ys, xs)))

    return to_epoch, to_step


def _order(metric: str) -> tuple[int, str]:
    """train, val, test, then the rest: the same colours in every family."""
    split = metric.split("/")[0]
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), metric)
