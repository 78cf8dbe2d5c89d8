"""Statistics over seeds: t confidence intervals, bootstrap, Welch, Mann-Whitney, Hedges' g, Holm.

Everything here takes plain arrays, drops NaNs, and is checked against scipy in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

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
