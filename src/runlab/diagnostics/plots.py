"""End-of-run plots: one figure per metric family from a run's metrics.csv."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

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
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                point = (float(row["step"]), float(row["value"]))
            except (TypeError, ValueError):  # a half-written last line of a running run
                continue
            points[row["metric"]].append(point)
    return {m: tuple(np.array(p).T) for m, p in points.items()}


def plot_metrics(run_dir: Path) -> list[Path]:
    """Write `plots/<family>.png` for every metric family in run_dir/metrics.csv.

    Splits of one metric share an axis (loss.png holds train/loss, val/loss and
    test/loss), x = optimiser step. Returns the written paths.
    """
    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    families: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    for metric, series in sorted(read_metrics(path).items(), key=lambda kv: _order(kv[0])):
        families[metric_family(metric)][metric] = series
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for family, metrics in families.items():
        fig = Figure(figsize=(5.5, 3.5))
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.96)  # one draw, no layout pass
        ax = fig.add_subplot()
        for metric, (steps, values) in metrics.items():
            order = np.argsort(steps, kind="stable")
            style = "o-" if len(steps) <= 50 else "-"  # epoch-level series: show the points
            ax.plot(steps[order], values[order], style, markersize=3, linewidth=1.2, label=metric)
        ax.locator_params(nbins=4)  # fewer tick labels: text is most of the drawing time
        ax.set_xlabel("step")
        ax.set_ylabel(family)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncols=1 + len(metrics) // 8)
        written.append(out / f"{family}.png")
        fig.savefig(written[-1], dpi=90)
    return written


def _order(metric: str) -> tuple[int, str]:
    """train, val, test, then the rest: the same colours in every family."""
    split = metric.split("/")[0]
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), metric)
