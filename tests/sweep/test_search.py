"""The search: deterministic proposals, study records, nested values."""

from __future__ import annotations

import math

from runlab.sweep.search import Search
from runlab.sweep.spec import load_sweep

SPACE = {"optimizer.lr": {"distribution": "log_uniform", "min": 1.0e-4, "max": 1.0e-1},
         "trainer.max_epochs": {"distribution": "int_uniform", "min": 1, "max": 5},
         "model.hidden": [[8], [16, 16]]}


def _objective(params: dict) -> float:
    return (math.log10(params["optimizer.lr"]) + 2) ** 2 + params["trainer.max_epochs"] * 0.01


def _drive(spec, folder, n: int) -> list[dict]:
    """Propose and record `n` settings one at a time, like one local worker."""
    search, out = Search(spec, folder), []
    for _ in range(n):
        setting = search.propose()
        search.record(setting, _objective(setting.params))
        out.append(setting.params)
    assert search.propose() is None  # `trials` reached
    return out


def test_tpe_with_a_fixed_seed_proposes_the_same_settings(make_sweep, tmp_path):
    # 14 trials: the last 4 come from TPE's model, after its 10 random start-up trials.
    spec = load_sweep(make_sweep(method="tpe", trials=14, seed=7, parameters=SPACE))
    first, second = _drive(spec, tmp_path / "a", 14), _drive(spec, tmp_path / "b", 14)
    assert first == second
    assert len({str(p) for p in first}) == 14
    assert all(p["model.hidden"] in ([8], [16, 16]) for p in first)
    spec.seed = 8
    assert _drive(spec, tmp_path / "c", 14) != first


def test_resumed_proposals_continue_the_sequence(make_sweep, tmp_path):
    spec = load_sweep(make_sweep(method="random", trials=6, parameters=SPACE))
    whole = _drive(spec, tmp_path / "whole", 6)
    part = Search(spec, tmp_path / "part")
    for _ in range(3):
        s = part.propose()
        part.record(s, _objective(s.params))
    # A new process on the same folder proposes only the missing ones, as the whole run did.
    again = Search(spec, tmp_path / "part")
    assert [s.sid for s in again.known()] == ["s000", "s001", "s002"]
    rest = [again.propose().params for _ in range(3)]
    assert [s.params for s in again.known()[:3]] + rest == whole


def test_records_once_and_failed_settings_can_succeed_later(make_sweep, tmp_path):
    spec = load_sweep(make_sweep())
    search = Search(spec, tmp_path / "g")
    a, b = search.known()
    assert (a.sid, b.sid, b.params) == ("s000", "s001", {"optimizer.lr": 0.01})
    search.record(a, 0.5)
    search.record(a, 0.5)
    search.record(b, None)
    search.record(b, 0.25)
    trials = search.study.get_trials()
    assert [(t.user_attrs["setting"], t.state.name) for t in trials] == [
        ("s000", "COMPLETE"), ("s001", "FAIL"), ("s001", "COMPLETE")]
    assert search.study.best_trial.user_attrs["setting"] == "s001"
    assert search.completed() == {"s000", "s001"}


def test_a_shared_storage_url_holds_the_study(make_sweep, tmp_path):
    spec = load_sweep(make_sweep(method="random", trials=2, parameters=SPACE))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = Search(spec, tmp_path / "host-a", storage=url)
    s = first.propose()
    first.record(s, 1.0)
    other = Search(spec, tmp_path / "host-b", storage=url)  # another machine, same database
    assert other.exists() and [k.sid for k in other.known()] == ["s000"]
    assert other.propose().sid == "s001" and other.propose() is None
    assert not (tmp_path / "host-a" / "study.journal").exists()
