"""One generic registry for every kind of component (models, datasets, losses, ...).

Entries are registered with a decorator and carry a one-line description, so
`runlab list KIND` and the config validator come for free.

Example:
    >>> from runlab.registry import MODELS
    >>> @MODELS.register("tiny", description="A one-layer model.")
    ... class Tiny(torch.nn.Module): ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from runlab.errors import did_you_mean

# Parameters every component receives from the framework, never from the config.
FRAMEWORK_PARAMS = ("meta", "root", "params", "optimizer", "self", "args", "kwargs", "context")


@dataclass
class Entry:
    """A registered component: the callable that builds it and what to show about it."""

    name: str
    obj: Callable[..., Any]
    description: str = ""
    source: str = "runlab"

    def signature(self) -> inspect.Signature:
        target = self.obj.__init__ if inspect.isclass(self.obj) else self.obj
        try:
            return inspect.signature(target)
        except (TypeError, ValueError):
            return inspect.Signature()

    def parameters(self) -> dict[str, inspect.Parameter]:
        """Parameters a config may set (framework-supplied ones left out)."""
        return {
            n: p
            for n, p in self.signature().parameters.items()
            if n not in FRAMEWORK_PARAMS
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def accepts_any_kwargs(self) -> bool:
        return any(p.kind == p.VAR_KEYWORD for p in self.signature().parameters.values())

    def required(self) -> list[str]:
        return [n for n, p in self.parameters().items() if p.default is p.empty]

    def describe_params(self, filled: dict[str, str] | None = None) -> str:
        """`name, name=default, ...`; `filled` names the defaults the framework supplies
        in place of the constructor's (`T_max` -> "run length")."""
        parts = []
        for n, p in self.parameters().items():
            if filled and n in filled:
                parts.append(f"{n}={filled[n]}")
            else:
                parts.append(n if p.default is p.empty else f"{n}={p.default!r}")
        return ", ".join(parts)


class Registry:
    """Maps names to components of one kind. Names are case-insensitive."""

    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._loader = loader  # imports the built-ins lazily, on first lookup
        self._loaded = loader is None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def register(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        override: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a class or function under `name` (default: its own name)."""

        def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
            key = (name or obj.__name__).lower()
            if key in self._entries and not override and self._entries[key].obj is not obj:
                raise ValueError(
                    f"{self.kind} '{key}' is already registered by {self._entries[key].source}; "
                    "pass override=True to replace it"
                )
            doc = description or " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
            module = getattr(obj, "__module__", "") or ""
            source = "runlab" if module.startswith("runlab") else module
            self._entries[key] = Entry(key, obj, doc, source)
            return obj

        return decorator

    def add(self, name: str, obj: Callable[..., Any], description: str = "") -> None:
        self.register(name, description=description, override=True)(obj)

    def get(self, name: str) -> Entry:
        self._ensure_loaded()
        key = str(name).lower()
        if key not in self._entries:
            raise KeyError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: Any, key: str | None = None) -> str:
        self._ensure_loaded()
        where = f" at {key}" if key else ""
        msg = f"unknown {self.kind} '{name}'{where}."
        return msg + did_you_mean(str(name).lower(), self.names()) + f" Available: {', '.join(self.names())}"

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return str(name).lower() in self._entries

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        self._ensure_loaded()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)


def _loader(*modules: str) -> Callable[[], None]:
    def load() -> None:
        import importlib

        for m in modules:
            importlib.import_module(m)

    return load


DATASETS = Registry("dataset", _loader("runlab.data"))
MODELS = Registry("model", _loader("runlab.models"))
LOSSES = Registry("loss", _loader("runlab.losses"))
OPTIMIZERS = Registry("optimizer", _loader("runlab.optim"))
SCHEDULERS = Registry("scheduler", _loader("runlab.optim"))
HPARAM_SCHEDULES = Registry("hparam schedule", _loader("runlab.hparams"))
DIAGNOSTICS = Registry("diagnostic", _loader("runlab.diagnostics.builtins"))
CALLBACKS = Registry("callback", _loader("runlab.train.callbacks"))
STEPS = Registry("step", _loader("runlab.train.step"))
TRANSFORMS = Registry("transform", _loader("runlab.data.transforms"))
WRITERS = Registry("writer", _loader("runlab.logging.builtins"))

REGISTRIES: dict[str, Registry] = {
    "models": MODELS,
    "datasets": DATASETS,
    "losses": LOSSES,
    "optimizers": OPTIMIZERS,
    "schedulers": SCHEDULERS,
    "hparam-schedules": HPARAM_SCHEDULES,
    "diagnostics": DIAGNOSTICS,
    "callbacks": CALLBACKS,
    "steps": STEPS,
    "transforms": TRANSFORMS,
    "writers": WRITERS,
}
