"""Config validation against the registries, before anything runs.

Every problem is collected (torchtune style) and reported at once, each with its
dotted key, the value given and what is allowed.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

from runlab.config import DATA_COMMON, DEFAULTS, PRECISIONS, did_you_mean
from runlab.errors import ConfigError
from runlab.hparams import is_schedule
from runlab.optim import LENGTH_PARAMS
from runlab.registry import (
    CALLBACKS,
    DATASETS,
    HPARAM_SCHEDULES,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    Entry,
    Registry,
)

TOP_LEVEL = (*DEFAULTS, "defaults")
# Optimisers the Trainer's plain `step()` cannot drive.
UNSUPPORTED_OPTIMIZERS = {
    "lbfgs": "needs a closure that re-evaluates the loss several times per step",
    "sparseadam": "needs sparse gradients, which the built-in models do not produce",
}


def load_plugins(paths: list[str]) -> list[str]:
    """Import user plugin files/folders so their decorated classes register. Returns problems."""
    problems = []
    for i, p in enumerate(paths or []):
        path = Path(p)
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        if not path.exists():
            problems.append(f"plugins[{i}]: {p} does not exist (plugin paths are relative to the config file)")
            continue
        # packages beside the plugin files import by name (`Drawing("mypkg.figures:draw")`)
        folder = str((path if path.is_dir() else path.parent).resolve())
        if folder not in sys.path:
            sys.path.append(folder)
        for f in files:
            if f.name.startswith("_") and f.name != "__init__.py":
                continue
            mod_name = f"runlab_plugin_{abs(hash(str(f.resolve()))):x}_{f.stem}"
            if mod_name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(mod_name, f)
            if spec is None or spec.loader is None:
                problems.append(f"plugins[{i}]: cannot import {f}")
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as e:  # noqa: BLE001 - report the plugin's own error
                del sys.modules[mod_name]
                problems.append(f"plugins[{i}]: importing {f} raised {type(e).__name__}: {e}")
    return problems


def _basic_ok(value: Any, expected: Any) -> bool | None:
    """Does `value` fit `expected`? None when `expected` is not a plain config type."""
    if expected is type(None):
        return value is None
    origin = typing.get_origin(expected)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        results = [_basic_ok(value, a) for a in typing.get_args(expected)]
        return True if any(r is True for r in results) else (None if all(r is None for r in results) else False)
    base = origin or expected
    if base in (list, tuple):
        return isinstance(value, (list, tuple))
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base in (bool, str, dict):
        return isinstance(value, base)
    return None


def _type_ok(value: Any, annotation: Any, default: Any) -> bool:
    """Loose check of a config value against a parameter's annotation or default."""
    if value is None:
        return True
    expected = annotation
    if isinstance(expected, str) or expected is inspect.Parameter.empty:
        expected = type(default) if default not in (inspect.Parameter.empty, None) else None
    return expected is None or _basic_ok(value, expected) is not False


def _annotation(entry: Entry, name: str) -> Any:
    target = entry.obj.__init__ if inspect.isclass(entry.obj) else entry.obj
    try:
        return typing.get_type_hints(target).get(name, inspect.Parameter.empty)
    except Exception:  # noqa: BLE001 - unresolvable hints: fall back to the default's type
        return inspect.Parameter.empty


def check_params(entry: Entry, params: dict[str, Any], key: str, skip: tuple[str, ...] = (),
                 schedules: bool = False) -> list[str]:
    """Unknown, missing and mistyped parameters of one component."""
    problems = []
    accepted = entry.parameters()
    for name, value in params.items():
        if name in skip:
            continue
        if name not in accepted:
            if entry.accepts_any_kwargs():
                continue
            allowed = ", ".join(accepted) or "none"
            problems.append(
                f"{key}.{name}: unknown parameter of {entry.name} (value {value!r})."
                f"{did_you_mean(name, list(accepted))} Allowed: {allowed}"
            )
            continue
        p = accepted[name]
        if schedules and is_schedule(value):
            problems += check_schedule(value, f"{key}.{name}")
            continue
        if not _type_ok(value, _annotation(entry, name), p.default):
            want = p.default if p.default is not inspect.Parameter.empty else _annotation(entry, name)
            want_t = type(want).__name__ if not isinstance(want, type) else want.__name__
            problems.append(f"{key}.{name}: expected {want_t}, got {value!r} ({type(value).__name__})")
    for name in entry.required():
        if name not in params and name not in skip:
            problems.append(f"{key}.{name}: required parameter of {entry.name} is missing")
    return problems


def check_schedule(spec: dict[str, Any], key: str) -> list[str]:
    name = spec.get("schedule")
    if name not in HPARAM_SCHEDULES:
        return [f"{key}.schedule: {HPARAM_SCHEDULES.unknown_message(name)}"]
    params = {k: v for k, v in spec.items() if k != "schedule"}
    return check_params(HPARAM_SCHEDULES.get(name), params, key)


def check_component(cfg: Any, key: str, registry: Registry, skip: tuple[str, ...] = (),
                    schedules: bool = False, optional: bool = False) -> list[str]:
    if cfg is None and optional:
        return []
    if not isinstance(cfg, dict):
        return [f"{key}: expected a mapping with a 'name' key, got {cfg!r}. Available: {', '.join(registry.names())}"]
    name = cfg.get("name")
    if name is None:
        return [f"{key}.name: missing. Available: {', '.join(registry.names())}"]
    if name not in registry:
        return [f"{key}.name: {registry.unknown_message(name)}"]
    params = {k: v for k, v in cfg.items() if k != "name"}
    return check_params(registry.get(name), params, key, skip, schedules)


def _check_section_keys(section: Any, key: str, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(section, dict):
        return [f"{key}: expected a mapping, got {section!r}"]
    return [
        f"{key}.{k}: unknown key (value {v!r}).{did_you_mean(k, allowed)} Allowed: {', '.join(allowed)}"
        for k, v in section.items() if k not in allowed
    ]


def check_trainer(t: dict[str, Any]) -> list[str]:
    problems = _check_section_keys(t, "trainer", tuple(DEFAULTS["trainer"]))
    if problems and not isinstance(t, dict):
        return problems

    def positive_int(k: str, optional: bool = False) -> None:
        v = t.get(k)
        if v is None and optional:
            return
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            problems.append(f"trainer.{k}: expected a positive integer, got {v!r}")

    positive_int("max_epochs")
    positive_int("accumulate")
    positive_int("val_every")
    positive_int("max_steps", optional=True)
    positive_int("checkpoint_every_steps", optional=True)
    if str(t.get("precision")) not in PRECISIONS:
        problems.append(f"trainer.precision: got {t.get('precision')!r}. Allowed: 32, 16, bf16")
    dev = str(t.get("device"))
    if dev.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
        problems.append(f"trainer.device: got {dev!r}. Allowed: auto, cpu, cuda, cuda:N, mps")
    if t.get("strategy") not in ("auto", "ddp", "single"):
        problems.append(f"trainer.strategy: got {t.get('strategy')!r}. Allowed: auto, ddp, single")
    es = t.get("early_stopping")
    if es is not None:
        problems += _check_section_keys(es, "trainer.early_stopping", ("monitor", "mode", "patience", "min_delta"))
        if isinstance(es, dict) and es.get("mode", "min") not in ("min", "max"):
            problems.append(f"trainer.early_stopping.mode: got {es.get('mode')!r}. Allowed: min, max")
    return problems


def check_list(items: Any, key: str, registry: Registry, common: tuple[str, ...]) -> list[str]:
    if not isinstance(items, list):
        return [f"{key}: expected a list of {{name: ...}} mappings, got {items!r}"]
    problems = []
    for i, item in enumerate(items):
        problems += check_component(item, f"{key}[{i}]", registry, skip=common)
    return problems


def validate_config(cfg: dict[str, Any], load: bool = True) -> None:
    """Raise ConfigError listing every problem of a resolved config (plugins imported first)."""
    problems = load_plugins(cfg.get("plugins") or []) if load else []
    problems += [
        f"{k}: unknown top-level key.{did_you_mean(k, TOP_LEVEL)} Allowed: {', '.join(TOP_LEVEL)}"
        for k in cfg if k not in TOP_LEVEL
    ]
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        problems.append(f"seed: expected an integer, got {cfg.get('seed')!r}")
    problems += check_component(cfg.get("data"), "data", DATASETS, skip=DATA_COMMON)
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    if data.get("loader") not in ("auto", "memory", "dataloader"):
        problems.append(f"data.loader: got {data.get('loader')!r}. Allowed: auto, memory, dataloader")
    bs = data.get("batch_size")
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        problems.append(f"data.batch_size: expected a positive integer, got {bs!r}")
    for k in ("val_fraction", "test_fraction"):
        v = data.get(k)
        if not isinstance(v, (int, float)) or not 0 <= v < 1:
            problems.append(f"data.{k}: expected a number in [0, 1), got {v!r}")
    problems += check_component(cfg.get("model"), "model", MODELS, schedules=True)
    problems += check_component(cfg.get("loss"), "loss", LOSSES, schedules=True, optional=True)
    problems += check_component(cfg.get("optimizer"), "optimizer", OPTIMIZERS)
    opt_name = str((cfg.get("optimizer") or {}).get("name", "")).lower()
    if opt_name in UNSUPPORTED_OPTIMIZERS:
        problems.append(f"optimizer.name: '{opt_name}' {UNSUPPORTED_OPTIMIZERS[opt_name]}; "
                        "the Trainer does not support it. Use adam, adamw or sgd")
    problems += check_component(cfg.get("scheduler"), "scheduler", SCHEDULERS,
                                skip=("interval", "monitor", *LENGTH_PARAMS), optional=True)
    sched = cfg.get("scheduler")
    if isinstance(sched, dict) and sched.get("interval", "epoch") not in ("epoch", "step"):
        problems.append(f"scheduler.interval: got {sched.get('interval')!r}. Allowed: epoch, step")
    problems += check_trainer(cfg.get("trainer") or {})
    if cfg.get("diagnostics"):
        from runlab.diagnostics.runner import validate_diagnostics

        problems += validate_diagnostics(cfg["diagnostics"])  # model checks follow in prepare()
    problems += check_list(cfg.get("callbacks") or [], "callbacks", CALLBACKS, ("name",))
    problems += _check_section_keys(cfg.get("logging"), "logging", tuple(DEFAULTS["logging"]))
    if problems:
        raise ConfigError(problems)
