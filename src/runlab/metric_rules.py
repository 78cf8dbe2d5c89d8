"""What a metric name means: its goal (min, max or none), summary, x-axis and family.

The ONE rule for "which value of a metric is best". Everything that ranks values of a
metric asks `MetricRules.rule(name)`: the run's summary (run.json), best.pt, early
stopping, the LR plateau scheduler, sweeps, `runs list --sort`, `load_runs`/`analyze` and
the report. torch-free (analysis and the CLI import it).

Rules come from the config's `metrics:` section, a mapping of glob patterns (fnmatch,
`*` also matches `/`) to settings, checked in order, then the built-in defaults::

    metrics:
      "val/acc_class/*": {goal: max, summary: best, family: per-class accuracy}
      "train/gate_*":    {goal: none}
      "val/loss":        {summary: mean_last_k, k: 5, x_axis: epoch}

Example:
    >>> rules = MetricRules({"val/f*": {"goal": "max"}})
    >>> rules.goal("val/fid"), rules.goal("train/loss"), rules.goal("val/acc"), rules.goal("lr")
    ('max', 'min', 'max', None)
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any

from runlab import errors

GOALS = ("min", "max", "none")
GOAL_ALIASES = {"min": "min", "minimize": "min", "max": "max", "maximize": "max", "none": "none"}
SUMMARIES = ("final", "best", "mean_last_k")
X_AXES = ("step", "epoch", "time")
KEYS = ("goal", "summary", "k", "x_axis", "family")
SPLITS = ("train", "val", "test")
EPOCH_SUFFIX = "_epoch"  # train/<term>_epoch: the epoch mean of a training term

# Built-in defaults, after the user's patterns; first match wins.
DEFAULT_RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("lr", {"goal": "none"}),
    ("lr/*", {"goal": "none"}),
    ("hparam/*", {"goal": "none"}),
    ("epoch", {"goal": "none"}),
    ("time", {"goal": "none"}),
    ("*loss*", {"goal": "min"}),
    *((f"*{hint}*", {"goal": "max"}) for hint in
      ("acc", "f1", "auc", "precision", "recall", "r2", "iou", "score")),
    ("*", {"goal": "min"}),
)


@dataclass(frozen=True)
class Rule:
    """The resolved settings of one metric."""

    goal: str | None  # "min", "max" or None (no best: lr, hparams)
    summary: str = "final"
    k: int = 10
    x_axis: str = "step"
    family: str | None = None  # None: the default family of the name (`default_family`)

    def better(self, value: float | None, best: float | None, min_delta: float = 0.0) -> bool:
        """Whether `value` beats `best` (None: no best yet) by more than `min_delta`;
        NaN and inf never do, nor does anything for a metric without a goal."""
        if value is None or not math.isfinite(value) or self.goal is None:
            return False
        if best is None or not math.isfinite(best):
            return True
        return value < best - min_delta if self.goal == "min" else value > best + min_delta


class MetricRules:
    """The `metrics:` section plus the defaults; `rule(name)` is cached per name."""

    def __init__(self, section: dict[str, Any] | None = None,
                 overrides: dict[str, str] | None = None):
        """`overrides`: exact name -> goal that take precedence (early stopping's explicit
        `mode`, goals recorded in run.json)."""
        self.section = dict(section or {})
        self.overrides = {k: _goal(v) for k, v in (overrides or {}).items()}
        self._patterns = [(p, dict(v or {})) for p, v in self.section.items()]
        self._cache: dict[str, Rule] = {}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> MetricRules:
        """The rules of a run: its `metrics:` section, and early stopping's `mode` (when
        given) as the goal of its monitor."""
        return cls(cfg.get("metrics") or {}, dict(_early_stopping_modes(cfg)))

    def rule(self, name: str) -> Rule:
        r = self._cache.get(name)
        if r is None:
            r = self._cache[name] = self._resolve(name)
        return r

    def goal(self, name: str) -> str | None:
        return self.rule(name).goal

    def _resolve(self, name: str) -> Rule:
        settings: dict[str, Any] = {}
        for pattern, values in self._patterns:  # user patterns: later keys fill gaps
            if fnmatch.fnmatchcase(name, pattern):
                settings = {**values, **settings}
        if "goal" not in settings:
            settings["goal"] = next(v["goal"] for p, v in DEFAULT_RULES
                                    if fnmatch.fnmatchcase(name.lower(), p))
        if name in self.overrides:
            settings["goal"] = self.overrides[name]
        goal = _goal(settings["goal"])
        return Rule(goal=None if goal == "none" else goal,
                    summary=settings.get("summary", "final"), k=int(settings.get("k", 10)),
                    x_axis=settings.get("x_axis", "step"), family=settings.get("family"))

    def family(self, name: str) -> str:
        return self.rule(name).family or default_family(name)

    def declared(self, name: str) -> bool:
        """Whether a user pattern (or an override) names the metric's goal explicitly."""
        return name in self.overrides or any(
            "goal" in v and fnmatch.fnmatchcase(name, p) for p, v in self._patterns)


def _early_stopping_modes(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """(monitor, mode) of every early stopping with an explicit mode: `trainer.early_stopping`
    and `callbacks: [{name: early_stopping, ...}]`."""
    found = [(cfg.get("trainer") or {}).get("early_stopping")]
    found += [c for c in cfg.get("callbacks") or []
              if isinstance(c, dict) and c.get("name") == "early_stopping"]
    return [(es.get("monitor") or "val/loss", es["mode"]) for es in found
            if isinstance(es, dict) and es.get("mode") in ("min", "max")]


def _goal(value: Any) -> str:
    return GOAL_ALIASES[str(value).lower()]


def default_family(name: str) -> str:
    """The family a metric is drawn and reported in: the name without its split, and
    without its last part when it has several (per-class, per-layer members):
    train/loss, train/loss_epoch, val/loss -> loss; val/acc_class/3 -> acc_class;
    diag/norms/encoder.0 -> diag/norms; diag/jacobian/encoder/frobenius ->
    diag/jacobian/encoder; hparam/beta -> hparam/beta; lr -> lr."""
    parts = name.split("/")
    if parts[0] in SPLITS and len(parts) > 1:
        rest = parts[1:]
        if len(rest) > 1:
            return "/".join(rest[:-1])
        leaf = rest[0]
        return leaf[: -len(EPOCH_SUFFIX)] if leaf.endswith(EPOCH_SUFFIX) and leaf != EPOCH_SUFFIX else leaf
    return "/".join(parts[:-1]) if len(parts) > 2 else name


def file_stem(family: str) -> str:
    """A file name for a family (plots/<stem>.png)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", family).strip("-.") or "metric"


def check_section(section: Any) -> list[str]:
    """Problems of a `metrics:` config section (empty when it is valid)."""
    if section is None:
        return []
    if not isinstance(section, dict):
        return [f"metrics: expected a mapping of name patterns to settings, e.g. "
                f"{{'val/acc_class/*': {{goal: max}}}}, got {section!r}"]
    from runlab.config import did_you_mean

    problems = []
    for pattern, values in section.items():
        where = f"metrics.{pattern!r}"
        if not isinstance(values, dict):
            problems.append(f"{where}: expected a mapping like {{goal: max}}, got {values!r}")
            continue
        for key in values:
            if key not in KEYS:
                problems.append(f"{where}.{key}: unknown key.{did_you_mean(key, KEYS)} "
                                f"Allowed: {', '.join(KEYS)}")
        allowed = {"goal": (GOALS, tuple(GOAL_ALIASES)), "summary": (SUMMARIES, SUMMARIES),
                   "x_axis": (X_AXES, X_AXES)}
        for key, (shown, accepted) in allowed.items():
            if key in values and str(values[key]).lower() not in accepted:
                problems.append(f"{where}.{key}: got {values[key]!r}."
                                f"{did_you_mean(str(values[key]), shown)} Allowed: {', '.join(shown)}")
        k = values.get("k", 10)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            problems.append(f"{where}.k: expected a positive integer, got {k!r}")
        if "family" in values and not isinstance(values["family"], str):
            problems.append(f"{where}.family: expected a string, got {values['family']!r}")
    return problems


def check_early_stopping(cfg: dict[str, Any]) -> list[str]:
    """An explicit early-stopping `mode` that contradicts a goal the `metrics:` section
    declares for the monitor is refused (the mode otherwise becomes the monitor's goal)."""
    declared = MetricRules(cfg.get("metrics") if isinstance(cfg.get("metrics"), dict) else {})
    problems, modes = [], _early_stopping_modes(cfg)
    for monitor, mode in modes:
        goal = declared.goal(monitor) or "none"
        if declared.declared(monitor) and goal != mode:
            problems.append(f"trainer.early_stopping.mode: got {mode!r}, but metrics: declares "
                            f"goal {goal!r} for {monitor!r}. Remove mode (it defaults to the "
                            "goal) or change the goal")
    by_monitor: dict[str, set[str]] = {}
    for monitor, mode in modes:
        by_monitor.setdefault(monitor, set()).add(mode)
    problems += [f"early stopping: modes {sorted(m)} for {monitor!r}; it can have one goal"
                 for monitor, m in by_monitor.items() if len(m) > 1]
    return problems


def summary_value(entry: dict[str, Any], rule: Rule) -> float | None:
    """The value `rule.summary` picks from a run.json summary entry."""
    if rule.summary == "best":
        return entry.get("best", entry.get("final"))
    if rule.summary == "mean_last_k":
        recent = entry.get("last_k") or []
        return sum(recent) / len(recent) if recent else entry.get("final")
    return entry.get("final")


def did_you_mean(name: str, seen: list[str] | set[str]) -> str:
    """` Did you mean 'x'?` over metric names: up to three (empty when nothing is close)."""
    return errors.did_you_mean(name, seen, n=3)


def recorded_goal(summaries: Any, metric: str) -> str | None:
    """The goal (min|max) of `metric` recorded in the first run.json summary holding one."""
    for summary in summaries:
        entry = (summary or {}).get(metric)
        if isinstance(entry, dict) and entry.get("goal") in ("min", "max"):
            return entry["goal"]
    return None


def mpl_text(text: str) -> str:
    """A metric name as matplotlib shows it verbatim: `$` escaped (no mathtext), and a
    leading `_` (hidden from legends) kept visible."""
    text = text.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text
