"""End-of-run plots: one figure per metric family from a run's metrics.csv."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure

from runlab.metric_rules import MetricRules, file_stem, mpl_text

SPLITS = ("train", "val", "test")
X_COLUMNS = ("step", "epoch", "time")


def metric_family(metric: str, rules: MetricRules | None = None) -> str:
    """The file stem a metric is drawn in: its family (`metrics:` `family`, else
    `runlab.metric_rules.default_family`): the splits of one metric share a plot, and so do
    the members of a family (per-class, per-layer): train/loss, val/loss -> loss;
    val/acc_class/3 -> acc_class; diag/jacobian/encoder/frobenius -> diag-jacobian-encoder;
    hparam/beta -> hparam-beta."""
    return file_stem((rules or MetricRules()).family(metric))


def read_metrics(path: Path, x: str = "step") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric -> (x, values) from a long-format metrics.csv (step,epoch,time,metric,value);
    `x` is one of step, epoch, time. Quoted names (`,`, `"`, newlines) come back verbatim."""
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                point = (float(row[x]), float(row["value"]))
            except (TypeError, ValueError):  # a half-written last line of a running run
                continue
            points[row["metric"]].append(point)
    return {m: tuple(np.array(p).T) for m, p in points.items()}


def run_rules(run_dir: Path) -> MetricRules:
    """The run's metric rules: its config's `metrics:` section (and early stopping's mode)."""
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        cfg = None
    return MetricRules.from_config(cfg) if isinstance(cfg, dict) else MetricRules()


def plot_metrics(run_dir: Path) -> list[Path]:
    """Write `plots/<family>.png` for every metric family in run_dir/metrics.csv: one
    figure per family, one line per member with a legend (loss.png holds train/loss,
    train/loss_epoch, val/loss and test/loss; acc_class.png every class). x = optimiser
    step, or the family's `x_axis` (`metrics:`). Returns the written paths."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    rules = run_rules(run_dir)
    by_step = read_metrics(path)
    series = {"step": by_step, **{x: read_metrics(path, x) for x in X_COLUMNS[1:]
                                  if any(rules.rule(m).x_axis == x for m in by_step)}}
    families: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    x_of: dict[str, str] = {}
    for metric in sorted(series["step"], key=_order):
        family = rules.family(metric)
        x = x_of.setdefault(family, rules.rule(metric).x_axis)
        families[family][metric] = series[x][metric]
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for family, metrics in families.items():
        fig = Figure(figsize=(5.5, 3.5))
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.96)  # one draw, no layout pass
        ax = fig.add_subplot()
        for metric, (xs, values) in metrics.items():
            order = np.argsort(xs, kind="stable")
            style = "o-" if len(xs) <= 50 else "-"  # epoch-level series: show the points
            ax.plot(xs[order], values[order], style, markersize=3, linewidth=1.2,
                    label=mpl_text(metric))
        ax.locator_params(nbins=4)  # fewer tick labels: text is most of the drawing time
        ax.set_xlabel(x_of[family])
        ax.set_ylabel(mpl_text(family))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncols=1 + len(metrics) // 8)
        written.append(out / f"{file_stem(family)}.png")
        fig.savefig(written[-1], dpi=90)
    return written


def _order(metric: str) -> tuple[int, str]:
    """train, val, test, then the rest: the same colours in every family."""
    split = metric.split("/")[0]
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), metric)
