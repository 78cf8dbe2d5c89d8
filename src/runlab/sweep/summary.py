"""summary.csv: one row per setting, the metric aggregated over its seeds (mean, std, CI)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from runlab.sweep.settings import Setting


def run_value(state: dict, metric: str, stat: str) -> float | None:
    """`summary[metric][stat]` of a completed run, or None."""
    if state.get("status") != "completed":
        return None
    entry = (state.get("summary") or {}).get(metric)
    value = entry.get(stat) if isinstance(entry, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def objective(values: list[float | None]) -> float | None:
    """The setting's objective: the mean over seeds, None when any seed has no value."""
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def stats(values: list[float]) -> dict[str, float | int | None]:
    """n, mean, std (ddof 1), sem and the 95% t confidence interval of `values`."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "sem": None, "ci95_low": None,
                "ci95_high": None}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "sem": None, "ci95_low": None,
                "ci95_high": None}
    from scipy.stats import t

    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    sem = std / math.sqrt(n)
    half = float(t.ppf(0.975, n - 1)) * sem
    return {"n": n, "mean": mean, "std": std, "sem": sem, "ci95_low": mean - half,
            "ci95_high": mean + half}


def rows(settings: list[Setting], values: dict[str, dict[int, float | None]],
         failed: dict[str, list[int]]) -> list[dict[str, Any]]:
    """One row per setting: id, parameters, seeds done, aggregate of the metric."""
    out = []
    for s in settings:
        done = {seed: v for seed, v in sorted(values.get(s.sid, {}).items()) if v is not None}
        row: dict[str, Any] = {"setting": s.sid}
        row.update({k: _cell(v) for k, v in s.params.items()})
        row["seeds_done"] = " ".join(str(seed) for seed in done)
        row["failed_seeds"] = " ".join(str(seed) for seed in sorted(failed.get(s.sid, [])))
        row.update(stats(list(done.values())))
        out.append(row)
    return out


def write_csv(table: list[dict[str, Any]], path: Path) -> None:
    """Write atomically, so a reader never sees half a file."""
    columns: list[str] = []
    for row in table:
        columns += [c for c in row if c not in columns]
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    tmp.replace(path)


def closing_lines(table: list[dict[str, Any]], values: dict[str, dict[int, float | None]],
                  goal: str, describe: Any) -> list[str]:
    """What the sweep prints at its end: the best setting, and whether the others can be told
    apart from it at 95% (`runlab.analysis.stats.compare_to_best`, the same comparison as
    `runlab analyze`). `describe(row)` gives a setting's text after its id."""
    from runlab.analysis.stats import BEST, TIE, WORSE, compare_to_best

    done = [r for r in table if r["mean"] is not None and not r["failed_seeds"]]
    groups = {r["setting"]: [v for v in values.get(r["setting"], {}).values() if v is not None]
              for r in done}
    rows = compare_to_best(groups, goal)
    if not rows:
        return []
    by_id = {r["setting"]: r for r in done}
    top = next(r for r in rows if r["verdict"] == BEST)
    ties = [r for r in rows if r["verdict"] == TIE]
    unclear = [r for r in rows if r["verdict"] not in (BEST, TIE, WORSE)]
    head = "best mean" if ties or unclear else "best"
    lines = [f"{head}: {top['group']} {describe(by_id[top['group']])}"]
    if ties:
        lines.append("  not distinguishable at 95% from: " + "; ".join(
            f"{r['group']} (diff {r['diff']:+.4g}, 95% CI [{r['diff_ci_low']:.4g}, "
            f"{r['diff_ci_high']:.4g}], Welch p {r['welch_p_holm']:.3g}, Mann-Whitney p "
            f"{r['mw_p_holm']:.3g} (Holm), Hedges' g {r['hedges_g']:.3g})" for r in ties))
    if unclear:
        lines.append("  too few seeds to compare with: "
                     + ", ".join(r["group"] for r in unclear))
    if len(rows) > 1 and not ties and not unclear:
        worst_p = max((r["welch_p_holm"] for r in rows if r["verdict"] == WORSE
                       and r["welch_p_holm"] == r["welch_p_holm"]), default=0.0)
        lines.append(f"  every other setting is worse at 95% (Holm-corrected Welch p <= "
                     f"{worst_p:.3g})")
    return lines


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict)) else v
