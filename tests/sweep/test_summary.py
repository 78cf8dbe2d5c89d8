"""The sweep's closing lines: the best setting, and whether the others can be told from it."""

from __future__ import annotations

import pytest
from scipy import stats

from runlab.sweep.settings import Setting
from runlab.sweep.summary import closing_lines, rows


def _lines(values, goal="maximize", failed=None):
    settings = [Setting(sid, {"optimizer.lr": i}) for i, sid in enumerate(values)]
    per_seed = {sid: dict(enumerate(v)) for sid, v in values.items()}
    table = rows(settings, per_seed, failed or {})
    return closing_lines(table, per_seed, goal, lambda r: f"mean {r['mean']:.4g}")


def test_overlapping_settings_are_reported_as_not_distinguishable():
    a, b = [0.81, 0.80, 0.84], [0.83, 0.86, 0.82]
    lines = _lines({"s000": a, "s001": b})
    assert lines[0] == "best mean: s001 mean 0.8367"  # never a plain "best:" here
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    g = lines[1]
    assert g.startswith("  not distinguishable at 95% from: s000 (diff -0.02, 95% CI [")
    assert f"Welch p {p:.3g}" in g and "Mann-Whitney p 0.4 (Holm)" in g and "Hedges' g" in g


def test_a_clear_winner_is_best_and_settings_with_failed_seeds_are_left_out():
    lines = _lines({"s000": [1.0, 1.1, 0.9], "s001": [5.0, 5.1, 4.9], "s002": [0.1, 0.2, 0.1]},
                   goal="minimize", failed={"s002": [2]})
    assert lines[0] == "best: s000 mean 1"
    assert lines[1].startswith("  every other setting is worse at 95% (Holm-corrected Welch p")
    assert float(lines[1].rsplit(" ", 1)[1].rstrip(")")) == pytest.approx(
        stats.ttest_ind([5.0, 5.1, 4.9], [1.0, 1.1, 0.9], equal_var=False).pvalue, rel=1e-2)


def test_one_seed_per_setting_cannot_be_compared():
    lines = _lines({"s000": [0.5], "s001": [0.7]})
    assert lines == ["best mean: s001 mean 0.7", "  too few seeds to compare with: s000"]
