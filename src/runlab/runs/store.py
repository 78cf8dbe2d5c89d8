"""Finding run folders on disk, reading their run.json, and turning a RUN argument into a folder.

A run folder is any directory that holds a run.json. A runs root looks like
`<root>/manual/<run-id>/` and `<root>/sweeps/<sweep>/<run-id>/`; every function here
also accepts a sweep folder or a single run folder. Listing ten thousand runs must take
well under a second, so this module sticks to os.scandir and plain json.
"""

from __future__ import annotations

import difflib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from runlab.errors import ConfigError
from runlab.runs.status import effective_status

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
RUNS_DIR_ENV = "RUNLAB_RUNS_DIR"

# root/sweeps/<sweep>/<run> is 3 levels deep; one more lets PATH be the project folder.
_MAX_DEPTH = 4


def default_runs_dir() -> Path:
    """The runs root when none is given: $RUNLAB_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


def find_run_dirs(path: str | os.PathLike) -> list[str]:
    """Every run folder at or below `path` (not descending into run folders), unsorted."""
    found: list[str] = []
    _walk(os.fspath(path), 0, found)
    return found


def _walk(path: str, depth: int, found: list[str]) -> None:
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        found.append(path)
        return
    if depth >= _MAX_DEPTH:
        return
    try:
        entries = list(os.scandir(path))
    except OSError:  # vanished or unreadable: nothing to list there
        return
    for entry in entries:
        if entry.name[0] != "." and entry.is_dir():
            _walk(entry.path, depth + 1, found)


def read_run(run_dir: str | os.PathLike, now: float | None = None) -> dict[str, Any]:
    """run.json of one run as a dict, plus `path`, with `status` made effective.

    When the effective status differs from the recorded one (a dead `running` run is
    `crashed`), the recorded one is kept as `recorded_status`. An unreadable run.json
    gives status `unreadable` and the reason in `error`, so that it still shows up.
    """
    run_dir = os.fspath(run_dir)
    try:
        with open(os.path.join(run_dir, RUN_FILE), "rb") as f:
            info = json.loads(f.read())
        if not isinstance(info, dict):
            raise ValueError("run.json does not hold a JSON object")
    except (OSError, ValueError) as e:
        info = {"status": "unreadable", "error": {"type": type(e).__name__, "message": str(e)}}
    info.setdefault("id", os.path.basename(run_dir))
    info["path"] = run_dir
    status = effective_status(info, now)
    if status != info["status"]:
        info["recorded_status"], info["status"] = info["status"], status
    return info


def load_runs(path: str | os.PathLike, now: float | None = None) -> list[dict[str, Any]]:
    """Records (see `read_run`) of every run under `path`; ConfigError if `path` is missing."""
    if not os.path.isdir(path):
        raise ConfigError(
            f"no runs folder at '{os.fspath(path)}' (give PATH or set {RUNS_DIR_ENV})"
        )
    return [read_run(d, now) for d in find_run_dirs(path)]


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's resolved config.yaml as a dict ({} when missing or unreadable)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser is ~10x faster
    try:
        with open(os.path.join(os.fspath(run_dir), CONFIG_FILE), "rb") as f:
            config = yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path` lies strictly below `root` once symlinks and `..` are resolved."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real != real_root and os.path.commonpath([real, real_root]) == real_root


def resolve_run(ref: str, root: str | os.PathLike) -> Path:
    """The run folder that RUN names: a run folder path, a run id, or a unique id prefix.

    Raises ConfigError naming close matches for an unknown id and the candidates for an
    ambiguous prefix.
    """
    if os.path.isdir(ref):
        if os.path.isfile(os.path.join(ref, RUN_FILE)):
            return Path(ref)
        raise ConfigError(f"'{ref}' is a folder but not a run folder (no {RUN_FILE} in it)")
    if os.sep in ref or (os.altsep and os.altsep in ref):
        raise ConfigError(f"no run folder at '{ref}'")
    if not os.path.isdir(root):
        raise ConfigError(f"cannot look up run '{ref}': no runs folder at '{os.fspath(root)}'")
    by_id: dict[str, list[str]] = {}
    for run_dir in find_run_dirs(root):
        by_id.setdefault(os.path.basename(run_dir), []).append(run_dir)
    candidates = by_id.get(ref) or [d for i, ds in by_id.items() if i.startswith(ref) for d in ds]
    if len(candidates) == 1:
        return Path(candidates[0])
    if candidates:
        shown = "\n  ".join(sorted(candidates)[:20])
        more = f"\n  ... and {len(candidates) - 20} more" if len(candidates) > 20 else ""
        raise ConfigError(
            f"run '{ref}' is ambiguous: {len(candidates)} runs match; give more of the id:"
            f"\n  {shown}{more}"
        )
    close = difflib.get_close_matches(ref, list(by_id), n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"no run '{ref}' under '{os.fspath(root)}'.{hint}")


def parse_where(items: list[str]) -> list[tuple[str, Any]]:
    """`KEY=VALUE` filters as (dotted key, YAML-parsed value); ConfigError lists every bad one."""
    import yaml

    parsed, problems = [], []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--where '{item}': expected KEY=VALUE, e.g. model.latent_dim=8")
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value))
    if problems:
        raise ConfigError(problems)
    return parsed


def same_value(actual: Any, wanted: Any) -> bool:
    """Config equality as a user means it: 8 == "8", 0.001 == 1e-3, true == True."""
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return str(actual).lower() == str(wanted).lower()
    try:
        return float(actual) == float(wanted)
    except (TypeError, ValueError):
        return str(actual) == str(wanted)


def filter_where(records: list[dict], where: list[tuple[str, Any]]) -> list[dict]:
    """The records whose config.yaml has every (key, value) of `where`.

    A key that no run's config has is a typo, not an empty result: ConfigError with close keys.
    """
    if not where or not records:
        return records
    from runlab.config import flatten  # imports yaml: only when --where is given

    kept, seen_keys = [], set()
    for record in records:
        config = flatten(read_config(record["path"]))
        seen_keys.update(config)
        if all(key in config and same_value(config[key], want) for key, want in where):
            kept.append(record)
    problems = []
    for key, _ in where:
        if key not in seen_keys:
            close = difflib.get_close_matches(key, sorted(seen_keys), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            problems.append(f"--where: no run has config key '{key}'.{hint}")
    if problems:
        raise ConfigError(problems)
    return kept


def parse_sort(spec: str, records: list[dict] = ()) -> tuple[str, bool]:
    """`--sort` value to (metric, descending): `-m` forces descending, `+m` ascending,
    otherwise best first by the metric's goal (as recorded in the runs' run.json, else
    `runlab.metric_rules`' defaults): descending for `max` goals."""
    if spec[:1] in "+-" and len(spec) > 1:
        return spec[1:], spec[0] == "-"
    from runlab.metric_rules import MetricRules, recorded_goal

    goal = recorded_goal((r.get("summary") for r in records), spec) or MetricRules().goal(spec)
    return spec, goal == "max"


def final_value(record: dict, metric: str) -> float | None:
    """The summary value of `metric` in the run's summary (its `value` where `metrics:`
    declares a summary other than final, else `final`), None when the run never logged it."""
    entry = (record.get("summary") or {}).get(metric)
    value = entry.get("value", entry.get("final")) if isinstance(entry, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def sort_runs(
    records: list[dict], metric: str | None = None, descending: bool = True
) -> list[dict]:
    """Most recently started first, or by a metric's final value; runs without it go last."""
    if metric is None:
        return sorted(records, key=started_at, reverse=True)
    with_value = [r for r in records if final_value(r, metric) is not None]
    without = [r for r in records if final_value(r, metric) is None]
    with_value.sort(key=lambda r: final_value(r, metric), reverse=descending)
    return with_value + sorted(without, key=started_at, reverse=True)


def started_at(record: dict) -> float:
    """Unix time the run started (or was created); 0.0 when run.json has neither."""
    stamp = record.get("started") or record.get("created")
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return 0.0
