"""Settings (one assignment of the swept parameters) and the run configs they produce.

A setting's id is deterministic (`s007`: the grid index, or the order in which the
sampler proposed it), so a resumed sweep finds its runs again.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runlab.errors import ConfigError


@dataclass
class Setting:
    """One point of the search space; its runs are `seeds` x this setting."""

    sid: str
    params: dict[str, Any]
    trial: int | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    def sweep_info(self, sweep: str) -> dict[str, Any]:
        """What the trainer stores under run.json `sweep`."""
        return {"name": sweep, "setting": self.sid, "trial": self.trial, "params": self.params}


def setting_id(index: int, total: int) -> str:
    """`s007`: zero-padded so ids sort like their index."""
    return f"s{index:0{max(3, len(str(max(total - 1, 0))))}d}"


def run_id(sweep: str, sid: str, seed: int) -> str:
    return f"{sweep}-{sid}-s{seed}"


def grid(params: list) -> Iterator[dict[str, Any]]:
    """Every combination of the parameters' values, the last parameter varying fastest."""
    keys = [p.key for p in params]
    for combo in itertools.product(*(p.values for p in params)):
        yield dict(zip(keys, combo, strict=True))


def grid_size(params: list) -> int:
    n = 1
    for p in params:
        n *= len(p.values or ())
    return n


def apply_params(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of `raw` with each dotted key set (lists are indexed by number)."""
    out = copy.deepcopy(raw)
    for key, value in params.items():
        *parents, leaf = str(key).split(".")
        node: Any = out
        for part in parents:
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: cannot set a key below a {type(node).__name__}")
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
        if isinstance(node, list) and leaf.isdigit() and int(leaf) < len(node):
            node[int(leaf)] = copy.deepcopy(value)
        elif isinstance(node, dict):
            node[leaf] = copy.deepcopy(value)
        else:
            raise ConfigError(f"{key}: cannot set a key below a {type(node).__name__}")
    return out


def resolve_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Resolve interpolations and fill framework defaults, as `runlab train` would."""
    from runlab.config import fill_defaults

    if "${" in json.dumps(raw, default=str):  # OmegaConf only when needed: it costs ~1 ms
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        try:
            raw = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
        except OmegaConfBaseException as e:
            raise ConfigError(f"cannot resolve interpolation: {e}".split("\n")[0]) from None
    return fill_defaults(raw)


def build_config(raw: dict[str, Any], params: dict[str, Any], name: str) -> dict[str, Any]:
    """The resolved run config of a setting, named after the sweep."""
    cfg = resolve_config(apply_params(raw, params))
    cfg["name"] = name
    return cfg


def validate(settings: list[Setting]) -> None:
    """Check every setting's run config; ConfigError lists each distinct problem once."""
    validate_config = _validator()
    if validate_config is None:
        return
    problems: dict[str, str] = {}
    for s in settings:
        try:
            validate_config(s.config)
        except ConfigError as e:
            for p in e.problems:
                problems.setdefault(p, f"setting {s.sid} {json.dumps(s.params, default=str)}: {p}")
    if problems:
        raise ConfigError(list(problems.values()))


def _validator() -> Any:
    # validate_config lands with the trainer; until then the trainer checks each config itself.
    try:
        from runlab.config import validate_config
    except ImportError:
        return None
    return validate_config


def write_config(setting: Setting, folder: Path) -> Path:
    """configs/<sid>.yaml, written once (atomically) so concurrent sweeps agree on it."""
    from runlab.config import save_config

    path = folder / f"{setting.sid}.yaml"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_config(setting.config, tmp)
        tmp.replace(path)
    return path
