"""Per-run metric summaries (final, min, max, best, mean of the last k) and metric goals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from runlab.metric_rules import GOAL_ALIASES, MetricRules

STATS = ("final", "min", "max", "best", "mean_last")
# The per-run statistic that a metric's `summary:` rule (runlab.metric_rules) stands for.
RULE_STATS = {"final": "final", "best": "best", "mean_last_k": "mean_last"}
_DEFAULTS = MetricRules()


def resolve_goal(name: str, goal: str | None = None, goals: dict[str, str] | None = None) -> str:
    """"min", "max" or "none" for a metric: `goal` when given, else `goals[name]` (as
    recorded in run.json or declared by `metrics:`, see `load_runs`), else the defaults of
    `runlab.metric_rules` (the one goal rule)."""
    chosen = goal or (goals or {}).get(name) or _DEFAULTS.goal(name) or "none"
    if str(chosen).lower() not in GOAL_ALIASES:
        raise ValueError(f"goal must be one of min, max, minimize, maximize, none; got {chosen!r}")
    return GOAL_ALIASES[str(chosen).lower()]


def metric_goal(name: str, goal: str | None = None, goals: dict[str, str] | None = None) -> str:
    """"minimize" or "maximize": the direction to rank a metric's values in (see
    `resolve_goal`; metrics without a goal, lr and hparams, rank as minimize).

    >>> metric_goal("val/loss"), metric_goal("val/acc")
    ('minimize', 'maximize')
    """
    return "maximize" if resolve_goal(name, goal, goals) == "max" else "minimize"


def summarize(
    metrics: pd.DataFrame, last_k: int = 10, goals: dict[str, str] | None = None,
    rules: MetricRules | None = None,
) -> pd.DataFrame:
    """Summarise a long metrics table into one row per (run_id, metric).

    `metrics` has columns run_id, metric (categoricals), step, value, rows in logging order
    within a run. `final` is the last logged value (NaN if the run last logged NaN);
    `best` is min or max by the metric's goal (`goals`, else `runlab.metric_rules`' defaults;
    NaN for metrics without a goal: lr, hparams); `mean_last` the mean of the last k
    values, k from the metric's `summary: mean_last_k` rule in `rules`, else `last_k`.
    """
    goals = goals or {}
    cols = ["run_id", "metric", "final", "min", "max", "best", "mean_last",
            "final_step", "best_step", "n"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    run_codes = metrics["run_id"].cat.codes.to_numpy()
    metric_codes = metrics["metric"].cat.codes.to_numpy()
    n_runs = len(metrics["run_id"].cat.categories)
    key = metric_codes.astype(np.int64) * n_runs + run_codes
    order = _group_order(run_codes, metric_codes, key)
    key = key[order]
    values = metrics["value"].to_numpy(np.float64)[order]
    steps = metrics["step"].to_numpy(np.int64)[order]

    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    lengths = ends - starts
    vmin = np.fmin.reduceat(values, starts)
    vmax = np.fmax.reduceat(values, starts)
    metric_cats = metrics["metric"].cat.categories
    group_metric = metric_cats[key[starts] // n_runs]
    ks = np.array([_window(rules, m, last_k) for m in metric_cats], dtype=np.int64)[key[starts] // n_runs]
    mean_last = _mean_of_last(values, starts, ends, ks)
    goal = np.array([resolve_goal(m, goals=goals) for m in metric_cats])[key[starts] // n_runs]
    best = np.where(goal == "min", vmin, np.where(goal == "max", vmax, np.nan))
    best_step = _first_step_equal(values, steps, starts, lengths, best)

    run_cats = metrics["run_id"].cat.categories
    return pd.DataFrame({
        "run_id": pd.Categorical(run_cats[key[starts] % n_runs], categories=run_cats),
        "metric": pd.Categorical(group_metric, categories=metric_cats),
        "final": values[ends - 1],
        "min": vmin,
        "max": vmax,
        "best": best,
        "mean_last": mean_last,
        "final_step": steps[ends - 1],
        "best_step": best_step,
        "n": lengths,
    })


def _group_order(run_codes: np.ndarray, metric_codes: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Stable permutation that sorts rows by `key` (metric-major), keeping logging order.

    When each run's rows are contiguous and in run order (as `load_runs` builds them), a
    stable sort on the small metric codes alone gives the same order, and numpy does that
    with a linear-time radix sort instead of an n log n merge sort.
    """
    if metric_codes.dtype.itemsize <= 2 and (np.diff(run_codes) >= 0).all():
        return np.argsort(metric_codes, kind="stable")
    return np.argsort(key, kind="stable")


def _window(rules: MetricRules | None, metric: str, last_k: int) -> int:
    """How many last values `mean_last` averages for `metric` (see `summarize`)."""
    rule = rules.rule(metric) if rules is not None else None
    return max(1, rule.k) if rule is not None and rule.summary == "mean_last_k" else last_k


def _mean_of_last(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, k: np.ndarray) -> np.ndarray:
    """NaN-ignoring mean of the last k[g] values of each group g."""
    idx = ends[:, None] - np.arange(int(k.max(initial=1)), 0, -1)  # (groups, max k): last rows
    first = np.maximum(starts, ends - k)[:, None]
    window = np.where(idx >= first, values[np.maximum(idx, 0)], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as they should
        return np.nanmean(window, axis=1)


def _first_step_equal(
    values: np.ndarray, steps: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    """Step of the first value in each group equal to that group's target (-1 if none)."""
    hits = np.flatnonzero(values == np.repeat(target, lengths))
    first = np.searchsorted(hits, starts)
    out = np.full(len(starts), -1, dtype=np.int64)
    ok = first < len(hits)
    idx = hits[np.minimum(first, len(hits) - 1)] if len(hits) else np.zeros_like(starts)
    ok &= idx < starts + lengths
    out[ok] = steps[idx[ok]]
    return out
