"""One self-contained HTML report over a set of runs (images inline, JS/CSS inline)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from runlab.analysis import plots
from runlab.analysis.grouping import (
    compact,
    compare_settings,
    group_labels,
    resolve_group_keys,
    run_values,
    verdict_line,
)
from runlab.analysis.load import RunSet, as_text, load_runs
from runlab.analysis.objective import AUXILIARY, Objective, default_metric, objectives
from runlab.analysis.report_assets import CHART_CSS, CHART_JS, CSS, ERROR_HOOK, SORT_JS
from runlab.analysis.stats import BEST, TIE
from runlab.errors import ConfigError

__all__ = ["default_metric", "write_report"]

_STEP_PNG = re.compile(r"^step-(\d+)\.png$")
MAX_RUN_ROWS = 500
MAX_CHART_METRICS = 30


def write_report(
    runs: RunSet | str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike = "report.html",
    metric: str | Sequence[str] | None = None,
    by: str | Sequence[str] | None = None,
    stat: str | None = None,
    goal: str | None = None,
    max_curves: int = 6,
    top_k: int = 3,
) -> Path:
    """Write the HTML report and return its path.

    `metric`: names or globs; default the sweep's metric (its goal and stat too), else
    val/loss, val/acc, ... The first is the lead metric. Sections: per metric, every group
    compared with the best (difference and its CI, Holm-corrected p-values, Hedges' g,
    verdict), the per-run table, learning curves with CI bands (points with error bars
    for metrics logged once), parameter effects, the best runs' latest diagnostics, and
    the config keys that differ between groups.

    Example:
        >>> write_report("runs/sweeps/vae-beta", "vae-beta.html", metric="val/*")
    """
    rs = runs if isinstance(runs, RunSet) else load_runs(runs)
    if len(rs) == 0:
        raise ConfigError("no runs to report on")
    chosen = objectives(rs, [metric] if isinstance(metric, str) else metric, stat, goal)
    lead = chosen[0]
    keys = resolve_group_keys(rs, by)
    sections = [
        *(_summary_section(rs, o, keys) for o in chosen),
        _runs_section(rs, lead, keys),
        _curves_section(rs, [o.metric for o in chosen], keys, max_curves),
        _effects_section(rs, lead, keys),
        _diagnostics_section(rs, lead, top_k),
        _config_diff_section(rs, keys),
    ]
    metric = lead.metric
    statuses = ", ".join(f"{n} {s}" for s, n in rs.runs["status"].value_counts().items())
    sources = sorted({str(Path(p).parent) for p in rs.runs["path"]})
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>runlab report: {_e(metric)}</title>
<script>{ERROR_HOOK}</script>
<style>{CSS}{CHART_CSS}</style></head>
<body>
<h1>runlab report</h1>
<p class="meta">{len(rs)} runs ({_e(statuses)}) from {_e(", ".join(sources[:5]))}
{"..." if len(sources) > 5 else ""}<br>main metric <b>{_e(metric)}</b>
({lead.goal}, {lead.stat} value per run), grouped by {_e(", ".join(keys) or "nothing (one group)")};
generated {dt.datetime.now().strftime("%Y-%m-%d %H:%M")}</p>
<pre id="js-errors"></pre>
{"".join(sections)}
<script>{SORT_JS}</script>
<script>{CHART_JS}</script>
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


def _table(df: pd.DataFrame, classes: Sequence[str] = (), sortable: bool = True) -> str:
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
        cls = classes[i] if i < len(classes) else ""
        rows.append(f'<tr{f" class={cls}" if cls else ""}>{cells}</tr>')
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _img(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _summary_section(rs: RunSet, o: Objective, keys: list[str]) -> str:
    table = compare_settings(rs, o.metric, o.stat, by=keys, goal=o.goal)
    classes = ["best" if v == BEST else "tie" if v == TIE else ""
               for v in table.get("verdict", [])]
    return (f"<h2>Summary: {_e(o.metric)}</h2>"
            f"<p class=verdict>{_e(verdict_line(table))}</p>"
            f"<p class=note>{_e(o.stat)} value per run ({_e(o.goal)}), mean over seeds with "
            "its 95% t-interval; <i>diff</i> = group mean - best mean with its 95% Welch "
            "interval; p-values Holm-corrected over the comparisons; Hedges' g of the group "
            "against the best. Green: the best group and those not distinguishable from it "
            "at 95%.</p>" + _table(compact(table), classes))


def _runs_section(rs: RunSet, o: Objective, keys: list[str]) -> str:
    values = run_values(rs, o.metric, "best", o.goal)
    finals = run_values(rs, o.metric, "final")["value"]
    per_run = values[["run_id", "status", *keys, "seed"]].assign(final=finals, best=values["value"])
    if o.stat not in per_run:  # the statistic compared (mean_last, min, max) gets its column
        per_run[o.stat] = run_values(rs, o.metric, o.stat)["value"]
    per_run = per_run.sort_values(o.stat, ascending=o.goal == "minimize")
    shown = per_run.head(MAX_RUN_ROWS)
    return (f"<h2>Runs: {_e(o.metric)} ({len(shown)} of {len(per_run)}, best first)</h2>"
            + _table(shown.reset_index(drop=True)))


def curve_families(rs: RunSet, first: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Every metric grouped by family (`RunSet.family`), the chosen metrics' families first,
    then families with val/ members, then train/, then the rest; lr, hparams, time and
    diagnostics last."""
    families: dict[str, list[str]] = {}
    for name in rs.metric_names:
        families.setdefault(rs.family(name), []).append(name)

    def rank(item: tuple[str, list[str]]) -> tuple:
        family, names = item
        return (not any(n in first for n in names), all(AUXILIARY.match(n) for n in names),
                not any(n.startswith("val/") for n in names),
                not any(n.startswith("train/") for n in names), family)

    return sorted(families.items(), key=rank)


def _curves_section(rs: RunSet, first: list[str], keys: list[str], limit: int,
                    max_families: int = 40) -> str:
    """One subsection per family: a curve per group for each member of a small family
    (up to `limit` members, e.g. loss: train/loss, train/loss_epoch, val/loss, test/loss),
    one figure with every member for a larger one (per-class accuracies); above them the
    interactive chart of the chosen metrics."""
    families = curve_families(rs, first)
    parts = ["<h2>Learning curves</h2>", _chart(rs, first, keys)]
    for family, names in families[:max_families]:
        if len(names) <= limit:
            names = sorted(names, key=lambda n: (n not in first, _split_rank(n), n))
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


def _curve_metrics(rs: RunSet, first: list[str], limit: int) -> list[str]:
    """The chosen metrics, then the others (val/ before train/), at most `limit` in all."""
    names = [n for n in rs.metric_names if not AUXILIARY.match(n) and n not in first]
    names.sort(key=lambda n: (not n.startswith("val/"), not n.startswith("train/"), n))
    return [*first, *names][:max(limit, len(first))]


def _chart(rs: RunSet, first: list[str], keys: list[str]) -> str:
    """The interactive chart over every metric logged at two or more steps (inline SVG and
    script: works offline from a file:// URL)."""
    data = {}
    for m in _curve_metrics(rs, first, MAX_CHART_METRICS):
        bands = plots.curve_bands(rs, m, keys)
        if any(len(b["step"]) > 1 for b in bands):
            data[m] = [{"label": b["label"], "n": b["n"], "step": b["step"].tolist(),
                        **{k: [None if not np.isfinite(v) else float(v) for v in b[k]]
                           for k in ("mean", "low", "high")}} for b in bands]
    if not data:
        return ""
    options = "".join(f"<option>{_e(m)}</option>" for m in data)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (f'<div class=chart id=chart><label>metric <select>{options}</select></label> '
            "<span class=note>hover for values; drag across steps to zoom, double-click to "
            'reset</span><br><svg viewBox="0 0 760 360" width="760" height="360"></svg>'
            f'<div class=legend></div><div class=tip></div></div>'
            f'<script type="application/json" id="curves">{payload}</script>')


def _effects_section(rs: RunSet, o: Objective, keys: list[str]) -> str:
    if not keys:
        return "<h2>Parameter effects</h2><p class=note>No config key varies across these runs.</p>"
    imgs = [_img(plots.plot_metric_vs_param(rs, o.metric, k, o.stat, by=keys, goal=o.goal),
                 f"{o.metric} vs {k}") for k in keys[:4]]
    note = ""
    if len(keys) >= 2:  # with one parameter, both would only restate the plot above
        imgs.append(_img(plots.plot_parallel_coordinates(rs, o.metric, keys, o.stat, o.goal),
                         "parallel coordinates"))
        try:
            imgs.append(_img(plots.plot_param_importance(rs, o.metric, o.stat, keys, o.goal),
                             "importance"))
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


def _diagnostics_section(rs: RunSet, o: Objective, top_k: int) -> str:
    metric = o.metric
    values = run_values(rs, metric, "best", o.goal).dropna(subset=["value"])
    best = values.sort_values("value", ascending=o.goal == "minimize").head(top_k)
    blocks = []
    found = False
    for _, run in best.iterrows():
        images = "".join(
            f'<div class=diag><img alt="{_e(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(file.read_bytes()).decode("ascii")}"><br>{_e(name)} '
            f"step {step}</div>"
            for name, step, file in _latest_diagnostics(run["path"]))
        blocks.append(f"<h3>{_e(run['run_id'])}: best {_e(metric)} = {_fmt(run['value'])}</h3>"
                      + (images or "<p class=note>no diagnostics images</p>"))
        found = found or bool(images)
    if not found:  # no panel without pictures
        return ""
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
