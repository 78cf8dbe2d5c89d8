"""The search: which settings to run (grid, random, TPE) and the optuna study that records them.

State lives in an optuna study: a JournalStorage over `study.journal` in the sweep folder
(file-locked, so parallel sweep processes on one machine share it) or any `--storage URL`.
Samplers are re-seeded for every proposal from (sweep seed, proposal index), so the same
sweep file proposes the same settings, also when a killed sweep is started again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runlab.sweep.settings import Setting, grid, grid_size, setting_id
from runlab.sweep.spec import Param, SweepSpec

_PRIMITIVE = (type(None), bool, int, float, str)


class Search:
    """Proposes settings and tells the study each setting's objective.

    Example:
        >>> search = Search(spec, Path("runs/sweeps/vae-beta"))
        >>> settings = search.known()            # grid: all; random/tpe: proposed so far
        >>> s = search.propose()                 # None when `trials` are all proposed
        >>> search.record(s, 0.31)               # mean over seeds of the metric
    """

    def __init__(self, spec: SweepSpec, folder: Path, storage: str | None = None):
        self.spec = spec
        self.folder = folder
        self._storage_url = storage
        self._study: Any = None

    @property
    def study(self) -> Any:
        """The optuna study, created on first use (optuna takes ~0.5 s to import)."""
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                storage=self._storage_url or _journal(self.folder), study_name=self.spec.name,
                direction=self.spec.goal, load_if_exists=True)
        return self._study

    def known(self) -> list[Setting]:
        """Settings to run now: the whole grid, or the trials proposed by earlier processes."""
        if self.spec.method == "grid":
            total = grid_size(self.spec.parameters)
            return [Setting(setting_id(i, total), params, trial=i)
                    for i, params in enumerate(grid(self.spec.parameters))]
        return sorted(self._proposed().values(), key=lambda s: s.sid)

    def propose(self) -> Setting | None:
        """The next setting from the sampler, or None when `trials` settings exist already."""
        if self.spec.method == "grid":
            return None
        with self.lock():
            index = len(self._proposed())
            if index >= (self.spec.trials or 0):
                return None
            self.study.sampler = _sampler(self.spec.method, self.spec.seed, index)
            trial = self.study.ask()
            params = {p.key: _suggest(trial, p) for p in self.spec.parameters}
            sid = setting_id(index, self.spec.trials or 0)
            trial.set_user_attr("setting", sid)
            trial.set_user_attr("params", params)
            return Setting(sid, params, trial=trial.number)

    def exists(self) -> bool:
        """Whether a study may hold trials already (without importing optuna otherwise)."""
        return self._storage_url is not None or (self.folder / "study.journal").exists()

    def completed(self) -> set[str]:
        """Ids of settings the study holds a value for (cheap when the study is new)."""
        if not self.exists():
            return set()
        return {t.user_attrs.get("setting") for t in self.study.get_trials(deepcopy=False)
                if t.state.is_finished() and t.values}

    def record(self, setting: Setting, value: float | None) -> None:
        """Tell the study a setting's objective (None: it failed), once per outcome."""
        from optuna.trial import TrialState, create_trial

        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        with self.lock():
            trials = [t for t in self.study.get_trials(deepcopy=False)
                      if t.user_attrs.get("setting") == setting.sid]
            if any(t.state in (TrialState.COMPLETE, state) for t in trials):
                return
            for t in trials:
                if not t.state.is_finished():
                    self.study.tell(t.number, value, state=state)
                    return
            # Grid settings, and settings that failed before and now succeed, get a new trial.
            dists = {p.key: _distribution(p) for p in self.spec.parameters}
            params = {p.key: setting.params[p.key] if p.values is None
                      else _encode_value(setting.params[p.key], p.values)
                      for p in self.spec.parameters}
            self.study.add_trial(create_trial(
                params=params, distributions=dists, value=value, state=state,
                user_attrs={"setting": setting.sid, "params": setting.params}))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialises proposals and records among sweep processes sharing this folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "sweep.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _proposed(self) -> dict[str, Setting]:
        out: dict[str, Setting] = {}
        for t in self.study.get_trials(deepcopy=False):
            sid = t.user_attrs.get("setting")
            if sid is not None and sid not in out:
                out[sid] = Setting(sid, t.user_attrs.get("params", {}), trial=t.number)
        return out


def _journal(folder: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "study.journal")
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path + ".lock")))


def _sampler(method: str, seed: int, index: int) -> Any:
    """A sampler seeded for proposal `index`: same sweep file, same proposals."""
    import optuna

    derived = (seed * 1_000_003 + index) % 2**32
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=derived)
    return optuna.samplers.RandomSampler(seed=derived)


def _distribution(p: Param) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if p.values is not None:
        return CategoricalDistribution([_encode_value(v, p.values) for v in p.values])
    if p.distribution == "int_uniform":
        return IntDistribution(int(p.low), int(p.high))
    return FloatDistribution(p.low, p.high, log=p.distribution == "log_uniform")


def _suggest(trial: Any, p: Param) -> Any:
    if p.distribution == "int_uniform":
        return trial.suggest_int(p.key, int(p.low), int(p.high))
    if p.values is None:
        return trial.suggest_float(p.key, p.low, p.high, log=p.distribution == "log_uniform")
    return _decode(trial.suggest_categorical(p.key, _distribution(p).choices), p.values)


def _encode_value(v: Any, values: tuple[Any, ...]) -> Any:
    """optuna choices must be scalars: lists and mappings travel as JSON text."""
    return v if all(isinstance(x, _PRIMITIVE) for x in values) else json.dumps(v)


def _decode(v: Any, values: tuple[Any, ...]) -> Any:
    return v if all(isinstance(x, _PRIMITIVE) for x in values) else json.loads(v)
