"""Read run folders into DataFrames: runs (config + provenance), metrics (long), summaries.

Reading is two-phase so that filters are cheap: run.json + config.yaml of every run first
(small files), then metrics.csv only for the runs that pass `status=` and `where=`.
Both phases use a thread pool; metrics.csv is parsed with pyarrow when it is installed
(`pip install runlab[arrow]`; it releases the GIL), else with pandas' C parser.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from runlab.analysis.summary import metric_goal, summarize
from runlab.config import flatten as config_flatten
from runlab.errors import ConfigError, did_you_mean
from runlab.metric_rules import MetricRules
from runlab.runs import store
from runlab.runs.status import STATUSES

# Columns that describe where a run came from rather than what it was configured to do.
PROVENANCE = (
    "run_id", "status", "path", "created", "started", "ended", "duration_s", "host",
    "git.commit", "git.dirty", "sweep.name", "sweep.setting", "sweep.trial", "ensemble",
    "error.type",
)
_METRIC_COLUMNS = ["step", "epoch", "time", "metric", "value"]
_NUMERIC_COLUMNS = ["step", "epoch", "time", "value"]

Where = dict[str, Any] | str | Sequence[str] | Callable[[pd.DataFrame], Any] | None


@dataclass
class RunSet:
    """Runs loaded by `load_runs`.

    Attributes:
        runs: one row per run: `run_id`, provenance columns (`status`, `path`, `created`,
            `git.commit`, `sweep.name`, ...) and the flattened config (`model.latent_dim`, ...).
        metrics: long table `run_id, step, epoch, time, metric, value` (categorical ids/names).
        summaries: one row per (run_id, metric): final, min, max, best, mean_last,
            final_step, best_step, n.
        goals: metric -> "min" | "max" | "none", the goal `best` followed (see `load_runs`).
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    summaries: pd.DataFrame
    config_keys: list[str] = field(default_factory=list)
    goals: dict[str, str] = field(default_factory=dict)
    rules: MetricRules = field(default_factory=MetricRules)

    def goal(self, metric: str, goal: str | None = None) -> str:
        """"minimize" or "maximize" for ranking `metric` (`goal` overrides)."""
        return metric_goal(metric, goal, self.goals)

    def match(self, pattern: str) -> list[str]:
        """Metric names `pattern` selects: itself when logged under that exact name (names
        may hold `[x]`), else every name the glob matches (`val/acc_class/*`); raises
        ConfigError (with did-you-mean) when nothing matches."""
        names = self.metric_names
        if pattern in names:
            return [pattern]
        import fnmatch

        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ConfigError(unknown_key_message(pattern, names, "metric"))
        return matched

    def family(self, metric: str) -> str:
        """The family a metric is reported in (`metrics:` family, else the default)."""
        return self.rules.family(metric)

    @property
    def metric_names(self) -> list[str]:
        """Every metric name logged by at least one run, sorted."""
        return sorted(self.summaries["metric"].astype(str).unique())

    def __len__(self) -> int:
        return len(self.runs)


def load_runs(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    where: Where = None,
    status: str | Sequence[str] | None = None,
    last_k: int = 10,
    goals: dict[str, str] | None = None,
    workers: int | None = None,
) -> RunSet:
    """Load every run under `paths` (a run folder, a sweep folder, a runs root, or a list).

    Args:
        where: keep runs whose config matches: `{"loss.beta": 1.0}`, `"loss.beta=1.0"`,
            a list of such strings, or a callable taking the runs frame and returning a mask.
        status: keep only these statuses; default: every status except `running`.
        last_k: window of the `mean_last` summary (a metric whose `metrics:` rule says
            `summary: mean_last_k` uses the rule's `k`).
        goals: `{metric: "min"|"max"}` (or minimize|maximize) to override a metric's goal.
            Otherwise the goal is the one recorded in the runs' run.json (`summary[m].goal`),
            else the one the runs' `metrics:` config section declares, else the defaults
            of `runlab.metric_rules`: `best` agrees with run.json, best.pt and `runs list`.

    Example:
        >>> rs = load_runs("runs/sweeps/vae-beta", where="loss.beta=1.0", status="completed")
        >>> rs.summaries.query("metric == 'val/loss'")[["run_id", "final", "best"]]
    """
    dirs = find_run_dirs(paths)
    workers = workers or min(16, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        rows = _unique_ids([r for r in pool.map(_read_run_info, dirs) if r is not None])
        runs, config_keys = _runs_frame(rows)
        keep = _status_mask(runs, status) & _where_mask(runs, where)
        runs = runs[keep].reset_index(drop=True)
        tables = list(pool.map(_read_metrics, runs["path"]))
    metrics = _concat_metrics(list(runs["run_id"]), tables)
    kept = [r for r, k in zip(rows, keep, strict=True) if k]
    rules, resolved = _goals(kept, list(metrics["metric"].cat.categories), goals or {})
    return RunSet(runs, metrics, summarize(metrics, last_k, resolved, rules), config_keys, resolved, rules)


def _goals(rows: list[dict[str, Any]], names: list[str],
           explicit: dict[str, str]) -> tuple[MetricRules, dict[str, str]]:
    """The rules of the runs (the first `metrics:` section among them) and every metric's
    goal: `explicit`, else recorded in a run.json, else by those rules."""
    section = next((r["metrics"] for r in rows if r["metrics"]), {})
    rules = MetricRules(section)
    recorded: dict[str, str] = {}
    for r in rows:
        for name, goal in r["goals"].items():
            recorded.setdefault(name, goal)
    return rules, {n: explicit.get(n) or recorded.get(n) or rules.goal(n) or "none" for n in names}


def find_run_dirs(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Every folder holding a run.json under the given paths (see `runs.store.find_run_dirs`)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"no such file or directory: {p}")
        found.extend(map(Path, store.find_run_dirs(p)))
    return sorted(set(found))


def _unique_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs that share an id (a copied run folder) are told apart by their folder path."""
    seen: dict[str, int] = {}
    for item in rows:
        seen[item["row"]["run_id"]] = seen.get(item["row"]["run_id"], 0) + 1
    for item in rows:
        row = item["row"]
        if seen[row["run_id"]] > 1:
            print(f"runlab: warning: run id {row['run_id']} is in {seen[row['run_id']]} folders "
                  f"(a copied run?); using the folder path {row['path']} as its id",
                  file=sys.stderr)
            row["run_id"] = row["path"]
    return rows


def _read_run_info(folder: Path) -> dict[str, Any] | None:
    """One runs-table row: provenance from run.json plus the flattened config.yaml.
    A run whose run.json or config.yaml is broken is skipped with a warning (None)."""
    info = store.read_run(folder)
    try:
        if info["status"] == "unreadable":
            raise ValueError(info["error"]["message"])
        loaded = store.read_config_checked(folder)
        config = flatten(loaded)
    except ValueError as e:
        print(f"runlab: warning: skipping unreadable run {folder}: {e}", file=sys.stderr)
        return None
    git, sweep, error = info.get("git") or {}, info.get("sweep") or {}, info.get("error") or {}
    row = {
        "run_id": info.get("id", folder.name),
        "status": info["status"],
        "path": str(folder),
        "name": info.get("name"),
        "seed": info.get("seed"),
        "created": info.get("created"),
        "started": info.get("started"),
        "ended": info.get("ended"),
        "duration_s": info.get("duration_s"),
        "host": info.get("host"),
        "git.commit": git.get("commit"),
        "git.dirty": git.get("dirty"),
        "sweep.name": sweep.get("name"),
        "sweep.setting": sweep.get("setting"),
        "sweep.trial": sweep.get("trial"),
        "ensemble": info.get("ensemble"),
        "error.type": error.get("type"),
    }
    summary = info.get("summary") if isinstance(info.get("summary"), dict) else {}
    goals = {m: e["goal"] for m, e in summary.items() if isinstance(e, dict) and "goal" in e}
    section = loaded.get("metrics") if isinstance(loaded, dict) else None
    section = section if isinstance(section, dict) else None
    return {"row": row, "config": config, "goals": goals, "metrics": section}


def flatten(d: dict[str, Any]) -> dict[str, Any]:
    """`config.flatten`, with lists as compact JSON strings (hashable, readable)."""
    return {k: json.dumps(v, separators=(", ", ": "), default=str)
            if isinstance(v, (list, tuple, dict)) else v for k, v in config_flatten(d).items()}


def as_text(values: pd.Series) -> pd.Series:
    """Config values as display strings, a missing value as "none" (keys absent in a run)."""
    return values.map(lambda v: "none" if v is None or v != v else str(v))  # v != v: NaN


def _runs_frame(items: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    config_keys: dict[str, None] = {}
    records = []
    for item in items:
        config_keys.update(dict.fromkeys(item["config"]))
        records.append({**item["row"], **item["config"]})  # config wins on name/seed
    columns = list(dict.fromkeys([*PROVENANCE, "name", "seed", *config_keys]))
    return pd.DataFrame.from_records(records, columns=columns), list(config_keys)


def _status_mask(runs: pd.DataFrame, status: str | Sequence[str] | None) -> np.ndarray:
    if status is None:
        return (runs["status"] != "running").to_numpy()
    wanted = [status] if isinstance(status, str) else list(status)
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise ConfigError(f"unknown status {bad[0]!r}. Allowed: {', '.join(STATUSES)}")
    return runs["status"].isin(wanted).to_numpy()


def _where_mask(runs: pd.DataFrame, where: Where) -> np.ndarray:
    mask = np.ones(len(runs), dtype=bool)
    if where is None:
        return mask
    if callable(where):
        return np.asarray(where(runs), dtype=bool)
    if isinstance(where, str):
        where = [where]
    if not isinstance(where, dict):
        where = dict(_parse_condition(c) for c in where)
    problems = [unknown_key_message(k, list(runs.columns), "where key") for k in where
                if k not in runs.columns]
    if problems:
        raise ConfigError(problems)
    for key, value in where.items():
        mask &= runs[key].map(lambda x, v=value: values_equal(x, v)).to_numpy(bool)
    return mask


def _parse_condition(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"bad where condition {text!r}: expected KEY=VALUE, e.g. loss.beta=1.0")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip(), raw if value is None and raw else value


def values_equal(x: Any, v: Any) -> bool:
    """Config-value equality as a user means it: 1e-3 == 0.001, [1, 2] == "[1, 2]"."""
    if isinstance(v, (list, tuple, dict)):
        v = json.dumps(v, separators=(", ", ": "), default=str)
    if isinstance(x, (int, float)) and isinstance(v, (int, float)) and not isinstance(x, bool):
        return bool(np.isclose(x, v, rtol=1e-12, atol=0.0))
    return x == v or str(x) == str(v)


def unknown_key_message(key: str, available: Sequence[str], what: str) -> str:
    """`unknown <what> 'x'. Did you mean 'y'? Available: ...` (STYLE.md error format)."""
    hint = did_you_mean(key, available, cutoff=0.6)
    shown = ", ".join(available[:30]) + (", ..." if len(available) > 30 else "")
    return f"unknown {what} {key!r}.{hint} Available: {shown}"


@dataclass
class _Columns:
    """One run's metrics.csv as numpy columns; `metric` codes index into `names`."""

    arrays: dict[str, np.ndarray]
    metric: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.metric)


def _read_metrics(path: str) -> _Columns | None:
    file = Path(path) / "metrics.csv"
    if not file.is_file():
        return None
    data = file.read_bytes()
    # append-only and flushed per line: a running run may be mid-way through its last line
    data = data[: data.rfind(b"\n") + 1]
    if data.count(b"\n") < 2:  # header only (or nothing yet)
        return None
    try:
        return _read_csv(data)
    except (ValueError, TypeError, KeyError) as e:  # a hand-edited or damaged file
        return _read_csv_lenient(data, file, e)


def _read_csv_lenient(data: bytes, file: Path, error: Exception) -> _Columns | None:
    """metrics.csv with rows that do not parse (text where a number belongs) left out, with
    a warning naming the file: one damaged row costs that row, not the run or the command."""
    try:
        frame = pd.read_csv(io.BytesIO(data), usecols=_METRIC_COLUMNS, on_bad_lines="skip",
                            dtype=str, keep_default_na=False)
    except ValueError as e:
        print(f"runlab: warning: skipping metrics of {file}: {e}", file=sys.stderr)
        return None
    numbers = {c: pd.to_numeric(frame[c], errors="coerce") for c in _NUMERIC_COLUMNS}
    bad = numbers["step"].isna() | numbers["epoch"].isna() | numbers["time"].isna() | (
        numbers["value"].isna() & ~frame["value"].str.lower().isin(["nan", "-nan"]))
    print(f"runlab: warning: {file}: skipped {int(bad.sum())} row(s) that do not parse "
          f"({type(error).__name__}: {str(error)[:120]})", file=sys.stderr)
    keep = ~bad.to_numpy()
    codes, names = pd.factorize(frame["metric"][keep])
    arrays = {c: numbers[c].to_numpy()[keep] for c in _NUMERIC_COLUMNS}
    arrays["step"], arrays["epoch"] = arrays["step"].astype(np.int64), arrays["epoch"].astype(np.int64)
    return _Columns(arrays, codes, list(names))


def _read_csv_pandas(data: bytes) -> _Columns:
    frame = pd.read_csv(io.BytesIO(data), usecols=_METRIC_COLUMNS, on_bad_lines="skip",
                        dtype={"metric": str, "value": float})
    codes, names = pd.factorize(frame["metric"])
    return _Columns({c: frame[c].to_numpy() for c in _NUMERIC_COLUMNS}, codes, list(names))


try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
except ImportError:  # pragma: no cover - pyarrow is optional; pandas' C parser is ~2x slower
    pa = None


def _read_csv_arrow(data: bytes) -> _Columns:
    types = {"step": pa.int64(), "epoch": pa.int64(), "time": pa.float64(),
             "metric": pa.string(), "value": pa.float64()}
    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(use_threads=False),  # parallel over runs instead
        # quoted names (`,`, `"`, newlines: see logging/csv.py); the slower newline-aware
        # parse only for files that hold a quote at all
        parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip",
                                         newlines_in_values=b'"' in data),
        convert_options=pacsv.ConvertOptions(column_types=types, include_columns=_METRIC_COLUMNS),
    )
    arrays = {c: table.column(c).to_numpy() for c in _NUMERIC_COLUMNS}
    metric = pc.dictionary_encode(table.column("metric")).combine_chunks()
    return _Columns(arrays, metric.indices.to_numpy(zero_copy_only=False),
                    metric.dictionary.to_pylist())


_read_csv = _read_csv_pandas if pa is None else _read_csv_arrow


def _concat_metrics(run_ids: list[str], tables: list[_Columns | None]) -> pd.DataFrame:
    """Stack per-run columns into one long frame with categorical run_id and metric."""
    kept = [(i, t) for i, t in enumerate(tables) if t is not None and len(t)]
    names: dict[str, int] = {}
    metric_codes = []
    for _, t in kept:  # map each run's local metric codes onto one shared category list
        local = np.array([names.setdefault(n, len(names)) for n in t.names], dtype=np.int32)
        metric_codes.append(local[t.metric] if len(local) else t.metric.astype(np.int32))
    run_codes = np.repeat(np.array([i for i, _ in kept], dtype=np.int32),
                          [len(t) for _, t in kept])
    columns = {c: _concat([t.arrays[c] for _, t in kept]) for c in _NUMERIC_COLUMNS}
    columns["metric"] = pd.Categorical.from_codes(_concat(metric_codes, np.int32), list(names))
    # copy=False: the arrays are fresh; consolidating them into one block would copy 100s of MB
    return pd.DataFrame({
        "run_id": pd.Categorical.from_codes(run_codes, categories=run_ids),
        **{c: columns[c] for c in _METRIC_COLUMNS},
    }, copy=False)


def _concat(arrays: list[np.ndarray], dtype: Any = np.float64) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)
