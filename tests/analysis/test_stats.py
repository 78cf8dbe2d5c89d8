"""Our statistics against scipy on the same numbers (to 1e-9), and the grouping built on them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from runlab.analysis import (
    aggregate,
    bootstrap_ci,
    compare,
    compare_groups,
    compare_settings,
    compare_to_best,
    hedges_g,
    holm,
    load_runs,
    mann_whitney,
    run_values,
    t_confidence_interval,
    welch_diff_ci,
    welch_ttest,
)
from runlab.analysis.grouping import verdict_line
from runlab.errors import ConfigError

RNG = np.random.default_rng(0)
SAMPLES = [
    (RNG.normal(0.3, 0.02, 3), RNG.normal(0.35, 0.05, 5)),
    (RNG.normal(1.0, 1.0, 12), RNG.normal(1.5, 3.0, 7)),
    (np.array([1.0, 2.0, 2.0, 3.0, 3.0]), np.array([2.0, 3.0, 3.0, 4.0])),  # ties
]


@pytest.mark.parametrize("a,b", SAMPLES)
@pytest.mark.parametrize("ci", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(a, b, ci):
    lo, hi = t_confidence_interval(a, ci)
    ref = stats.t.interval(ci, len(a) - 1, loc=a.mean(), scale=stats.sem(a))
    np.testing.assert_allclose([lo, hi], ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("a,b", SAMPLES)
def test_welch_matches_scipy(a, b):
    t, df, p = welch_ttest(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    np.testing.assert_allclose([t, df, p], [ref.statistic, ref.df, ref.pvalue], atol=1e-9)


@pytest.mark.parametrize("a,b", SAMPLES)
def test_mann_whitney_matches_scipy(a, b):
    u, p = mann_whitney(a, b)
    ref = stats.mannwhitneyu(a, b, alternative="two-sided")
    np.testing.assert_allclose([u, p], [ref.statistic, ref.pvalue], atol=1e-9)


def test_hedges_g_by_hand():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0])
    sp = np.sqrt((3 * a.var(ddof=1) + 2 * b.var(ddof=1)) / 5)
    j = 1 - 3 / (4 * 7 - 9)
    assert hedges_g(a, b) == pytest.approx((a.mean() - b.mean()) / sp * j, abs=1e-12)
    assert np.isnan(hedges_g([1.0], [2.0, 3.0]))


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, np.nan, 0.02], atol=1e-12)
    assert holm([0.9, 0.8]).max() == 1.0


def test_bootstrap_reproducible_and_sane():
    x = RNG.normal(5.0, 1.0, 40)
    lo, hi = bootstrap_ci(x, n_boot=2000, seed=1)
    assert (lo, hi) == bootstrap_ci(x, n_boot=2000, seed=1)
    t_lo, t_hi = t_confidence_interval(x)
    assert lo < x.mean() < hi and abs(lo - t_lo) < 0.15 and abs(hi - t_hi) < 0.15


def test_compare_two_groups():
    a, b = SAMPLES[1]
    c = compare(a, b, n_boot=2000)
    assert c.n_a == 12 and c.diff == pytest.approx(a.mean() - b.mean())
    assert c.diff_ci_low < c.diff < c.diff_ci_high
    assert c.welch_p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, abs=1e-9)


def test_aggregate_matches_scipy_per_group(sweep_dir):
    rs = load_runs(sweep_dir)
    table = aggregate(rs, "val/loss", stat="final", bootstrap=500)
    assert list(table.columns[:2]) == ["model.width", "optimizer.lr"]  # seed is not a group key
    assert list(table["n"]) == [4, 3, 3, 3]  # the failed run counts, the running one does not
    values = run_values(rs, "val/loss", "final")
    for _, row in table.iterrows():
        v = values[(values["model.width"] == row["model.width"])
                   & (values["optimizer.lr"] == row["optimizer.lr"])]["value"].to_numpy()
        ref = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
        np.testing.assert_allclose([row["ci_low"], row["ci_high"]], ref, atol=1e-9)
        assert row["sem"] == pytest.approx(stats.sem(v), abs=1e-12)
        assert row["median"] == np.median(v) and row["boot_low"] <= row["mean"] <= row["boot_high"]


def test_aggregate_stats_and_errors(sweep_dir):
    rs = load_runs(sweep_dir, status="completed")
    best = aggregate(rs, "val/acc", stat="best", by="optimizer.lr")
    mx = aggregate(rs, "val/acc", stat="max", by=["optimizer.lr"])
    np.testing.assert_allclose(best["mean"], mx["mean"])
    assert list(best["n"]) == [6, 6]
    with pytest.raises(ConfigError, match="Did you mean 'val/loss'"):
        aggregate(rs, "val/los")
    with pytest.raises(ConfigError, match="Did you mean 'model.width'"):
        aggregate(rs, "val/loss", by="model.widht")
    with pytest.raises(ConfigError, match="unknown stat"):
        aggregate(rs, "val/loss", stat="last")


def test_compare_groups_against_baseline(sweep_dir):
    rs = load_runs(sweep_dir, status="completed")
    out = compare_groups(rs, "val/loss", baseline={"optimizer.lr": 0.1, "model.width": 32},
                         n_boot=500)
    assert len(out) == 3 and (out["baseline"] == "model.width=32, optimizer.lr=0.1").all()
    np.testing.assert_allclose(out["welch_p_holm"], holm(out["welch_p"]))
    assert (out["welch_p_holm"] >= out["welch_p"]).all()
    two = compare_groups(rs, "val/loss", by="optimizer.lr", n_boot=500)
    assert len(two) == 1 and two["group"].item() == "optimizer.lr=0.1"
    assert two["mean_a"].item() < two["mean_b"].item()  # larger lr, lower loss


@pytest.mark.parametrize("a,b", SAMPLES)
def test_welch_difference_interval_matches_scipy(a, b):
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    np.testing.assert_allclose(welch_diff_ci(a, b), [ref.low, ref.high], atol=1e-9)


def _holm_by_hand(p):
    """Holm's step-down procedure written out (the textbook loop)."""
    order = np.argsort(p)
    out, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_compare_to_best_matches_scipy(goal):
    rng = np.random.default_rng(3)
    groups = {"a": rng.normal(0.80, 0.02, 3), "b": rng.normal(0.84, 0.02, 3),
              "c": rng.normal(0.70, 0.01, 4), "d": rng.normal(0.83, 0.03, 5)}
    rows = {r["group"]: r for r in compare_to_best(groups, goal)}
    means = {k: v.mean() for k, v in groups.items()}
    best = (min if goal == "minimize" else max)(means, key=means.get)
    assert rows[best]["verdict"] == "best" and np.isnan(rows[best]["welch_p_holm"])
    others = [k for k in groups if k != best]
    welch = np.array([stats.ttest_ind(groups[k], groups[best], equal_var=False).pvalue
                      for k in others])
    mw = np.array([stats.mannwhitneyu(groups[k], groups[best], alternative="two-sided").pvalue
                   for k in others])
    for k, pw, pm in zip(others, _holm_by_hand(welch), _holm_by_hand(mw), strict=True):
        row = rows[k]
        ci = stats.ttest_ind(groups[k], groups[best], equal_var=False).confidence_interval(0.95)
        assert row["diff"] == pytest.approx(means[k] - means[best], abs=1e-12)
        np.testing.assert_allclose([row["diff_ci_low"], row["diff_ci_high"]], [ci.low, ci.high],
                                   atol=1e-9)
        assert row["welch_p_holm"] == pytest.approx(pw, abs=1e-9)
        assert row["mw_p_holm"] == pytest.approx(pm, abs=1e-9)
        assert row["hedges_g"] == pytest.approx(hedges_g(groups[k], groups[best]), abs=1e-12)
        assert row["verdict"] == ("worse at 95%" if pw < 0.05 else "not distinguishable at 95%")


def test_compare_to_best_the_issue_case():
    """Two settings x 3 seeds whose CIs overlap: the best is not distinguishable."""
    rows = compare_to_best({"s000": [0.81, 0.80, 0.84], "s001": [0.83, 0.86, 0.82]}, "maximize")
    assert [r["verdict"] for r in rows] == ["not distinguishable at 95%", "best"]
    assert rows[0]["diff_ci_low"] < 0 < rows[0]["diff_ci_high"]
    rows = compare_to_best({"x": [1.0, 1.1, 0.9], "y": [5.0, 5.1, 4.9], "z": [3.0]}, "minimize")
    assert [r["verdict"] for r in rows] == ["best", "worse at 95%", "too few seeds to tell"]


def test_compare_settings_adds_the_comparison_to_aggregate(sweep_dir):
    rs = load_runs(sweep_dir, status="completed")
    table = compare_settings(rs, "val/acc", by="optimizer.lr")
    assert list(table["optimizer.lr"]) == [0.01, 0.1]
    assert list(table["verdict"]) == ["worse at 95%", "best"]  # larger lr, higher accuracy
    np.testing.assert_allclose(table["mean"], aggregate(rs, "val/acc", by="optimizer.lr")["mean"])
    values = run_values(rs, "val/acc")
    lo, hi = (values[values["optimizer.lr"] == lr]["value"].to_numpy() for lr in (0.01, 0.1))
    assert table["welch_p_holm"][0] == pytest.approx(
        stats.ttest_ind(lo, hi, equal_var=False).pvalue, abs=1e-12)
    assert verdict_line(table).startswith("best mean: optimizer.lr=0.1; every other group is worse")


def test_default_group_keys_are_hyperparameters_only(tmp_path, make_run):
    """A mixed runs root: diagnostics lists, logging switches and data.root vary too."""
    from runlab.analysis import default_group_keys

    for seed in range(2):
        for lr in (0.1, 0.2):
            cfg = {"seed": seed, "optimizer": {"lr": lr}, "data": {"root": f"/d{seed}"},
                   "diagnostics": [{"name": "jacobian", "every": seed + 1}],
                   "logging": {"tensorboard": bool(seed)}, "trainer": {"device": f"cpu{seed}"}}
            make_run(tmp_path, f"r{lr}", cfg, {"val/loss": [1.0, lr + seed]})
    assert default_group_keys(load_runs(tmp_path)) == ["optimizer.lr"]
