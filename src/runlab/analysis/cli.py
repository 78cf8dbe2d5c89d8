"""`runlab analyze` and `runlab report`, registered by the main app with
`app.command("analyze")(analyze)` and `app.command("report")(report)`.

Only typer and the standard library are imported here: pandas, scipy and matplotlib load
inside the commands so that `runlab --help` stays fast.
"""

from __future__ import annotations

import enum
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd


class Stat(str, enum.Enum):
    final = "final"
    min = "min"
    max = "max"
    best = "best"


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    json = "json"


def analyze(
    path: Annotated[Path, typer.Argument(help="A run folder, a sweep folder or a runs root.")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric name, e.g. val/loss.")],
    group_by: Annotated[list[str] | None, typer.Option(
        "--group-by", "-g",
        help="Config key to group by (repeatable). Default: every key that varies, except seed.",
    )] = None,
    stat: Annotated[Stat, typer.Option(
        "--stat",
        help="Per-run value: final (last logged), min, max, or best (by the metric's goal).",
    )] = Stat.final,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """Aggregate a metric over seeds: n, mean, std, sem, 95% CI, median, min, max per group."""
    from runlab.analysis.grouping import aggregate
    from runlab.analysis.load import load_runs
    from runlab.errors import ConfigError

    try:
        rs = load_runs(path)
        if len(rs) == 0:
            _fail(f"no runs found under {path} (looked for folders holding run.json)")
        table = aggregate(rs, metric, stat.value, by=group_by or None)
    except ConfigError as err:
        _fail("\n".join(err.problems))
    if fmt is Format.table:
        _print_rich(table, f"{metric} ({stat.value}) over {len(rs)} runs")
    elif fmt is Format.csv:
        sys.stdout.write(table.to_csv(index=False))
    elif fmt is Format.markdown:
        sys.stdout.write(_markdown(table))
    else:
        records = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
        sys.stdout.write(json.dumps(records, indent=2) + "\n")


def report(
    path: Annotated[Path, typer.Argument(help="A run folder, a sweep folder or a runs root.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"),
) -> None:
    """Write one self-contained HTML report (tables, curves, parameter effects, diagnostics)."""
    from runlab.analysis.load import load_runs
    from runlab.analysis.report import write_report
    from runlab.errors import ConfigError

    try:
        rs = load_runs(path)
        if len(rs) == 0:
            _fail(f"no runs found under {path} (looked for folders holding run.json)")
        out = write_report(rs, output)
    except ConfigError as err:
        _fail("\n".join(err.problems))
    typer.echo(f"wrote {out} ({len(rs)} runs)")


def _fail(message: str) -> None:
    from runlab.errors import ERROR

    typer.echo(ERROR + message, err=True)
    raise typer.Exit(2)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _json_value(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _print_rich(table: pd.DataFrame, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    out = Table(title=title)
    for col in table.columns:
        out.add_column(str(col), justify="left" if table[col].dtype == object else "right")
    for row in rows:
        out.add_row(*row)
    # never squeeze numbers into "0.2…": widen past the terminal and let it scroll instead
    needed = sum(max([len(str(c)), *(len(r[i]) for r in rows)]) + 3
                 for i, c in enumerate(table.columns))
    console = Console()
    console.width = max(console.width, needed + 1)
    console.print(out)
