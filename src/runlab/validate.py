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

from runlab.config import DATA_COMMON, DEFAULTS, did_you_mean
from runlab.errors import ConfigError
from runlab.hparams import is_schedule
from runlab.metric_rules import check_early_stopping, check_section
from runlab.optim import LENGTH_PARAMS, OPTIMIZER_KEYS
from runlab.registry import (
    CALLBACKS,
    DATASETS,
    HPARAM_SCHEDULES,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    STEPS,
    Entry,
    Registry,
)
from runlab.schema import check_config

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


def check_optimizer(spec: Any, key: str, several: bool) -> list[str]:
    """One optimizer: its constructor parameters, `params`, `groups`, `no_decay_bias_norm`
    and (under `optimizers:`) its own `scheduler`."""
    problems = check_component(spec, key, OPTIMIZERS, skip=OPTIMIZER_KEYS)
    if not isinstance(spec, dict) or spec.get("name") not in OPTIMIZERS:
        return problems
    name = str(spec["name"]).lower()
    if name in UNSUPPORTED_OPTIMIZERS:
        problems.append(f"{key}.name: '{name}' {UNSUPPORTED_OPTIMIZERS[name]}; "
                        "the Trainer does not support it. Use adam, adamw or sgd")
    for k in ("params", "scheduler") if not several else ():
        if k in spec:
            where = "the top-level `scheduler:`" if k == "scheduler" else "`optimizers:` (several optimizers)"
            problems.append(f"{key}.{k}: only under optimizers.<name>; use {where}")
    if "params" in spec and not _prefixes_ok(spec["params"]):
        problems.append(f"{key}.params: expected a module name prefix or a list of them "
                        f"(e.g. generator or [encoder, head]), got {spec['params']!r}")
    if not isinstance(spec.get("no_decay_bias_norm", False), bool):
        problems.append(f"{key}.no_decay_bias_norm: expected true or false, got {spec['no_decay_bias_norm']!r}")
    groups = spec.get("groups", [])
    if not isinstance(groups, list):
        return [*problems, f"{key}.groups: expected a list of {{params: ..., lr: ...}} mappings, got {groups!r}"]
    entry = OPTIMIZERS.get(name)
    for i, g in enumerate(groups):
        gkey = f"{key}.groups[{i}]"
        if not isinstance(g, dict) or not _prefixes_ok(g.get("params")):
            problems.append(f"{gkey}: expected a mapping with `params` (a module name prefix or a list "
                            f"of them) and the group's options (lr, weight_decay, ...), got {g!r}")
            continue
        problems += check_params(entry, {k: v for k, v in g.items() if k != "params"}, gkey,
                                 skip=tuple(entry.required()))
    if several:
        problems += check_scheduler(spec.get("scheduler"), f"{key}.scheduler")
    return problems


def _prefixes_ok(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(v, str) for v in items)


def check_scheduler(sched: Any, key: str) -> list[str]:
    problems = check_component(sched, key, SCHEDULERS, skip=("interval", "monitor", *LENGTH_PARAMS),
                               optional=True)
    if isinstance(sched, dict) and sched.get("interval", "epoch") not in ("epoch", "step"):
        problems.append(f"{key}.interval: got {sched.get('interval')!r}. Allowed: epoch, step")
    return problems


def check_optimizers(cfg: dict[str, Any]) -> list[str]:
    """`optimizer:` + `scheduler:` (one optimizer), or `optimizers: {name: {...}}` (several)."""
    several = cfg.get("optimizers")
    if several is None:
        return (check_optimizer(cfg.get("optimizer"), "optimizer", several=False)
                + check_scheduler(cfg.get("scheduler"), "scheduler"))
    if not isinstance(several, dict) or not several:
        return [f"optimizers: expected a mapping of names to optimizers, e.g. "
                f"{{gen: {{name: adam, lr: 2.0e-4, params: generator}}, disc: {{...}}}}, got {several!r}"]
    problems = []
    if cfg.get("optimizer") != DEFAULTS["optimizer"] or cfg.get("scheduler") is not None:
        problems.append("optimizers: given together with optimizer/scheduler; with several optimizers "
                        "put each one's settings and scheduler under optimizers.<name>")
    for name, spec in several.items():
        problems += check_optimizer(spec, f"optimizers.{name}", several=True)
    rest = [n for n, spec in several.items() if isinstance(spec, dict) and spec.get("params") is None]
    if len(rest) > 1:
        problems.append(f"optimizers: {', '.join(rest)} have no `params`; at most one optimizer may "
                        "take the parameters the others do not name")
    return problems


def check_list(items: Any, key: str, registry: Registry, common: tuple[str, ...]) -> list[str]:
    if not isinstance(items, list):
        return [f"{key}: expected a list of {{name: ...}} mappings, got {items!r}"]
    problems = []
    for i, item in enumerate(items):
        problems += check_component(item, f"{key}[{i}]", registry, skip=common)
    return problems


def check_data_loading(data: dict[str, Any]) -> list[str]:
    """data.transforms, built once, so a bad name or parameter is found now (the other
    data keys are typed in runlab.schema)."""
    from runlab.data.transforms import pipelines

    problems = []
    t = data.get("transforms")
    if t is not None and (not isinstance(t, dict) or set(t) - {"train", "eval"}):
        problems.append(f"data.transforms: expected a mapping with keys train and/or eval (each a "
                        f"list of {{name: ...}}), got {t!r}")
    else:
        try:
            pipelines(t, 0)
        except ConfigError as e:
            problems += e.problems
    return problems


def validate_config(cfg: dict[str, Any], load: bool = True) -> None:
    """Raise ConfigError listing every problem of a resolved config (plugins imported first)."""
    problems = load_plugins(cfg.get("plugins") or []) if load else []
    problems += check_config(cfg)  # the framework's own sections: runlab.schema
    problems += check_component(cfg.get("data"), "data", DATASETS, skip=DATA_COMMON)
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    problems += check_data_loading(data)
    problems += check_component(cfg.get("model"), "model", MODELS, schedules=True)
    problems += check_component(cfg.get("loss"), "loss", LOSSES, schedules=True, optional=True)
    problems += check_optimizers(cfg)
    problems += check_component(cfg.get("step"), "step", STEPS, optional=True)
    if cfg.get("diagnostics"):
        from runlab.diagnostics.runner import validate_diagnostics

        problems += validate_diagnostics(cfg["diagnostics"])  # model checks follow in prepare()
    problems += check_list(cfg.get("callbacks") or [], "callbacks", CALLBACKS, ("name",))
    problems += check_section(cfg.get("metrics")) or check_early_stopping(cfg)
    from runlab.logging.builtins import validate_logging

    problems += validate_logging(cfg.get("logging"))
    if problems:
        raise ConfigError(problems)
