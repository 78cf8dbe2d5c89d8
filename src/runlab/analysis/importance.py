"""Parameter importance of a metric across runs, with optuna's fANOVA evaluator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from runlab.analysis.grouping import resolve_group_keys, run_values
from runlab.analysis.load import RunSet, as_text
from runlab.errors import ConfigError


def param_importance(
    rs: RunSet,
    metric: str,
    stat: str = "final",
    params: Sequence[str] | None = None,
    goal: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """Share of the variance of `stat` of `metric` explained by each parameter (sums to 1).

    The runs are handed to optuna as finished trials and scored by
    `optuna.importance.FanovaImportanceEvaluator`, so sweeps run by any method
    (grid, random, tpe) are treated alike. Parameters that never vary are left out.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    keys = resolve_group_keys(rs, list(params) if params is not None else None)
    df = run_values(rs, metric, stat, goal).dropna(subset=["value"])
    dists = {}
    for key in keys:
        col = df[key]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        if numeric and col.notna().all():
            lo, hi = float(col.min()), float(col.max())
            if hi > lo:
                dists[key] = FloatDistribution(lo, hi, log=bool(lo > 0 and hi / lo >= 100))
        else:  # text, or a key some runs lack: treat as categories ("none" for missing)
            df[key] = as_text(col)
            if df[key].nunique() > 1:
                dists[key] = CategoricalDistribution(sorted(df[key].unique()))
    if not dists or len(df) < 2:
        raise ConfigError(f"parameter importance of {metric!r} needs at least two runs and one "
                          f"varying parameter; got {len(df)} runs, parameters {keys or 'none'}")
    direction = "minimize" if rs.goal(metric, goal) == "minimize" else "maximize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    study.add_trials([
        optuna.trial.create_trial(
            params={k: _param_value(row[k], d) for k, d in dists.items()},
            distributions=dists, value=float(row["value"]))
        for _, row in df.iterrows()
    ])
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    scores = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
    return pd.Series(scores, name="importance", dtype=np.float64)


def _param_value(value: object, dist: object) -> object:
    from optuna.distributions import CategoricalDistribution

    return value if isinstance(dist, CategoricalDistribution) else float(value)
