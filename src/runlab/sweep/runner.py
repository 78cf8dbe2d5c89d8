"""`runlab sweep`: check the sweep, prepare its folder, run it, summarise it.

Example:
    >>> code = run_sweep("sweeps/vae_beta.yaml", workers=2)   # 0 ok, 1 a run failed
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from runlab.errors import ConfigError
from runlab.sweep.jobs import TRAIN_COMMAND, run_state, trainer_takes_seeds
from runlab.sweep.progress import Progress
from runlab.sweep.scheduler import Scheduler, Tally
from runlab.sweep.search import Search
from runlab.sweep.settings import Setting, build_config, grid_size, run_id, validate
from runlab.sweep.spec import SweepSpec, load_sweep
from runlab.sweep.summary import closing_lines, rows, write_csv

# Keys of sweep.yaml that decide which setting an id means; changing them needs a new sweep.
IDENTITY_KEYS = ("base_hash", "method", "seed", "parameters")


def run_sweep(path: str | Path, workers: int | None = None, launcher: str | None = None,
              dry_run: bool = False, storage: str | None = None, runs_dir: str | Path = "runs",
              train: tuple[str, ...] = TRAIN_COMMAND, live: bool | None = None) -> int:
    """Run (or resume) the sweep in `path`; returns the exit code (0 ok, 1 a run failed).

    `train` is the training command each run is appended to (tests inject a stand-in).
    """
    spec = load_sweep(path)
    _apply_cli(spec, workers, launcher)
    folder = Path(runs_dir) / "sweeps" / spec.name
    search = Search(spec, folder, storage)
    settings = _settings(spec, search, folder)
    if dry_run:
        _print_plan(spec, settings)
        return 0
    with search.lock():
        _prepare_folder(spec, folder)
    total = (len(settings) if spec.method == "grid" else spec.trials or 0) * len(spec.seeds)
    # a run over several processes (gpus_per_run > 1) cannot share its process with other seeds
    grouped = trainer_takes_seeds(train) and spec.launcher.gpus_per_run == 1
    vectorize = spec.vectorize if grouped else "false"
    if spec.vectorize == "true" and vectorize == "false":
        raise ConfigError("vectorize: true, but this `runlab train` cannot train several seeds "
                          "in one process (no --seeds); use vectorize: auto or false")
    scheduler = Scheduler(spec, folder, search, _launcher(spec, folder, train), vectorize)
    with Progress(total, live=live) as progress:
        tally = scheduler.run(settings, progress)
    return _report(spec, folder, search, tally)


def _apply_cli(spec: SweepSpec, workers: int | None, launcher: str | None) -> None:
    if launcher is not None:
        if launcher not in ("local", "slurm"):
            raise ConfigError(f"--launcher {launcher!r}: expected local or slurm")
        spec.launcher.name = launcher
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"--workers {workers}: expected a positive integer")
        spec.launcher.workers = workers


def _settings(spec: SweepSpec, search: Search, folder: Path) -> list[Setting]:
    """The settings known now, each with its run config; those with runs left to do are
    validated before any run starts (a finished sweep reruns without importing torch)."""
    settings = search.known() if spec.method == "grid" or search.exists() else []
    for s in settings:
        s.config = build_config(spec.raw_base, s.params, spec.name)
    todo = [s for s in settings if any(
        run_state(folder / run_id(spec.name, s.sid, seed))["status"] != "completed"
        for seed in spec.seeds)]
    if spec.method != "grid" and len(settings) < (spec.trials or 0):
        todo += _corners(spec)  # settings proposed later: check every range's ends now
    validate(todo)
    return settings


def _corners(spec: SweepSpec) -> list[Setting]:
    """For each parameter, every value (or both ends of its range), others at their first."""
    first = {p.key: p.values[0] if p.values else p.low for p in spec.parameters}
    out = []
    for p in spec.parameters:
        for v in p.values or (p.low, p.high):
            params = {**first, p.key: int(v) if p.distribution == "int_uniform" else v}
            out.append(Setting(f"{p.key}={v}", params,
                               config=build_config(spec.raw_base, params, spec.name)))
    return out


def _prepare_folder(spec: SweepSpec, folder: Path) -> None:
    """Write sweep.yaml; refuse to resume a sweep whose settings would mean something else."""
    from runlab.config import config_diff, config_hash, result_config

    # base_config: the base's result keys, so a changed base can be named key by key
    resolved = {**spec.resolved(), "base_hash": config_hash(spec.base_config),
                "base_config": json.loads(json.dumps(result_config(spec.base_config),
                                                     default=str))}
    path = folder / "sweep.yaml"
    if path.exists():
        old = yaml.safe_load(path.read_text()) or {}
        changed = [k for k in IDENTITY_KEYS if old.get(k) != resolved.get(k)]
        if changed:
            what = ", ".join(changed)
            if "base_hash" in changed and isinstance(old.get("base_config"), dict):
                diff = config_diff(old["base_config"], resolved["base_config"])  # flat: as is
                what = what.replace("base_hash", f"base config ({'; '.join(diff)})")
            raise ConfigError(
                f"sweep '{spec.name}' in {folder} was started with a different "
                f"{what}; resume it unchanged, give the sweep a new name, "
                f"or delete {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))
    tmp.replace(path)


def _launcher(spec: SweepSpec, folder: Path, train: tuple[str, ...]) -> Any:
    if spec.launcher.name == "slurm":
        from runlab.sweep.slurm import SlurmLauncher

        return SlurmLauncher(spec.name, spec.launcher, folder, train)
    from runlab.sweep.local import LocalLauncher

    device = str((spec.base_config.get("trainer") or {}).get("device", "auto"))
    return LocalLauncher(spec.name, spec.launcher.workers, train, use_gpus=device != "cpu",
                         gpus_per_run=spec.launcher.gpus_per_run)


def _print_plan(spec: SweepSpec, settings: list[Setting]) -> None:
    seeds = ",".join(str(s) for s in spec.seeds)
    for s in settings:
        print(f"{s.sid}  seeds {seeds}  {json.dumps(s.params, default=str)}")
    if spec.method == "grid":
        print(f"{len(settings)} settings x {len(spec.seeds)} seeds = "
              f"{len(settings) * len(spec.seeds)} runs (grid of "
              f"{grid_size(spec.parameters)})")
    else:
        space = ", ".join(f"{p.key}: {p.to_dict()}" for p in spec.parameters)
        print(f"{spec.method}: {spec.trials} settings x {len(spec.seeds)} seeds = "
              f"{(spec.trials or 0) * len(spec.seeds)} runs, {len(settings)} proposed so far; "
              f"search space {space}")


def _never_logged(spec: SweepSpec, folder: Path, tally: Tally) -> str | None:
    """An error when runs completed but none of them logged the sweep's metric (n=0 for
    every setting would otherwise look like success), naming the metrics they did log."""
    done = [v for per_seed in tally.values.values() for v in per_seed.values()]
    if not done or any(v is not None for v in done):
        return None
    from runlab.metric_rules import did_you_mean

    seen: set[str] = set()
    for run_json in folder.glob("*/run.json"):
        try:
            seen.update(json.loads(run_json.read_text(encoding="utf-8")).get("summary") or {})
        except (OSError, ValueError):
            continue
    if spec.metric in seen:
        return None  # logged, only never finite (or not with this stat): the runs say so
    return (f"error: metric.name {spec.metric!r}: no completed run logged it, so the sweep has "
            f"no result.{did_you_mean(spec.metric, seen)} Logged: "
            f"{', '.join(sorted(seen)[:30]) or 'nothing'}")


def _report(spec: SweepSpec, folder: Path, search: Search, tally: Tally) -> int:
    """summary.csv, failures and the best setting; the exit code."""
    settings = search.known()
    failed: dict[str, list[int]] = {}
    for f in tally.failures:
        failed.setdefault(f.sid, []).append(f.seed)
    table = rows(settings, tally.values, failed)
    write_csv(table, folder / "summary.csv")
    for f in tally.failures:
        print(f"FAILED {f.run_id}: {f.error}\n  run folder: {f.run_dir}")
    if tally.interrupted:
        print(f"sweep interrupted; run the same command again to resume ({folder})")
        return 130
    missing = _never_logged(spec, folder, tally)
    if missing:
        print(missing)
        return 2
    def describe(row: dict[str, Any]) -> str:
        params = {p.key: row[p.key] for p in spec.parameters}
        ci = "" if row["ci95_low"] is None else \
            f", 95% CI [{row['ci95_low']:.4g}, {row['ci95_high']:.4g}]"
        return (f"{json.dumps(params, default=str)}: {spec.metric} {spec.stat} mean "
                f"{row['mean']:.4g}{ci} over n={row['n']} seeds "
                f"(config {folder / 'configs' / (row['setting'] + '.yaml')})")

    for line in closing_lines(table, tally.values, spec.goal, describe):
        print(line)
    print(f"summary: {folder / 'summary.csv'}")
    return 1 if tally.failures else 0
