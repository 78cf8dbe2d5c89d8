"""One self-contained HTML report over a set of runs (images inline, JS/CSS inline)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from runlab.analysis import plots
from runlab.analysis.grouping import aggregate, group_labels, resolve_group_keys, run_values
from runlab.analysis.load import RunSet, as_text, load_runs
from runlab.analysis.report_assets import CSS, ERROR_HOOK, SORT_JS
from runlab.errors import ConfigError

_PREFERRED = ("val/loss", "val/acc", "test/loss", "test/acc", "train/loss")
_AUXILIARY = re.compile(r"^(hparam/|diag/|lr$|lr/|time)")
_STEP_PNG = re.compile(r"^step-(\d+)\.png$")
MAX_RUN_ROWS = 500


def default_metric(rs: RunSet) -> str:
    """The metric a report leads with: val/loss, val/acc, ... else the first non-auxiliary."""
    names = rs.metric_names
    if not names:
        raise ConfigError("these runs have logged no metrics (metrics.csv is missing or empty)")
    for name in _PREFERRED:
        if name in names:
            return name
    return next((n for n in names if not _AUXILIARY.match(n)), names[0])


def write_report(
    runs: RunSet | str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike = "report.html",
    metric: str | None = None,
    by: str | Sequence[str] | None = None,
    max_curves: int = 6,
    top_k: int = 3,
) -> Path:
    """Write the HTML report and return its path.

    Sections: summary table per group (sortable), per-run table, learning curves with CI
    bands, parameter effects (metric vs parameter, parallel coordinates, importance), the
    best runs' latest diagnostic images, and the config keys that differ between groups.

    Example:
        >>> write_report("runs/sweeps/vae-beta", "vae-beta.html", metric="val/loss")
    """
    rs = runs if isinstance(runs, RunSet) else load_runs(runs)
    if len(rs) == 0:
        raise ConfigError("no runs to report on")
    metric = metric or default_metric(rs)
    keys = resolve_group_keys(rs, by)
    sections = [
        _summary_section(rs, metric, keys),
        _curves_section(rs, metric, keys, max_curves),
        _effects_section(rs, metric, keys),
        _diagnostics_section(rs, metric, top_k),
        _config_diff_section(rs, keys),
    ]
    statuses = ", ".join(f"{n} {s}" for s, n in rs.runs["status"].value_counts().items())
    sources = sorted({str(Path(p).parent) for p in rs.runs["path"]})
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>runlab report: {_e(metric)}</title>
<script>{ERROR_HOOK}</script>
<style>{CSS}</style></head>
<body>
<h1>runlab report</h1>
<p class="meta">{len(rs)} runs ({_e(statuses)}) from {_e(", ".join(sources[:5]))}
{"..." if len(sources) > 5 else ""}<br>main metric <b>{_e(metric)}</b>
({rs.goal(metric)}), grouped by {_e(", ".join(keys) or "nothing (one group)")};
generated {dt.datetime.now().strftime("%Y-%m-%d %H:%M")}</p>
<pre id="js-errors"></pre>
{"".join(sections)}
<script>{SORT_JS}</script>
</body></html>
"""
    out = Path(output)
    out.write_text(page, encoding="utf-8")
    return out


def _e(x: object) -> str:
    return html.escape(str(x))


def _fmt(x: object) -> str:
    if isinstance(x, (float, np.floating)):
        return "–" if np.isnan(x) else f"{x:.4g}"
    return str(x)


def _table(df: pd.DataFrame, highlight: int | None = None, sortable: bool = True) -> str:
    """An HTML table; numeric cells carry their raw value in data-sort for exact sorting."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in df.columns]
    head = "".join(f'<th class="{"" if num else "text"}">{_e(c)}</th>'
                   for c, num in zip(df.columns, numeric, strict=True))
    rows = []
    for i, (_, row) in enumerate(df.iterrows()):
        cells = "".join(
            f'<td data-sort="{_e(v)}">{_e(_fmt(v))}</td>' if num
            else f'<td class="text">{_e(_fmt(v))}</td>'
            for v, num in zip(row, numeric, strict=True))
        rows.append(f'<tr{" class=best" if i == highlight else ""}>{cells}</tr>')
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _img(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _summary_section(rs: RunSet, metric: str, keys: list[str]) -> str:
    parts = [f"<h2>Summary: {_e(metric)}</h2>"]
    for stat in ("final", "best"):
        table = aggregate(rs, metric, stat, by=keys)
        means = table["mean"]
        best = means.idxmin() if rs.goal(metric) == "minimize" else means.idxmax()
        parts.append(f"<h3>{stat} value, mean over seeds (95% t-interval)</h3>")
        parts.append(_table(table, highlight=table.index.get_loc(best) if len(table) else None))
    values = run_values(rs, metric, "best")
    finals = run_values(rs, metric, "final")["value"]
    per_run = values[["run_id", "status", *keys, "seed"]].assign(final=finals, best=values["value"])
    per_run = per_run.sort_values("best", ascending=rs.goal(metric) == "minimize")
    shown = per_run.head(MAX_RUN_ROWS)
    parts.append(f"<h3>Runs ({len(shown)} of {len(per_run)}, best first)</h3>")
    parts.append(_table(shown.reset_index(drop=True)))
    return "".join(parts)


def curve_families(rs: RunSet, metric: str) -> list[tuple[str, list[str]]]:
    """Every metric grouped by family (`RunSet.family`), the main metric's family first,
    then families with val/ members, then train/, then the rest; lr, hparams, time and
    diagnostics last."""
    families: dict[str, list[str]] = {}
    for name in rs.metric_names:
        families.setdefault(rs.family(name), []).append(name)

    def rank(item: tuple[str, list[str]]) -> tuple:
        family, names = item
        return (metric not in names, all(_AUXILIARY.match(n) for n in names),
                not any(n.startswith("val/") for n in names),
                not any(n.startswith("train/") for n in names), family)

    return sorted(families.items(), key=rank)


def _curves_section(rs: RunSet, metric: str, keys: list[str], limit: int,
                    max_families: int = 40) -> str:
    """One subsection per family: a curve per group for each member of a small family
    (up to `limit` members, e.g. loss: train/loss, train/loss_epoch, val/loss, test/loss),
    one figure with every member for a larger one (per-class accuracies)."""
    families = curve_families(rs, metric)
    parts = ["<h2>Learning curves</h2>"]
    for family, names in families[:max_families]:
        if len(names) <= limit:
            names = sorted(names, key=lambda n: (n != metric, _split_rank(n), n))
            imgs = [_img(plots.plot_curves(rs, m, by=keys), f"learning curve {m}") for m in names]
        else:
            imgs = [_img(plots.plot_family(rs, names, family), f"family {family}")]
        parts.append(f"<h3>{_e(family)} ({len(names)} metric{'s' * (len(names) != 1)})</h3>"
                     f"<div class=figs>{''.join(imgs)}</div>")
    if len(families) > max_families:
        rest = ", ".join(f for f, _ in families[max_families:])
        parts.append(f"<p class=note>{len(families) - max_families} more families not drawn: "
                     f"{_e(rest)}</p>")
    return "".join(parts)


def _split_rank(name: str) -> int:
    split = name.split("/")[0]
    return {"train": 0, "val": 1, "test": 2}.get(split, 3)


def _effects_section(rs: RunSet, metric: str, keys: list[str]) -> str:
    if not keys:
        return "<h2>Parameter effects</h2><p class=note>No config key varies across these runs.</p>"
    imgs = [_img(plots.plot_metric_vs_param(rs, metric, k, by=keys), f"{metric} vs {k}")
            for k in keys[:4]]
    if len(keys) >= 2:
        imgs.append(_img(plots.plot_parallel_coordinates(rs, metric, keys), "parallel coordinates"))
    note = ""
    try:
        imgs.append(_img(plots.plot_param_importance(rs, metric, params=keys), "importance"))
    except (ConfigError, ValueError, RuntimeError) as err:
        note = f"<p class=note>Parameter importance not available: {_e(err)}</p>"
    return f"<h2>Parameter effects</h2><div class=figs>{''.join(imgs)}</div>{note}"


def _latest_diagnostics(run_path: str) -> list[tuple[str, int, Path]]:
    """(name, step, png) of the newest image of each diagnostic of a run."""
    root = Path(run_path) / "diagnostics"
    out = []
    if root.is_dir():
        for diag in sorted(p for p in root.iterdir() if p.is_dir()):
            steps = [(int(m.group(1)), f) for f in diag.iterdir() if (m := _STEP_PNG.match(f.name))]
            if steps:
                step, file = max(steps)
                out.append((diag.name, step, file))
    return out


def _diagnostics_section(rs: RunSet, metric: str, top_k: int) -> str:
    values = run_values(rs, metric, "best").dropna(subset=["value"])
    best = values.sort_values("value", ascending=rs.goal(metric) == "minimize").head(top_k)
    blocks = []
    for _, run in best.iterrows():
        images = "".join(
            f'<div class=diag><img alt="{_e(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(file.read_bytes()).decode("ascii")}"><br>{_e(name)} '
            f"step {step}</div>"
            for name, step, file in _latest_diagnostics(run["path"]))
        blocks.append(f"<h3>{_e(run['run_id'])}: best {_e(metric)} = {_fmt(run['value'])}</h3>"
                      + (images or "<p class=note>no diagnostics images</p>"))
    return f"<h2>Best runs: latest diagnostics</h2>{''.join(blocks)}"


def _config_diff_section(rs: RunSet, keys: list[str]) -> str:
    """Config keys whose values differ between groups (one column per group)."""
    if not keys:
        return ""
    runs = rs.runs.assign(_group=group_labels(rs.runs, keys))
    rows = {}
    for key in rs.config_keys:
        per_group = runs.groupby("_group", sort=True)[key].agg(
            lambda v: " | ".join(sorted(as_text(v).unique())))
        if key != "seed" and per_group.nunique() > 1:
            rows[key] = per_group
    if not rows:
        return ""
    table = pd.DataFrame(rows).T.reset_index(names="config key")
    return f"<h2>Config differences between groups</h2>{_table(table, sortable=False)}"
