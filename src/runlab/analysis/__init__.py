"""Analysis of finished runs: loading, seed aggregation, statistics, figures, reports.

Example:
    >>> from runlab.analysis import load_runs, aggregate
    >>> rs = load_runs("runs/sweeps/vae-beta")
    >>> aggregate(rs, "val/loss", stat="final")      # one row per setting, mean/CI over seeds

Names are resolved lazily so that `runlab.analysis.cli` (imported by `runlab --help`)
does not pull in pandas, scipy or matplotlib.
"""

from __future__ import annotations

from runlab.lazy import lazy_exports

_EXPORTS = {
    "RunSet": "load",
    "load_runs": "load",
    "metric_goal": "summary",
    "run_values": "grouping",
    "aggregate": "grouping",
    "default_group_keys": "grouping",
    "t_confidence_interval": "stats",
    "bootstrap_ci": "stats",
    "welch_ttest": "stats",
    "mann_whitney": "stats",
    "hedges_g": "stats",
    "holm": "stats",
    "compare": "stats",
    "compare_groups": "grouping",
    "compare_settings": "grouping",
    "compare_to_best": "stats",
    "welch_diff_ci": "stats",
    "objectives": "objective",
    "plot_curves": "plots",
    "plot_metric_vs_param": "plots",
    "plot_parallel_coordinates": "plots",
    "plot_param_importance": "plots",
    "param_importance": "importance",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
