"""Seed aggregation and group comparisons over a `RunSet`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from runlab.analysis.load import (
    PROVENANCE,
    RunSet,
    as_text,
    unknown_key_message,
    values_equal,
)
from runlab.analysis.stats import (
    BEST,
    TIE,
    WORSE,
    bootstrap_ci,
    compare,
    compare_to_best,
    holm,
    t_critical,
)
from runlab.analysis.summary import STATS, metric_goal
from runlab.errors import ConfigError

# Config keys that differ between runs without defining a setting: identity, where files
# live, what is recorded and how often (lists of diagnostics/callbacks, logging, checkpoints).
EXCLUDED_GROUP_KEYS = ("seed", "name", "plugins", "defaults", "diagnostics", "callbacks",
                       "data.root", "trainer.device", "trainer.compile")
EXCLUDED_GROUP_PREFIXES = ("logging.", "diagnostics.", "callbacks.", "trainer.checkpoint_every")


def is_hyperparameter(key: str) -> bool:
    """False for config keys that never define a setting (see EXCLUDED_GROUP_KEYS)."""
    return not (key in EXCLUDED_GROUP_KEYS or key.endswith(".seed") or key in PROVENANCE
                or key.startswith(EXCLUDED_GROUP_PREFIXES))


def default_group_keys(rs: RunSet) -> list[str]:
    """The sweep's parameters when the runs come from one sweep; otherwise the config keys
    whose value varies across the runs, minus seed/name and keys that are not
    hyperparameters (`diagnostics`, `logging.*`, `data.root`, ...).

    A key that splits the runs exactly like an earlier one (`model.hidden` following
    `model.width`) is left out: it would only repeat the same grouping.
    """
    from runlab.analysis.objective import sweep_parameters

    keys: list[str] = []
    partitions: set[tuple[int, ...]] = set()
    candidates = sweep_parameters(rs)
    for key in rs.config_keys if candidates is None else candidates:
        if not is_hyperparameter(key):
            continue
        codes, uniques = pd.factorize(as_text(rs.runs[key]))
        if len(uniques) > 1 and tuple(codes) not in partitions:
            partitions.add(tuple(codes))
            keys.append(key)
    return keys


def check_metric(rs: RunSet, metric: str) -> None:
    """Raise ConfigError naming the closest metric names when `metric` was never logged."""
    if metric not in rs.metric_names:
        raise ConfigError(unknown_key_message(metric, rs.metric_names, "metric"))


def resolve_group_keys(rs: RunSet, by: str | Sequence[str] | None) -> list[str]:
    """`by` as a checked list of run-table columns; None means `default_group_keys`."""
    if by is None:
        return default_group_keys(rs)
    keys = [by] if isinstance(by, str) else list(by)
    problems = [unknown_key_message(k, list(rs.config_keys), "group-by key")
                for k in keys if k not in rs.runs.columns]
    if problems:
        raise ConfigError(problems)
    return keys


def run_values(
    rs: RunSet, metric: str, stat: str = "final", goal: str | None = None
) -> pd.DataFrame:
    """The runs table plus a `value` column: `stat` of `metric` per run (NaN if never logged).

    `stat` is one of final, min, max, best, mean_last; `best` follows `goal`, else the
    metric's goal in `rs.goals` (NaN for metrics without one: lr, hparams).
    """
    if stat not in STATS:
        raise ConfigError(f"unknown stat {stat!r}. Allowed: {', '.join(STATS)}")
    check_metric(rs, metric)
    summ = rs.summaries[rs.summaries["metric"] == metric]
    if stat == "best" and goal is not None:
        column = "min" if rs.goal(metric, goal) == "minimize" else "max"
    else:
        column = stat  # `best` as load_runs computed it, by the metric's recorded goal
    values = pd.Series(summ[column].to_numpy(), index=summ["run_id"].astype(str).to_numpy())
    return rs.runs.assign(value=rs.runs["run_id"].map(values).astype(float))


def aggregate(
    rs: RunSet,
    metric: str,
    stat: str = "final",
    by: str | Sequence[str] | None = None,
    ci: float = 0.95,
    goal: str | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group (default: every varying config key except seed): n, mean, std, sem,
    ci_low/ci_high (t-distribution), median, min, max; with `bootstrap=B` also
    boot_low/boot_high (percentile bootstrap of the mean over B resamples).

    Example:
        >>> aggregate(rs, "val/acc", stat="best", by="optimizer.lr")
    """
    keys = resolve_group_keys(rs, by)
    df = run_values(rs, metric, stat, goal)
    df = df[df["value"].notna()]
    if not keys:
        df = df.assign(_all="all")
    groups = df.groupby(keys or ["_all"], dropna=False, sort=True)["value"]
    out = groups.agg(["count", "mean", "std", "median", "min", "max"])
    out = out.rename(columns={"count": "n"})
    out.insert(3, "sem", out["std"] / np.sqrt(out["n"]))
    half = t_critical(out["n"].to_numpy(), ci) * out["sem"].to_numpy()
    out.insert(4, "ci_low", out["mean"] - half)
    out.insert(5, "ci_high", out["mean"] + half)
    if bootstrap:
        bounds = groups.apply(lambda v: bootstrap_ci(v, ci, bootstrap, seed))
        out["boot_low"] = [b[0] for b in bounds]
        out["boot_high"] = [b[1] for b in bounds]
    out = out.reset_index()
    return out.drop(columns="_all") if not keys else out


def compare_settings(
    rs: RunSet,
    metric: str,
    stat: str = "final",
    by: str | Sequence[str] | None = None,
    goal: str | None = None,
    ci: float = 0.95,
) -> pd.DataFrame:
    """`aggregate` with every group compared to the best one (`stats.compare_to_best`):
    columns diff (group - best), diff_ci_low/high (Welch), hedges_g, welch_p_holm,
    mw_p_holm and verdict ("best", "worse at 95%", "not distinguishable at 95%").

    Example:
        >>> compare_settings(rs, "val/acc", by="optimizer.lr")[["optimizer.lr", "mean", "verdict"]]
    """
    keys = resolve_group_keys(rs, by)
    table = aggregate(rs, metric, stat, by=keys, ci=ci, goal=goal).reset_index(drop=True)
    df = run_values(rs, metric, stat, goal).dropna(subset=["value"])
    values = {lab: g["value"].to_numpy() for lab, g in df.groupby(group_labels(df, keys))}
    ordered = {lab: values[lab] for lab in group_labels(table, keys)}
    rows = compare_to_best(ordered, metric_goal(metric, goal), ci)
    if not rows:
        return table
    comparison = pd.DataFrame(rows).drop(columns=["group", "n", "mean"])
    return pd.concat([table, comparison], axis=1)


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """A `compare_settings` table without sem, median, min and max: what terminals, markdown
    and the report show (csv and json keep every column)."""
    return table.drop(columns=[c for c in ("sem", "median", "min", "max") if c in table.columns])


def verdict_line(table: pd.DataFrame) -> str:
    """One sentence from a `compare_settings` table: the best group and those that cannot
    be told apart from it at 95%."""
    if "verdict" not in table.columns or table.empty:
        return "no values to compare"
    keys = list(table.columns[: table.columns.get_loc("n")])
    labels = group_labels(table, keys)
    best = labels[table["verdict"] == BEST].iloc[0]
    if len(table) == 1:
        return f"one group ({best}): nothing to compare"
    ties = labels[table["verdict"] == TIE].tolist()
    unknown = labels[~table["verdict"].isin([BEST, WORSE, TIE])].tolist()
    parts = [f"best mean: {best}"]
    if ties:
        parts.append(f"not distinguishable at 95% from: {'; '.join(ties)}")
    if unknown:
        parts.append(f"too few seeds to compare: {'; '.join(unknown)}")
    if not ties and not unknown:
        parts.append("every other group is worse at 95% (Holm-corrected Welch p < 0.05)")
    return "; ".join(parts)


def group_labels(df: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """A readable label per row, e.g. `optimizer.lr=0.001, model.width=64` ("all" if no keys)."""
    if not keys:
        return pd.Series("all", index=df.index)
    return df[list(keys)].apply(as_text).apply(
        lambda row: ", ".join(f"{k}={v}" for k, v in zip(keys, row, strict=True)), axis=1)


def compare_groups(
    rs: RunSet,
    metric: str,
    stat: str = "final",
    by: str | Sequence[str] | None = None,
    baseline: Mapping[str, Any] | None = None,
    goal: str | None = None,
    ci: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every group against a baseline group: Welch t, Mann-Whitney U, Hedges' g, bootstrap CI
    of the difference (group - baseline), and Holm-adjusted p-values across the comparisons.

    `baseline` selects the baseline by its group-key values (`{"optimizer.lr": 1e-3}`);
    default: the first group in sorted order. Two groups give exactly one comparison.
    """
    keys = resolve_group_keys(rs, by)
    if not keys:
        raise ConfigError("nothing to compare: no config key varies across these runs")
    df = run_values(rs, metric, stat, goal)
    df = df[df["value"].notna()]
    labels = group_labels(df, keys)
    groups = {lab: g["value"].to_numpy() for lab, g in df.groupby(labels, sort=False)}
    order = list(df.drop_duplicates(keys).sort_values(keys).pipe(group_labels, keys))
    base_label = _baseline_label(df, keys, labels, baseline) if baseline else order[0]
    rows = [
        {"group": lab, "baseline": base_label,
         **compare(groups[lab], groups[base_label], ci, n_boot, seed).to_dict()}
        for lab in order if lab != base_label
    ]
    out = pd.DataFrame(rows)
    if not out.empty:
        out["welch_p_holm"] = holm(out["welch_p"])
        out["mw_p_holm"] = holm(out["mw_p"])
    return out


def _baseline_label(
    df: pd.DataFrame, keys: list[str], labels: pd.Series, baseline: Mapping[str, Any]
) -> str:
    unknown = [k for k in baseline if k not in keys]
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0], keys, "baseline key"))
    mask = np.ones(len(df), dtype=bool)
    for key, value in baseline.items():
        mask &= df[key].map(lambda x, v=value: values_equal(x, v)).to_numpy(bool)
    found = labels[mask].unique()
    if len(found) != 1:
        choices = ", ".join(sorted(labels.unique()))
        raise ConfigError(
            f"baseline {dict(baseline)} matches {len(found)} groups. Groups: {choices}")
    return str(found[0])
