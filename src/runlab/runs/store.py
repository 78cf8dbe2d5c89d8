"""Finding run folders on disk, reading their run.json, and turning a RUN argument into a folder.

A run folder is any directory that holds a run.json. A runs root looks like
`<root>/manual/<run-id>/` and `<root>/sweeps/<sweep>/<run-id>/`; every function here
also accepts a sweep folder or a single run folder. Listing ten thousand runs must take
well under a second, so this module sticks to os.scandir and plain json.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from runlab.errors import ConfigError, did_you_mean
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
    """Every run folder at or below `path`, unsorted.

    Run folders are descended too (except their own `checkpoints/`, `plots/`...): a stray
    run.json in a folder that holds runs (`runs/manual/run.json`) must hide none of them."""
    found: list[str] = []
    _walk(os.fspath(path), 0, found)
    return found


_RUN_SUBFOLDERS = frozenset({"checkpoints", "plots", "diagnostics", "tensorboard", "wandb"})


def _walk(path: str, depth: int, found: list[str]) -> None:
    is_run = os.path.isfile(os.path.join(path, RUN_FILE))
    if is_run:
        found.append(path)
    if depth >= _MAX_DEPTH:
        return
    try:
        entries = list(os.scandir(path))
    except OSError:  # vanished or unreadable: nothing to list there
        return
    for entry in entries:
        if entry.name[0] == "." or (is_run and entry.name in _RUN_SUBFOLDERS):
            continue
        if entry.is_dir():  # symlinked runs count (delete refuses those outside the root)
            _walk(entry.path, depth + 1, found)


# run.json fields the commands read, and the JSON types each may have (None: null allowed).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "name": (str, type(None)), "status": (str,), "seed": (int, type(None)),
    "created": (str, type(None)), "started": (str, type(None)), "ended": (str, type(None)),
    "duration_s": (int, float, type(None)), "host": (str, type(None)),
    "pid": (int, type(None)), "heartbeat": (int, float, type(None)),
    "epoch": (int, type(None)), "step": (int, type(None)), "summary": (dict, type(None)),
    "error": (dict, type(None)), "sweep": (dict, type(None)), "ensemble": (str, type(None)),
    "git": (dict, type(None)), "versions": (dict, type(None)), "devices": (list, type(None)),
    "command": (list, type(None)), "resumes": (int, type(None)),
}


def run_json_problem(info: Any) -> str | None:
    """Why a parsed run.json cannot be a run's record (wrong shape or field types), or None."""
    if not isinstance(info, dict):
        return f"run.json holds a JSON {type(info).__name__}, not an object"
    for key, types in _FIELD_TYPES.items():
        value = info.get(key)
        if key in info and (not isinstance(value, types) or (
                isinstance(value, bool) and bool not in types)):
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"run.json field '{key}' must be {allowed}, got {value!r:.80}"
    summary = info.get("summary") or {}
    bad = [m for m, e in summary.items() if not isinstance(e, (dict, int, float))]
    if bad:
        return f"run.json summary entry '{bad[0]}' must be a mapping or a number"
    if any(not isinstance(c, str) for c in info.get("command") or []):
        return "run.json field 'command' must be a list of strings"
    return None


def read_run(run_dir: str | os.PathLike, now: float | None = None) -> dict[str, Any]:
    """run.json of one run as a dict, plus `path`, with `status` made effective.

    When the effective status differs from the recorded one (a dead `running` run is
    `crashed`), the recorded one is kept as `recorded_status`. A run.json that cannot be
    read, parsed, or has fields of the wrong type gives a record with only `id`, `path`,
    status `unreadable` and the reason in `error`: it still shows up, and breaks nothing.
    """
    run_dir = os.fspath(run_dir)
    try:
        info = _load_run_json(run_dir)
    except (OSError, ValueError) as e:
        return unreadable(run_dir, f"{type(e).__name__}: {e}")
    info.setdefault("id", os.path.basename(run_dir))
    info["path"] = run_dir
    status = effective_status(info, now, run_dir)
    if status != info["status"]:
        info["recorded_status"], info["status"] = info["status"], status
    return info


def read_run_json_or_empty(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed run.json when it is a well-formed record, else {}."""
    try:
        return _load_run_json(os.fspath(run_dir))
    except (OSError, ValueError):
        return {}


def _load_run_json(run_dir: str) -> dict[str, Any]:
    """The parsed run.json; OSError, or ValueError saying what is wrong with it."""
    with open(os.path.join(run_dir, RUN_FILE), "rb") as f:
        info = json.loads(f.read())
    problem = run_json_problem(info)
    if problem:
        raise ValueError(problem)
    return info


def unreadable(run_dir: str, reason: str) -> dict[str, Any]:
    """The record of a run whose files cannot be read: status `unreadable`, reason in `error`."""
    return {"id": os.path.basename(run_dir), "path": run_dir, "status": "unreadable",
            "error": {"type": "Unreadable", "message": reason}}


def load_runs(path: str | os.PathLike, now: float | None = None) -> list[dict[str, Any]]:
    """Records (see `read_run`) of every run under `path`; ConfigError if `path` is missing."""
    if not os.path.isdir(path):
        raise ConfigError(
            f"no runs folder at '{os.fspath(path)}' (give PATH or set {RUNS_DIR_ENV})"
        )
    return [read_run(d, now) for d in find_run_dirs(path)]


MAX_CONFIG_BYTES = 1 << 20
"""A run's config.yaml is a few KB; anything over 1 MB is not one."""
MAX_CONFIG_VALUES = 100_000
"""Values a config may expand to once YAML aliases are followed (an alias bomb: billions)."""


def load_yaml_text(text: str | bytes, what: str) -> Any:
    """YAML parsed with a safe loader, refused (ValueError) when it is too large or its
    aliases expand to more than `MAX_CONFIG_VALUES` values (a "billion laughs" file)."""
    import yaml

    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(f"{what} is {len(text)} bytes (over {MAX_CONFIG_BYTES}): not a config")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser is ~10x faster
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        raise ValueError(f"{what} is not valid YAML: {str(e)[:300]}") from None
    if _expanded_size(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ValueError(f"{what} expands to over {MAX_CONFIG_VALUES} values through YAML "
                         "aliases (an alias bomb?)")
    return data


def _expanded_size(data: Any, limit: int) -> int:
    """Values in `data` counting every alias again; stops counting past `limit`."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def read_config_checked(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's resolved config.yaml as a dict; {} when missing; ValueError when broken."""
    path = os.path.join(os.fspath(run_dir), CONFIG_FILE)
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ValueError(f"{CONFIG_FILE} cannot be read: {e}") from None
    config = load_yaml_text(text, CONFIG_FILE)
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{CONFIG_FILE} holds a {type(config).__name__}, not a mapping")
    return config


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's resolved config.yaml as a dict ({} when missing or unreadable)."""
    try:
        return read_config_checked(run_dir)
    except ValueError:
        return {}


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
    raise ConfigError(f"no run '{ref}' under '{os.fspath(root)}'.{did_you_mean(ref, by_id, n=5)}")


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
            problems.append(f"--where: no run has config key '{key}'."
                            f"{did_you_mean(key, seen_keys, n=3, cutoff=0.6)}")
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
