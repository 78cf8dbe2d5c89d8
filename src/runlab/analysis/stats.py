"""Statistics over seeds: t confidence intervals, bootstrap, Welch, Mann-Whitney, Hedges' g, Holm.

Everything here takes plain arrays, drops NaNs, and is checked against scipy in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special  # scipy.stats is slow to import: only mann_whitney needs it

ArrayLike = Sequence[float] | np.ndarray


def _clean(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[~np.isnan(a)]


def t_critical(n: np.ndarray | int, ci: float = 0.95) -> np.ndarray:
    """Two-sided Student-t critical value for `n` samples (NaN where n < 2)."""
    df = np.asarray(n, dtype=np.float64) - 1
    with np.errstate(invalid="ignore"):
        # stdtrit is the t quantile function (what scipy.stats.t.ppf calls)
        return np.where(df >= 1, special.stdtrit(np.maximum(df, 1), 0.5 + ci / 2), np.nan)


def t_confidence_interval(x: ArrayLike, ci: float = 0.95) -> tuple[float, float]:
    """Confidence interval of the mean, mean +- t * s / sqrt(n) (as `scipy.stats.t.interval`)."""
    a = _clean(x)
    if len(a) < 2:
        return (np.nan, np.nan)
    half = float(t_critical(len(a), ci)) * a.std(ddof=1) / np.sqrt(len(a))
    return (a.mean() - half, a.mean() + half)


def bootstrap_ci(
    x: ArrayLike, ci: float = 0.95, n_boot: int = 10_000, seed: int = 0,
    statistic: str = "mean",
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (or median) of `x`."""
    a = _clean(x)
    if len(a) < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    samples = a[rng.integers(0, len(a), size=(n_boot, len(a)))]  # (n_boot, n)
    boot = np.median(samples, axis=1) if statistic == "median" else samples.mean(axis=1)
    lo, hi = np.quantile(boot, [0.5 - ci / 2, 0.5 + ci / 2])
    return (float(lo), float(hi))


def bootstrap_diff_ci(
    a: ArrayLike, b: ArrayLike, ci: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b), resampling each group separately."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
    mb = b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(axis=1)
    lo, hi = np.quantile(ma - mb, [0.5 - ci / 2, 0.5 + ci / 2])
    return (float(lo), float(hi))


def welch_ttest(a: ArrayLike, b: ArrayLike) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test: (t, df, two-sided p)."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return (np.nan, np.nan, np.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return (np.nan, np.nan, np.nan)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p = 2 * special.stdtr(df, -abs(t))
    return (float(t), float(df), float(p))


def welch_diff_ci(a: ArrayLike, b: ArrayLike, ci: float = 0.95) -> tuple[float, float]:
    """Welch confidence interval of mean(a) - mean(b) (as scipy's
    `ttest_ind(a, b, equal_var=False).confidence_interval(ci)`)."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return (np.nan, np.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    if va + vb == 0:
        return (float(diff), float(diff))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = special.stdtrit(df, 0.5 + ci / 2) * np.sqrt(va + vb)
    return (float(diff - half), float(diff + half))


def mann_whitney(a: ArrayLike, b: ArrayLike) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of `a`, p). Exact for small untied samples."""
    from scipy import stats

    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return (np.nan, np.nan)
    res = stats.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    return (float(res.statistic), float(res.pvalue))


def hedges_g(a: ArrayLike, b: ArrayLike) -> float:
    """Standardised mean difference (a - b) / pooled sd, with the small-sample correction."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return np.nan
    pooled = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return np.nan
    d = (a.mean() - b.mean()) / pooled
    return float(d * (1 - 3 / (4 * (na + nb) - 9)))


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass
class Comparison:
    """Result of `compare(a, b)`; `diff` = mean(a) - mean(b)."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    welch_t: float
    welch_df: float
    welch_p: float
    mw_u: float
    mw_p: float
    hedges_g: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def compare(
    a: ArrayLike, b: ArrayLike, ci: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> Comparison:
    """Compare two groups of per-seed values: Welch, Mann-Whitney, Hedges' g, bootstrap CI.

    Example:
        >>> compare([0.31, 0.30, 0.33], [0.36, 0.35, 0.38]).welch_p
    """
    a, b = _clean(a), _clean(b)
    t, df, p = welch_ttest(a, b)
    u, pu = mann_whitney(a, b)
    lo, hi = bootstrap_diff_ci(a, b, ci, n_boot, seed)
    mean_a = float(a.mean()) if len(a) else np.nan
    mean_b = float(b.mean()) if len(b) else np.nan
    return Comparison(len(a), len(b), mean_a, mean_b, mean_a - mean_b, lo, hi,
                      t, df, p, u, pu, hedges_g(a, b))


BEST = "best"
WORSE = "worse at 95%"
TIE = "not distinguishable at 95%"
TOO_FEW = "too few seeds to tell"


def compare_to_best(
    groups: Mapping[str, ArrayLike], goal: str, ci: float = 0.95
) -> list[dict[str, Any]]:
    """Every group against the one with the best mean (lowest for "minimize", else highest).

    One row per group, in the given order: `group`, `n`, `mean`, `diff` (group - best),
    `diff_ci_low`/`diff_ci_high` (Welch interval of the difference), `welch_p_holm` and
    `mw_p_holm` (two-sided Welch t and Mann-Whitney U p-values, Holm-corrected over the
    comparisons), `hedges_g` (group vs best) and `verdict`: "best", "worse at 95%" (Holm
    Welch p < 1 - ci), "not distinguishable at 95%", or "too few seeds to tell" (n < 2).
    With 3 seeds against 3, Mann-Whitney's smallest possible p is 0.1.

    Example:
        >>> rows = compare_to_best({"s000": [0.81, 0.80, 0.84], "s001": [0.83, 0.86, 0.82]},
        ...                        goal="maximize")
        >>> [r["verdict"] for r in rows]
        ['not distinguishable at 95%', 'best']
    """
    clean = {label: _clean(v) for label, v in groups.items()}
    means = {label: float(v.mean()) for label, v in clean.items() if len(v)}
    if not means:
        return []
    pick = min if goal == "minimize" else max
    best = pick(means, key=lambda label: means[label])
    ref = clean[best]
    rows = []
    for label, values in clean.items():
        other = label != best  # the best row carries no comparison with itself
        lo, hi = welch_diff_ci(values, ref, ci) if other else (np.nan, np.nan)
        rows.append({
            "group": label, "n": len(values), "mean": means.get(label, np.nan),
            "diff": means.get(label, np.nan) - means[best],
            "diff_ci_low": lo, "diff_ci_high": hi,
            "welch_p": welch_ttest(values, ref)[2] if other else np.nan,
            "mw_p": mann_whitney(values, ref)[1] if other else np.nan,
            "hedges_g": hedges_g(values, ref) if other else np.nan,
        })
    for test in ("welch_p", "mw_p"):
        adjusted = holm([r.pop(test) for r in rows])
        for row, p in zip(rows, adjusted, strict=True):
            row[f"{test}_holm"] = float(p)
    for row in rows:
        row["verdict"] = _verdict(row, best, 1 - ci)
    return rows


def _verdict(row: dict[str, Any], best: str, alpha: float) -> str:
    if row["group"] == best:
        return BEST
    p = row["welch_p_holm"]
    if np.isnan(p):
        if row["n"] < 2 or np.isnan(row["diff_ci_low"]):  # one of the two has < 2 values
            return TOO_FEW
        # both groups constant: no test statistic, but no noise either
        return TIE if row["diff"] == 0 else WORSE
    return WORSE if p < alpha else TIE
