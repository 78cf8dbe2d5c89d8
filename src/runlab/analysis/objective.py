"""Which metrics an analysis is about, and how each is judged (goal, per-run stat).

A sweep folder's `sweep.yaml` names the metric the sweep optimised (`metric: {name, goal,
stat}`) and its parameters; `runlab analyze` / `runlab report` lead with that metric and
group by those parameters unless told otherwise (`--metric`, `--by`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runlab.analysis.load import RunSet
from runlab.analysis.summary import RULE_STATS
from runlab.errors import ConfigError

_PREFERRED = ("val/loss", "val/acc", "test/loss", "test/acc", "train/loss")
AUXILIARY = re.compile(r"^(hparam/|diag/|lr$|lr/|time)")


@dataclass(frozen=True)
class Objective:
    """A metric with the goal and per-run statistic it is compared by."""

    metric: str
    goal: str
    stat: str


def default_metric(rs: RunSet) -> str:
    """The metric to lead with when no sweep names one: val/loss, val/acc, ... else the
    first non-auxiliary name."""
    names = rs.metric_names
    if not names:
        raise ConfigError("these runs have logged no metrics (metrics.csv is missing or empty)")
    for name in _PREFERRED:
        if name in names:
            return name
    return next((n for n in names if not AUXILIARY.match(n)), names[0])


def sweep_spec(rs: RunSet) -> dict[str, Any] | None:
    """The `sweep.yaml` shared by the runs (each sweep run sits in its sweep's folder), or
    None when the runs come from no sweep or from sweeps with different metrics."""
    specs = []
    for folder in sorted({str(Path(p).parent) for p in rs.runs["path"]}):
        file = Path(folder) / "sweep.yaml"
        if not file.is_file():
            return None
        try:
            spec = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return None
        if not isinstance(spec, dict) or not isinstance(spec.get("metric"), dict):
            return None
        specs.append(spec)
    if not specs or any(s["metric"] != specs[0]["metric"] for s in specs):
        return None
    return specs[0]


def objectives(
    rs: RunSet, patterns: Sequence[str] | None = None, stat: str | None = None,
    goal: str | None = None,
) -> list[Objective]:
    """The metrics to analyse, the sweep's metric first.

    `patterns` are metric names or globs (`val/*`); default: the sweep's metric, else
    `default_metric`. Goal: `goal`, else the sweep's goal for the sweep's metric, else the
    name-based guess (`metric_goal`). Stat: `stat`, else the sweep's, else the one the
    metric's `summary:` rule names (final, best, or mean_last for mean_last_k): the value
    run.json and `runlab runs list` show.
    """
    spec = sweep_spec(rs)
    sweep_metric = spec["metric"] if spec else {}
    names = rs.metric_names
    if patterns:
        chosen = _match(rs, patterns)
    elif sweep_metric.get("name") in names:
        chosen = [sweep_metric["name"]]
    else:
        chosen = [default_metric(rs)]
    if sweep_metric.get("name") in chosen:
        chosen.remove(sweep_metric["name"])
        chosen.insert(0, sweep_metric["name"])
    stat = stat or sweep_metric.get("stat")
    return [Objective(m, rs.goal(m, goal or (sweep_metric.get("goal")
                                             if m == sweep_metric.get("name") else None)),
                      stat or RULE_STATS[rs.rules.rule(m).summary]) for m in chosen]


def _match(rs: RunSet, patterns: Sequence[str]) -> list[str]:
    """The metrics `patterns` select (`RunSet.match`: exact names first, then globs), in
    order, each once; every pattern that selects nothing is reported at once."""
    chosen: list[str] = []
    problems = []
    for pattern in patterns:
        try:
            hits = rs.match(pattern)
        except ConfigError as e:
            problems += e.problems
            continue
        chosen += [h for h in hits if h not in chosen]
    if problems:
        raise ConfigError(problems)
    return chosen


def sweep_parameters(rs: RunSet) -> list[str] | None:
    """The sweep's parameter keys present in the runs' configs, or None outside a sweep."""
    spec = sweep_spec(rs)
    if spec is None or not isinstance(spec.get("parameters"), dict):
        return None
    return [k for k in spec["parameters"] if k in rs.runs.columns]
