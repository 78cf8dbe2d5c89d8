"""The sweep file: parse, check (every problem at once) and resolve it into a `SweepSpec`.

Example:
    >>> spec = load_sweep("sweeps/vae_beta.yaml")
    >>> spec.method, [p.key for p in spec.parameters], spec.seeds
    ('grid', ['loss.beta'], [0, 1, 2])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runlab.config import did_you_mean, sanitize_name
from runlab.errors import ConfigError

METHODS = ("grid", "random", "tpe")
GOALS = ("minimize", "maximize")
STATS = ("final", "min", "max", "best")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform")
VECTORIZE = ("auto", "true", "false")
TOP_KEYS = ("base", "overrides", "name", "method", "metric", "seeds", "seed", "vectorize",
            "trials", "parameters", "max_retries", "launcher")
LOCAL_KEYS = ("name", "workers", "gpus_per_run")
SLURM_KEYS = ("name", "partition", "time", "timeout_min", "cpus_per_task", "gpus_per_job",
              "gpus_per_run", "mem_gb", "array_parallelism")


@dataclass(frozen=True)
class Param:
    """One swept key: either a list of `values` or a `distribution` between `low` and `high`."""

    key: str
    values: tuple[Any, ...] | None = None
    distribution: str | None = None
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> Any:
        if self.values is not None:
            return {"values": list(self.values)}
        return {"distribution": self.distribution, "min": self.low, "max": self.high}


@dataclass
class Launcher:
    """Where runs execute: `local` (N worker subprocesses) or `slurm` (submitit jobs).

    `gpus_per_run: k > 1` trains every run data-parallel over k processes
    (`runlab train --nproc k`), one per GPU; without GPUs, k CPU processes (gloo).
    """

    name: str = "local"
    workers: int = 1
    gpus_per_run: int = 1
    partition: str | None = None
    timeout_min: int = 60
    cpus_per_task: int = 1
    gpus_per_job: int = 0
    mem_gb: float | None = None
    array_parallelism: int = 16


@dataclass
class SweepSpec:
    """A checked sweep file. `base_config` is the resolved base run config (overrides applied)."""

    name: str
    path: Path
    base: Path
    base_config: dict[str, Any]
    raw_base: dict[str, Any]
    parameters: list[Param]
    metric: str
    goal: str
    stat: str = "final"
    method: str = "grid"
    seeds: list[int] = field(default_factory=lambda: [0])
    seed: int = 0
    trials: int | None = None
    vectorize: str = "auto"
    max_retries: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)
    launcher: Launcher = field(default_factory=Launcher)

    def resolved(self) -> dict[str, Any]:
        """What `sweep.yaml` in the sweep folder holds: the sweep with every default filled."""
        return {
            "name": self.name, "base": str(self.base), "overrides": self.overrides,
            "method": self.method, "seed": self.seed, "trials": self.trials,
            "metric": {"name": self.metric, "goal": self.goal, "stat": self.stat},
            "seeds": self.seeds, "vectorize": self.vectorize, "max_retries": self.max_retries,
            "parameters": {p.key: p.to_dict() for p in self.parameters},
            "launcher": {k: v for k, v in asdict(self.launcher).items() if v is not None},
        }


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; ConfigError (exit 2) lists every problem found."""
    from runlab.config import _read_yaml

    path = Path(path)
    data = _read_yaml(path)
    problems: list[str] = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(f"unknown key '{key}' in the sweep file.{did_you_mean(key, TOP_KEYS)} "
                            f"Allowed: {', '.join(TOP_KEYS)}")
    base, raw_base, base_config = _load_base(path, data, problems)
    method = _choice(data, "method", METHODS, "grid", problems)
    params = _parameters(data.get("parameters"), method, base_config, problems)
    metric, goal, stat = _metric(data.get("metric"), problems, base_config)
    trials = data.get("trials")
    if method == "grid" and trials is not None:
        problems.append(f"trials: {trials!r} is only used by method random or tpe "
                        "(grid runs every combination)")
    elif method != "grid" and not _is_int(trials, 1):
        problems.append(f"trials: {trials!r}; method {method} needs trials: a positive integer")
    spec = SweepSpec(
        name=sanitize_name(str(data.get("name") or path.stem)), path=path.resolve(),
        base=base, base_config=base_config, raw_base=raw_base, parameters=params,
        metric=metric, goal=goal, stat=stat, method=method,
        seeds=_seeds(data.get("seeds", 1), problems),
        seed=_int(data, "seed", 0, 0, problems), trials=trials if method != "grid" else None,
        vectorize=_choice(data, "vectorize", VECTORIZE, "auto", problems),
        max_retries=_int(data, "max_retries", 1, 0, problems),
        overrides=data.get("overrides") or {},
        launcher=_launcher(data.get("launcher"), problems),
    )
    if spec.vectorize == "true" and spec.launcher.gpus_per_run > 1:
        problems.append("vectorize: true trains a setting's seeds in one process; it cannot be "
                        f"combined with launcher.gpus_per_run: {spec.launcher.gpus_per_run} "
                        "(one run over several processes). Use vectorize: auto or false")
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return spec


def _load_base(path: Path, data: dict, problems: list[str]) -> tuple[Path, dict, dict]:
    """The base run config: raw (interpolations kept) and resolved, with `overrides` applied."""
    from runlab.config import compose, fill_defaults
    from runlab.sweep.settings import apply_params, resolve_config

    if not data.get("base"):
        problems.append("base: missing; name the run config to sweep, relative to the sweep file")
        return path, {}, {}
    base = (path.parent / str(data["base"])).resolve()
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        problems.append(f"overrides: {overrides!r}; expected a mapping of dotted key -> value")
        overrides = {}
    try:
        raw = apply_params(compose(base), overrides)
        return base, raw, resolve_config(raw)
    except ConfigError as e:
        problems.extend(f"base {data['base']}: {p}" for p in e.problems)
        return base, {}, fill_defaults({})


def _parameters(data: Any, method: str, base_config: dict, problems: list[str]) -> list[Param]:
    if not isinstance(data, dict) or not data:
        problems.append(f"parameters: {data!r}; expected a mapping of dotted key -> values, "
                        "e.g. parameters: {{loss.beta: [0.5, 1.0]}}")
        return []
    params = []
    for key, value in data.items():
        key = str(key)
        missing = _missing_key(base_config, key) if base_config else None
        refusals = _refusals(base_config, key, value) if missing is not None else []
        problems += [f"parameters.{key}: no such key in the base config, and the config check "
                     f"says: {why}" for why in refusals]
        if method == "grid" and isinstance(value, dict) and "distribution" in value:
            problems.append(f"parameters.{key}: a distribution cannot be enumerated by method "
                            "grid; give a list of values, or use method random or tpe")
        param = _param(key, value, problems)
        if param is not None:
            params.append(param)
    return params


def _param(key: str, value: Any, problems: list[str]) -> Param | None:
    where = f"parameters.{key}"
    if isinstance(value, list):
        value = {"values": value}
    if not isinstance(value, dict):
        problems.append(f"{where}: {value!r}; expected a list of values, {{values: [...]}} or "
                        "{distribution: uniform|log_uniform|int_uniform, min: .., max: ..}")
        return None
    unknown = set(value) - {"values", "distribution", "min", "max"}
    for k in sorted(unknown):
        problems.append(f"{where}: unknown key '{k}'."
                        f"{did_you_mean(k, ['values', 'distribution', 'min', 'max'])}")
    if "values" in value:
        values = value["values"]
        if not isinstance(values, list) or not values:
            problems.append(f"{where}.values: {values!r}; expected a non-empty list")
            return None
        return Param(key, values=tuple(values))
    dist, low, high = value.get("distribution"), value.get("min"), value.get("max")
    if dist not in DISTRIBUTIONS:
        problems.append(f"{where}.distribution: {dist!r}.{did_you_mean(str(dist), DISTRIBUTIONS)} "
                        f"Allowed: {', '.join(DISTRIBUTIONS)}")
        return None
    if not (_is_num(low) and _is_num(high)) or low >= high:
        problems.append(f"{where}: min {low!r}, max {high!r}; expected numbers with min < max")
        return None
    if dist == "log_uniform" and low <= 0:
        problems.append(f"{where}.min: {low!r}; log_uniform needs min > 0")
        return None
    if dist == "int_uniform" and not (_is_int(low) and _is_int(high)):
        problems.append(f"{where}: int_uniform needs integer min and max, got {low!r}, {high!r}")
        return None
    return Param(key, distribution=dist, low=low, high=high)


def _missing_key(cfg: dict, key: str) -> str | None:
    """None when the dotted `key` exists in `cfg`, else a did-you-mean hint."""
    from runlab.config import flatten

    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return did_you_mean(key, list(flatten(cfg))) or " "
    return None


def _refusals(base_config: dict, key: str, value: Any) -> list[str]:
    """What the run config check says against `key` set on the base config. A key the base
    leaves out (`model.dropout`) is swept when `runlab train ... key=value` takes it."""
    from runlab.config import validate_config
    from runlab.sweep.settings import apply_params

    if isinstance(value, dict):
        value = value.get("values", [value.get("min")])
    sample = value[0] if isinstance(value, list) and value else value
    try:
        validate_config(apply_params(base_config, {key: sample}))
    except ConfigError as e:
        heads = [(p, p.split(":", 1)[0].split(" ", 1)[0]) for p in e.problems]
        return [p for p, h in heads
                if h == key or key.startswith(h + ".") or h.startswith(key + ".")]
    return []


def _metric(data: Any, problems: list[str], base_config: Any = None) -> tuple[str, str, str]:
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or not data.get("name"):
        problems.append(f"metric: {data!r}; expected {{name: val/loss, goal: minimize, "
                        "stat: final}")
        return "", "minimize", "final"
    for k in sorted(set(data) - {"name", "goal", "stat"}):
        problems.append(f"metric: unknown key '{k}'.{did_you_mean(k, ['name', 'goal', 'stat'])}")
    goal, stat = data.get("goal"), data.get("stat", "final")
    if goal is not None and goal not in GOALS:
        problems.append(f"metric.goal: {goal!r}.{did_you_mean(str(goal), GOALS)} "
                        f"Allowed: {', '.join(GOALS)}")
        goal = None
    if stat not in STATS:
        problems.append(f"metric.stat: {stat!r}.{did_you_mean(str(stat), STATS)} "
                        f"Allowed: {', '.join(STATS)}")
    name = str(data["name"])
    from runlab.metric_rules import MetricRules

    rules = MetricRules.from_config(base_config if isinstance(base_config, dict) else {})
    declared = {"min": "minimize", "max": "maximize"}.get(rules.goal(name) or "")
    if goal is None and declared is None:
        problems.append(f"metric.goal: {name!r} has no goal (lr and hparams have none); set "
                        "metric.goal: minimize or maximize")
    elif goal is not None and declared is not None and goal != declared and rules.declared(name):
        problems.append(f"metric.goal: {goal!r}, but the base config's metrics: declares "
                        f"{declared!r} for {name!r}; make them agree")
    return name, goal or declared or "minimize", stat


def _seeds(value: Any, problems: list[str]) -> list[int]:
    if _is_int(value, 1):
        return list(range(value))
    if isinstance(value, list) and value and all(_is_int(s, 0) for s in value) \
            and len(set(value)) == len(value):
        return list(value)
    problems.append(f"seeds: {value!r}; expected a count (3 runs seeds 0..2) or a list of "
                    "distinct non-negative integers")
    return [0]


def _launcher(data: Any, problems: list[str]) -> Launcher:
    data = {"name": data} if isinstance(data, str) else dict(data or {})
    name = data.get("name", "local")
    if name not in ("local", "slurm"):
        problems.append(f"launcher.name: {name!r}.{did_you_mean(str(name), ['local', 'slurm'])} "
                        "Allowed: local, slurm")
        return Launcher()
    allowed = LOCAL_KEYS if name == "local" else SLURM_KEYS
    for k in sorted(set(data) - set(allowed)):
        problems.append(f"launcher: unknown key '{k}' for launcher {name}."
                        f"{did_you_mean(k, allowed)} Allowed: {', '.join(allowed)}")
    if "time" in data:
        data["timeout_min"] = _minutes(data.pop("time"), problems)
    out = Launcher(name=name)
    for k, v in data.items():
        if k in ("name", "partition", "mem_gb") or not hasattr(out, k):
            continue
        if not _is_int(v, 0 if k == "gpus_per_job" else 1):
            problems.append(f"launcher.{k}: {v!r}; expected a positive integer")
        else:
            setattr(out, k, v)
    out.partition = data.get("partition")
    mem = data.get("mem_gb")
    if mem is not None and not (_is_num(mem) and mem > 0):
        problems.append(f"launcher.mem_gb: {mem!r}; expected a positive number")
    else:
        out.mem_gb = mem
    if out.gpus_per_run > 1 and out.gpus_per_job not in (0, out.gpus_per_run):
        problems.append(f"launcher.gpus_per_job: {out.gpus_per_job!r} differs from "
                        f"launcher.gpus_per_run: {out.gpus_per_run!r}; a job holds one run, "
                        "so drop gpus_per_job (it follows gpus_per_run)")
    return out


def _minutes(value: Any, problems: list[str]) -> int:
    """SLURM time: minutes as a number, or "[D-]HH:MM[:SS]"."""
    if _is_int(value, 1):
        return value
    try:
        days, _, clock = str(value).rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        h, m, s = (parts + [0, 0])[:3] if len(parts) > 1 else (0, parts[0], 0)
        return max(1, math.ceil((int(days or 0) * 24 + h) * 60 + m + s / 60))
    except ValueError:
        problems.append(f"launcher.time: {value!r}; expected minutes or HH:MM:SS")
        return 60


def _choice(data: dict, key: str, allowed: tuple[str, ...], default: str,
            problems: list[str]) -> str:
    value = data.get(key, default)
    value = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
    if value not in allowed:
        problems.append(f"{key}: {value!r}.{did_you_mean(str(value), allowed)} "
                        f"Allowed: {', '.join(allowed)}")
        return default
    return value


def _int(data: dict, key: str, default: int, low: int, problems: list[str]) -> int:
    value = data.get(key, default)
    if not _is_int(value, low):
        problems.append(f"{key}: {value!r}; expected an integer >= {low}")
        return default
    return value


def _is_int(v: Any, low: int | None = None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
