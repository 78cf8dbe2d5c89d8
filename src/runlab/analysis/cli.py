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
    mean_last = "mean_last"


class Goal(str, enum.Enum):
    minimize = "minimize"
    maximize = "maximize"


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    json = "json"


MetricOption = Annotated[list[str] | None, typer.Option(
    "--metric", "-m",
    help="Metric name or glob (val/*), repeatable. Default: the sweep's metric "
         "(sweep.yaml), else val/loss, val/acc, ...")]
ByOption = Annotated[list[str] | None, typer.Option(
    "--by", "--group-by", "-g",
    help="Config key to group by (repeatable). Default: the sweep's parameters, else every "
         "hyperparameter that varies (not seed, name, diagnostics, logging.*, ...).")]
StatOption = Annotated[Stat | None, typer.Option(
    "--stat",
    help="Per-run value: final (last logged), min, max, best (by the metric's goal), or "
         "mean_last (of its last k values). Default: the sweep's stat, else the metric's "
         "`summary:` rule (metrics: section; final unless set).")]
GoalOption = Annotated[Goal | None, typer.Option(
    "--goal", help="minimize or maximize. Default: the sweep's goal, else guessed from the name.")]


def analyze(
    path: Annotated[Path, typer.Argument(help="A run folder, a sweep folder or a runs root.")],
    metric: MetricOption = None,
    group_by: ByOption = None,
    stat: StatOption = None,
    goal: GoalOption = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """Aggregate metrics over seeds (n, mean, std, sem, 95% CI, ...) and compare every setting
    with the best one: difference with its 95% CI, Holm-corrected Welch and Mann-Whitney p,
    Hedges' g, and whether the two are distinguishable at 95%."""
    from runlab.analysis.grouping import compact, compare_settings, verdict_line
    from runlab.analysis.load import load_runs
    from runlab.analysis.objective import objectives
    from runlab.errors import ConfigError

    try:
        rs = load_runs(path)
        if len(rs) == 0:
            _fail(f"no runs found under {path} (looked for folders holding run.json)")
        chosen = objectives(rs, metric, stat and stat.value, goal and goal.value)
        tables = [(o, compare_settings(rs, o.metric, o.stat, by=group_by or None, goal=o.goal))
                  for o in chosen]
    except ConfigError as err:
        _fail("\n".join(err.problems))
    if fmt is Format.table:
        for o, table in tables:
            _print_rich(compact(table), f"{o.metric} ({o.stat}, {o.goal}) over {len(rs)} runs")
            typer.echo(verdict_line(table))

    elif fmt is Format.markdown:
        sys.stdout.write("\n".join(f"### {o.metric} ({o.stat}, {o.goal})\n\n"
                                    + _markdown(compact(t)) for o, t in tables))
    else:
        import pandas as pd

        table = pd.concat([t.assign(metric=o.metric)[["metric", *t.columns]]
                           for o, t in tables], ignore_index=True)
        if fmt is Format.csv:
            sys.stdout.write(table.to_csv(index=False))
        else:
            records = [{k: _json_value(v) for k, v in row.items()}
                       for row in table.to_dict("records")]
            sys.stdout.write(json.dumps(records, indent=2, allow_nan=False) + "\n")


def report(
    path: Annotated[Path, typer.Argument(help="A run folder, a sweep folder or a runs root.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"),
    metric: MetricOption = None,
    group_by: ByOption = None,
    stat: StatOption = None,
    goal: GoalOption = None,
) -> None:
    """Write one self-contained HTML report: the comparison of settings on the sweep's metric
    first, then curves, parameter effects, diagnostics and config differences."""
    from runlab.analysis.load import load_runs
    from runlab.analysis.report import write_report
    from runlab.errors import ConfigError

    try:  # the output folder first: a typo must not cost the whole report's work
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"--output {output}: cannot create its folder: {e}")
    try:
        rs = load_runs(path)
        if len(rs) == 0:
            _fail(f"no runs found under {path} (looked for folders holding run.json)")
        out = write_report(rs, output, metric=metric, by=group_by or None,
                           stat=stat and stat.value, goal=goal and goal.value)
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
    return None if isinstance(value, float) and not math.isfinite(value) else value  # JSON: null


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
    from rich.markup import escape

    out = Table(title=escape(title))
    for col in table.columns:
        out.add_column(escape(str(col)), justify="left" if table[col].dtype == object else "right")
    for row in rows:
        out.add_row(*map(escape, row))  # metric names and config values verbatim (`[x]`)
    # never squeeze numbers into "0.2…": widen past the terminal and let it scroll instead
    needed = sum(max([len(str(c)), *(len(r[i]) for r in rows)]) + 3
                 for i, c in enumerate(table.columns))
    console = Console()
    console.width = max(console.width, needed + 1)
    console.print(out)
