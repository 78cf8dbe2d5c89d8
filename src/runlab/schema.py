"""The typed schema of the framework's own config sections: one dataclass per section.

Every framework key is declared once, here, with its type, default and range; the
defaults (`config.DEFAULTS`) and the checks (`check_config`) are both derived from these
classes, so adding a key is one line:

    log_every_steps: int = key(50, ge=1)

Types are checked strictly (a string is not a boolean, `1e23` is not an integer, `true`
is not a number), ranges inclusively (`ge`, `le`) or exclusively (`gt`, `lt`), unknown
keys are reported with a did-you-mean, and every problem is reported at once. The
component sections (`model`, `loss`, `optimizer`, `scheduler`, `diagnostics`,
`callbacks`) are typed `Any` here: their keys are the parameters of the registered
component they name, and `runlab.validate` checks them against the registry. `data`
is open the same way: keys not declared in `DataConfig` go to the dataset.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from runlab.errors import did_you_mean

MAX_NAME_BYTES = 200
"""A run id is the name plus 21 characters (`-YYYYmmdd-HHMMSS-xxxx`, `-ens` for ensembles)
and must fit the 255-byte limit of a file name."""


def key(default: Any, *, ge: float | None = None, gt: float | None = None,
        le: float | None = None, lt: float | None = None,
        check: typing.Callable[[Any], str | None] | None = None) -> Any:
    """A schema field: its default and range (`ge` >=, `gt` >, `le` <=, `lt` <) and an
    optional `check(value)` that returns what is wrong, or None."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt, "check": check}
    return field(default_factory=lambda: copy.deepcopy(default), metadata=bounds)


def _device(value: str) -> str | None:
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return f"got {value!r}. Allowed: auto, cpu, cuda, cuda:N, mps"


def _name(value: str) -> str | None:
    size = len(value.encode("utf-8"))
    if not value:
        return "must not be empty"
    if size > MAX_NAME_BYTES:
        return (f"is {size} bytes long; at most {MAX_NAME_BYTES} (the run id, name plus a "
                "time stamp, must fit a 255-byte file name)")
    return None


@dataclass
class DataConfig:
    """`data:` keys the framework consumes; every other key goes to the dataset."""

    open_keys = True  # class attribute, not a field: undeclared keys belong to the dataset
    name: str | None = key(None)
    root: str = key("./data")
    batch_size: int = key(128, ge=1)
    eval_batch_size: int | None = key(None, ge=1)
    val_fraction: float = key(0.1, ge=0, lt=1)
    test_fraction: float = key(0.1, ge=0, lt=1)
    split_seed: int = key(0, ge=0, le=2**63 - 1)
    loader: Literal["auto", "memory", "dataloader"] = key("auto")
    num_workers: int = key(0, ge=0)
    drop_last: bool = key(False)
    shuffle: bool = key(True)  # false: every epoch walks the training split in its stored order
    transforms: Any = key(None)  # {train: [{name: ..., **params}], eval: [...]}: validate.py
    memory_limit_mb: int = key(4096, ge=1)  # `loader: auto` batches larger tensors through a DataLoader
    prefetch_factor: int | None = key(None, ge=1)  # batches each DataLoader worker prepares ahead

    @staticmethod
    def cross_checks(data: dict[str, Any]) -> list[str]:
        val, test = data.get("val_fraction"), data.get("test_fraction")
        if _is_number(val) and _is_number(test) and val + test >= 1:
            return [f"data.val_fraction + data.test_fraction: {val} + {test} leaves no "
                    "training data; their sum must be below 1"]
        return []


@dataclass
class EarlyStoppingConfig:
    monitor: str = key("val/loss")
    mode: Literal["min", "max"] | None = key(None)  # default: the monitor's goal (metrics:)
    patience: int = key(5, ge=0)
    min_delta: float = key(0.0, ge=0)


@dataclass
class TrainerConfig:
    max_epochs: int = key(10, ge=1)
    max_steps: int | None = key(None, ge=1)
    device: str = key("auto", check=_device)
    precision: Literal[32, 16, "32", "16", "bf16", "16-mixed", "bf16-mixed"] = key(32)
    grad_clip: float | None = key(None, gt=0)
    accumulate: int = key(1, ge=1)
    compile: bool = key(False)
    val_every: int = key(1, ge=1)
    test: bool = key(True)
    checkpoint_every: int = key(1, ge=0)  # epochs; 0: only at the end (and by steps/minutes)
    checkpoint_every_steps: int | None = key(None, ge=1)
    checkpoint_every_minutes: float | None = key(None, gt=0)
    early_stopping: EarlyStoppingConfig | None = key(None)
    monitor: str | None = key(None)
    deterministic: bool = key(False)
    strategy: Literal["auto", "ddp", "single"] = key("auto")


@dataclass
class WandbConfig:
    enabled: bool = key(False)
    project: str = key("runlab")
    entity: str | None = key(None)
    mode: Literal["online", "offline", "disabled"] | None = key(None)
    tags: list[str] = key([])
    group: str | None = key(None)  # default: the sweep setting or the ensemble id
    job_type: str | None = key(None)  # default: sweep, ensemble or train


@dataclass
class LoggingConfig:
    log_every_steps: int = key(50, ge=1)
    console: bool = key(True)
    tensorboard: bool = key(False)
    wandb: WandbConfig = key(dataclasses.asdict(WandbConfig()))
    writers: Any = key([])  # [{name: <registered writer>, **params}]: runlab.logging.builtins


@dataclass
class RunConfig:
    """A whole run config. `defaults:` (files to compose) is consumed while loading."""

    name: str = key("run", check=_name)
    seed: int = key(0, ge=0, le=2**63 - 1)
    plugins: list[str] = key([])
    data: DataConfig = key(None)
    model: Any = key({"name": None})
    loss: Any = key(None)
    optimizer: Any = key({"name": "adamw", "lr": 1.0e-3})
    scheduler: Any = key(None)
    optimizers: Any = key(None)  # {name: {name: adam, lr: ..., params: ..., scheduler: ...}}
    step: Any = key(None)  # a registered step component ({name: ...}) that owns training_step
    trainer: TrainerConfig = key(None)
    diagnostics: Any = key([])
    callbacks: Any = key([])
    metrics: Any = key({})  # glob pattern -> {goal, summary, k, x_axis, family}: metric_rules
    logging: LoggingConfig = key(None)


def defaults(cls: type = RunConfig) -> dict[str, Any]:
    """The defaults of a section as a plain dict (nested sections filled in)."""
    hints = _hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        value = f.default_factory()  # type: ignore[misc]
        section = _section_type(hints[f.name])
        if value is None and section is not None and not _nullable(hints[f.name]):
            value = defaults(section)
        out[f.name] = value
    return out


# ---------------------------------------------------------------- checking

def check_config(cfg: dict[str, Any]) -> list[str]:
    """Every problem of the framework sections of a resolved config, as messages that name
    the key, the value given and what is allowed."""
    return check_section(RunConfig, cfg, "", extra_allowed=("defaults",))


def check_section(cls: type, data: Any, prefix: str, extra_allowed: tuple[str, ...] = ()
                  ) -> list[str]:
    if not isinstance(data, dict):
        return [f"{prefix}: expected a mapping, got {data!r:.80}"]
    hints = _hints(cls)
    declared = {f.name: f for f in dataclasses.fields(cls)}
    problems = []
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if name in declared:
            problems += _check_value(value, hints[name], path, declared[name].metadata)
        elif name not in extra_allowed and not getattr(cls, "open_keys", False):
            allowed = list(declared)
            hint = did_you_mean(name, allowed)
            what = "unknown top-level key" if not prefix else f"unknown key (value {value!r:.60})"
            problems.append(f"{path}: {what}.{hint} Allowed: {', '.join(allowed)}")
    cross = getattr(cls, "cross_checks", None)
    if cross is not None and not problems:
        problems += cross(data)
    return problems


def _check_value(value: Any, tp: Any, path: str, meta: typing.Mapping[str, Any]) -> list[str]:
    if tp is Any:
        return []
    if value is None:
        return [] if _nullable(tp) else [f"{path}: expected {_describe(tp, meta)}, got null"]
    tp = _strip_none(tp)
    section = _section_type(tp)
    if section is not None:
        return check_section(section, value, path)
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if any(value == c and type(value) is type(c) for c in choices):
            return []
        shown = list(dict.fromkeys(str(c) for c in choices))
        hint = did_you_mean(value, shown)
        return [f"{path}: got {value!r:.80}.{hint} Allowed: {', '.join(shown)}"]
    if not _type_ok(value, tp):
        return [f"{path}: expected {_describe(tp, meta)}, got {value!r:.80} "
                f"({type(value).__name__})"]
    problems = []
    for bound, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                            ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        b = meta.get(bound)
        if b is not None and not ok(value, b):
            problems.append(f"{path}: must be {word} {b}, got {value!r}")
    check = meta.get("check")
    if check is not None and not problems:
        why = check(value)
        if why:
            problems.append(f"{path}: {why}")
    return problems


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return _is_number(value) and math.isfinite(value)
    if origin is str:
        return isinstance(value, str)
    if origin is list:
        args = typing.get_args(tp)
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value if args)
    if origin is dict:
        return isinstance(value, dict)
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(tp: Any, meta: typing.Mapping[str, Any]) -> str:
    tp = _strip_none(tp)
    origin = typing.get_origin(tp) or tp
    if _section_type(tp) is not None:
        return "a mapping"
    if origin is int and meta.get("ge") in (0, 1):
        return "a positive integer" if meta["ge"] == 1 else "an integer >= 0"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
             list: "a list" + (" of strings" if typing.get_args(tp) == (str,) else ""),
             dict: "a mapping"}
    return names.get(origin, str(tp))


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _nullable(tp: Any) -> bool:
    args = _union_args(tp)
    return type(None) in args or any(
        typing.get_origin(a) is Literal and None in typing.get_args(a) for a in args)


def _strip_none(tp: Any) -> Any:
    args = [a for a in _union_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 else tp


def _section_type(tp: Any) -> type | None:
    tp = _strip_none(tp)
    return tp if dataclasses.is_dataclass(tp) else None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]
