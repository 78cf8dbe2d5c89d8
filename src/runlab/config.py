"""Load, compose, override, validate and save run configs.

A config is one YAML file (plus optional `defaults:` files it composes) and
`KEY=VALUE` overrides from the command line. Everything is resolved to a plain
dict before anything runs; `validate_config` reports every problem at once.

Example:
    >>> cfg = load_config("configs/quickstart.yaml", ["trainer.max_epochs=3"])
    >>> cfg["trainer"]["max_epochs"]
    3
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from runlab.errors import ConfigError, did_you_mean  # noqa: F401 - did_you_mean: importers
from runlab.schema import defaults

DEFAULTS: dict[str, Any] = defaults()
"""Every framework key's default, derived from the typed schema in `runlab.schema`."""

# Keys of `data` that the framework consumes; everything else goes to the dataset.
DATA_COMMON = tuple(DEFAULTS["data"])
# Keys that change nothing about the numbers a run produces (left out of the config hash).
NON_RESULT_KEYS = ("name", "plugins", "diagnostics", "logging", "metrics",
                   "trainer.checkpoint_every",
                   "trainer.checkpoint_every_steps", "trainer.checkpoint_every_minutes",
                   "trainer.device", "data.root", "data.num_workers", "data.prefetch_factor",
                   "data.download", "data.mirror")
# Keys added to the config after runs were recorded without them, with their defaults: a key
# at its default is left out of the hash, so older runs still resume without a config change.
LATER_KEYS = {"optimizers": None, "step": None, "data.transforms": None,
              "data.memory_limit_mb": 4096, "data.shuffle": True}


# ---------------------------------------------------------------- loading

def parse_value(text: str) -> Any:
    """Type a CLI override value: `8`, `1e-3`, `[1,2]`, `null`, `true`, `{a: 1}`, `abc`."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse override value {text!r}: {e}") from None
    if isinstance(value, str):  # YAML 1.1 reads `1e-3` as a string
        try:
            return float(value) if value.lower() not in ("nan", "inf", "-inf") else value
        except ValueError:
            return value
    return value


def parse_overrides(overrides: list[str]) -> list[tuple[str, str, Any]]:
    """`KEY=VALUE` (set; adds a missing key too), `+KEY=VALUE` (add a key that is not
    there yet), `++KEY=VALUE` (same as plain) and `~KEY` (remove), as Hydra spells them.
    Returns (op, dotted key, value) with op one of "set", "add", "remove"."""
    parsed, problems = [], []
    for item in overrides:
        op, text = ("remove", item[1:]) if item.startswith("~") else \
            ("set", item[2:]) if item.startswith("++") else \
            ("add", item[1:]) if item.startswith("+") else ("set", item)
        key, sep, value = text.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")) or (op == "remove") == bool(sep):
            problems.append(
                f"bad override {item!r}: expected KEY=VALUE with a dotted key "
                "(e.g. model.latent_dim=8), +KEY=VALUE to add a key or ~KEY to remove one"
            )
            continue
        try:
            parsed.append((op, key, None if op == "remove" else parse_value(value)))
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return parsed


def apply_overrides(cfg: Any, overrides: list[tuple[str, str, Any]]) -> None:
    """Apply parsed overrides to an OmegaConf config in place; ConfigError lists every
    `+KEY` that is already set and every `~KEY` that is not."""
    from omegaconf import OmegaConf

    problems = []
    for op, key, value in overrides:
        *parents, leaf = key.split(".")
        parent = OmegaConf.select(cfg, ".".join(parents)) if parents else cfg
        present = OmegaConf.is_dict(parent) and leaf in parent
        if op == "add" and present:
            problems.append(f"+{key}: {key} is already set (to {OmegaConf.select(cfg, key)!r}); "
                            f"use {key}=VALUE to change it")
        elif op == "remove" and not present:
            known = list(flatten(OmegaConf.to_container(cfg, resolve=False)))
            problems.append(f"~{key}: no such key to remove.{did_you_mean(key, known)}")
        elif op == "remove":
            del parent[leaf]
        else:
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    if problems:
        raise ConfigError(problems)


def _read_yaml(path: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from runlab.runs.store import load_yaml_text

    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:  # size and alias-bomb caps first: OmegaConf would expand every alias in memory
        load_yaml_text(path.read_bytes(), str(path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot parse {path}: {e}") from None
    try:
        # OmegaConf's loader reads `1e-3` as a float, unlike plain YAML 1.1.
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # noqa: BLE001 - any parse error is a config error
        raise ConfigError(f"cannot parse {path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def compose(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Merge a file over its `defaults:` (earlier files first, this file last)."""
    from omegaconf import OmegaConf

    path = path.resolve()
    if path in seen:
        raise ConfigError(f"defaults cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    data = _read_yaml(path)
    defaults = data.pop("defaults", []) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"defaults in {path} must be a list of YAML files, got {defaults!r}")
    merged = OmegaConf.create({})
    for item in defaults:
        merged = OmegaConf.merge(merged, compose(path.parent / str(item), (*seen, path)))
    plugins = data.get("plugins") or []
    if isinstance(plugins, list):  # plugin paths are relative to the file that names them
        data["plugins"] = [str((path.parent / str(p)).resolve()) for p in plugins]
    merged = OmegaConf.merge(merged, OmegaConf.create(data))
    return OmegaConf.to_container(merged, resolve=False)


def _merge_defaults(base: Any, data: Any) -> Any:
    if isinstance(base, dict) and isinstance(data, dict):
        out = dict(base)
        for k, v in data.items():
            out[k] = _merge_defaults(base.get(k), v) if k in base else v
        return out
    return data if data is not None or base is None else data


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose `path` with its defaults, apply overrides, resolve interpolations.

    Returns a plain dict with framework defaults filled in (the resolved config)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    parsed = parse_overrides(overrides or [])
    cfg = OmegaConf.create(compose(Path(path)))
    apply_overrides(cfg, parsed)
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(_unresolvable(OmegaConf.to_container(cfg, resolve=False), e)) from None
    return fill_defaults(resolved)


def _unresolvable(raw: dict[str, Any], error: Exception) -> list[str]:
    """An interpolation that cannot resolve, after the unknown keys of the config: a
    misspelt key (`detph: 2`) is the usual reason `${model.depth}` is not found."""
    import re

    from runlab.validate import validate_config as _validate

    try:
        _validate(fill_defaults(raw))
        unknown = []
    except ConfigError as e:
        unknown = [p for p in e.problems if "unknown" in p.split(":", 1)[-1][:40]]
    message = f"cannot resolve interpolation: {error}".split("\n")[0]
    missing = re.search(r"Interpolation key '([^']+)' not found", str(error))
    if missing:
        message = message.rstrip(".") + "." + did_you_mean(missing.group(1), list(flatten(raw)))
    return [*unknown, message]


def fill_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """The user's config over the framework defaults (components' own params untouched)."""
    out = copy.deepcopy(cfg)
    for key in ("data", "trainer", "logging"):
        if isinstance(out.get(key), dict) or key not in out:
            out[key] = _merge_defaults(DEFAULTS[key], out.get(key) or {})
    for key in ("name", "seed", "plugins", "model", "loss", "optimizer", "scheduler", "optimizers",
                "step", "diagnostics", "callbacks"):
        out.setdefault(key, copy.deepcopy(DEFAULTS[key]))
    if isinstance(out["optimizer"], dict) and "name" not in out["optimizer"]:
        out["optimizer"] = {**DEFAULTS["optimizer"], **out["optimizer"]}  # `optimizer.lr=...` alone
    if isinstance(out.get("logging"), dict) and out["logging"].get("wandb") is True:
        out["logging"]["wandb"] = {**DEFAULTS["logging"]["wandb"], "enabled": True}
    out["name"] = sanitize_name(str(out.get("name") or "run"))
    if isinstance(out["data"], dict) and out["data"].get("root"):
        out["data"]["root"] = str(Path(str(out["data"]["root"])).expanduser().resolve())
    return out


def sanitize_name(name: str) -> str:
    """Run names become folder names: no path separators, no `..`, no odd characters."""
    keep = "".join(c if c.isalnum() or c in "-_.=+" else "-" for c in name)
    while ".." in keep or "--" in keep:
        keep = keep.replace("..", ".").replace("--", "-")
    return keep.strip(".-") or "run"


def save_config(cfg: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None))


# ---------------------------------------------------------------- flatten / hash

def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def result_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that changes the numbers a run produces."""
    return {
        k: v for k, v in flatten(cfg).items()
        if not any(k == n or k.startswith(n + ".") for n in NON_RESULT_KEYS)
        and not (k in LATER_KEYS and v == LATER_KEYS[k])
    }


def config_hash(cfg: dict[str, Any]) -> str:
    blob = json.dumps(result_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences of the result-affecting keys of two configs."""
    fa, fb = result_config(a), result_config(b)
    lines = []
    for k in sorted(set(fa) | set(fb)):
        if fa.get(k, "<absent>") != fb.get(k, "<absent>"):
            lines.append(f"{k}: {fa.get(k, '<absent>')!r} -> {fb.get(k, '<absent>')!r}")
    return lines


def validate_config(cfg: dict[str, Any], load_plugins: bool = True) -> None:
    """Raise ConfigError listing every problem (see runlab.validate)."""
    from runlab.validate import validate_config as _validate

    _validate(cfg, load=load_plugins)
