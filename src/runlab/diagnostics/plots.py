"""End-of-run plots: one figure per metric family from a run's metrics.csv."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure

from runlab.metric_rules import MetricRules, file_stem, mpl_text

SPLITS = ("train", "val", "test")
X_COLUMNS = ("step", "epoch", "time")
Series = dict[str, tuple[np.ndarray, np.ndarray]]


def metric_family(metric: str, rules: MetricRules | None = None) -> str:
    """The file stem a metric is drawn in: its family (`metrics:` `family`, else
    `runlab.metric_rules.default_family`): the splits of one metric share a plot, and so do
    the members of a family (per-class, per-layer): train/loss, val/loss -> loss;
    val/acc_class/3 -> acc_class; diag/jacobian/encoder/frobenius -> diag-jacobian-encoder;
    hparam/beta -> hparam-beta."""
    return file_stem((rules or MetricRules()).family(metric))


def read_metrics(path: Path, x: str = "step") -> Series:
    """metric -> (x, values) from a long-format metrics.csv (step,epoch,time,metric,value);
    `x` is one of step, epoch, time. Quoted names (`,`, `"`, newlines) come back verbatim."""
    return _read(path, (x,))[0][x]


def _read(path: Path, xs: tuple[str, ...]) -> tuple[dict[str, Series], dict[int, float]]:
    """The series against each x column in `xs`, and where each epoch ends: {epoch e: the
    first step logged with e epochs done}, which is the step the end-of-epoch rows carry."""
    points: dict[str, dict[str, list[tuple[float, float]]]] = {x: defaultdict(list) for x in xs}
    ends: dict[int, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                value, step, epoch = float(row["value"]), float(row["step"]), int(float(row["epoch"]))
                at = {x: float(row[x]) for x in xs}
            except (TypeError, ValueError):  # a half-written last line of a running run
                continue
            for x in xs:
                points[x][row["metric"]].append((at[x], value))
            ends[epoch] = min(ends.get(epoch, step), step)
    return {x: {m: tuple(np.array(p).T) for m, p in pts.items()} for x, pts in points.items()}, ends


def run_rules(run_dir: Path) -> MetricRules:
    """The run's metric rules: its config's `metrics:` section (and early stopping's mode)."""
    cfg = _run_config(run_dir)
    return MetricRules.from_config(cfg) if isinstance(cfg, dict) else MetricRules()


def _run_config(run_dir: Path) -> Any:
    try:
        return yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def plot_metrics(run_dir: Path) -> list[Path]:
    """Write `plots/<family>.png` for every metric family in run_dir/metrics.csv: one
    figure per family, one line per member with a legend (loss.png holds train/loss,
    train/loss_epoch, val/loss and test/loss; acc_class.png every class). x = optimiser
    step below and epochs above, or the family's `x_axis` (`metrics:`); the run id is the
    title. An lr stepped per epoch is drawn as held since the previous logging point (a
    staircase of epochs, which is what it is); one stepped every step
    (`scheduler.interval: step`) as a line through the logged values. Returns the paths."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    rules = run_rules(run_dir)
    with open(path, newline="", encoding="utf-8") as f:
        names = {row["metric"] for row in csv.DictReader(f)}
    xs = tuple(x for x in X_COLUMNS if x == "step" or any(rules.rule(m).x_axis == x for m in names))
    series, ends = _read(path, xs)
    families: dict[str, Series] = defaultdict(dict)
    x_of: dict[str, str] = {}
    for metric in sorted(series["step"], key=_order):
        family = rules.family(metric)
        x = x_of.setdefault(family, rules.rule(metric).x_axis)
        families[family][metric] = series[x][metric]
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for family, metrics in families.items():
        written.append(out / f"{file_stem(family)}.png")
        family_figure(run_dir, family, metrics, x_of[family], ends).savefig(written[-1], dpi=90)
    return written


def family_figure(run_dir: Path, family: str, metrics: Series, x: str,
                  ends: dict[int, float]) -> Figure:
    """One family's curves: `x` below (epochs above when x is the step), the run id as
    the title."""
    fig = Figure(figsize=(5.5, 3.8))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.8)  # one draw, no layout pass
    ax = fig.add_subplot()
    for metric, (xs, values) in metrics.items():
        order = np.argsort(xs, kind="stable")
        style = "o-" if len(xs) <= 50 else "-"  # epoch-level series: show the points
        label, held = metric, False
        if metric == "lr":
            scheduler, interval = _lr_schedule(run_dir)
            label, held = f"lr ({scheduler})", interval != "step"
        ax.plot(xs[order], values[order], style, markersize=3, linewidth=1.2,
                label=mpl_text(label), drawstyle="steps-pre" if held else "default")
    ax.locator_params(nbins=4)  # fewer tick labels: text is most of the drawing time
    ax.set_xlabel(x)
    ax.set_ylabel(mpl_text(family))
    if x == "step":
        _epoch_axis(ax, ends)
    ax.set_title(mpl_text(run_dir.name), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=1 + len(metrics) // 8)
    return fig


def _lr_schedule(run_dir: Path) -> tuple[str, str]:
    """(legend text, interval) of the run's LR scheduler. An lr that changes only per
    epoch (or never) is drawn as held since the previous logging point, a staircase of
    epochs; one stepped every step as a line through the logged values."""
    cfg = _run_config(run_dir)
    if not isinstance(cfg, dict):
        return "as logged", "step"
    sched = cfg.get("scheduler")
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
