"""`runlab runs ...`: list, show, delete and clean run folders.

Only typer and the stdlib load at import time (`runlab --help` must stay instant);
rich and yaml load inside the commands that print tables or read configs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from runlab.errors import ConfigError
from runlab.runs import store
from runlab.runs.status import ALIVE, STATUSES, alive_elsewhere, heartbeat_age

app = typer.Typer(
    name="runs",
    help="List, inspect and delete run folders.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help, like the main app: keeps `--help` fast
)

DEFAULT_LIMIT = 50
CLEANABLE = ("failed", "crashed", "interrupted")
STATUS_STYLE = {
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "interrupted": "yellow",
    "crashed": "magenta",
    "unreadable": "red",
}

RUNS_DIR = typer.Option(
    None, "--runs-dir", help=f"Runs root (default: ${store.RUNS_DIR_ENV} or ./runs)."
)
YES = typer.Option(False, "--yes", "-y", help="Delete without asking.")


@contextmanager
def usage_errors() -> Iterator[None]:
    """Report a ConfigError as `runlab: error: ...` lines on stderr and exit 2."""
    try:
        yield
    except ConfigError as e:
        typer.echo(e.format(), err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_runs(
    path: Path | None = typer.Argument(
        None,
        help=f"Runs root, sweep folder or run folder (default: ${store.RUNS_DIR_ENV} or ./runs).",
    ),
    where: list[str] = typer.Option(
        [],
        "--where",
        "-w",
        metavar="KEY=VALUE",
        help="Keep runs whose config has this value (repeatable).",
    ),
    status: str | None = typer.Option(
        None, "--status", "-s", help="Keep runs with this status (comma-separated list allowed)."
    ),
    sort: str | None = typer.Option(
        None,
        "--sort",
        metavar="METRIC",
        help="Sort by a metric's final value; -METRIC descending, +METRIC ascending.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run records as a JSON list."),
    limit: int | None = typer.Option(
        None,
        "--limit",
        "-n",
        min=0,
        help=f"Rows to print; 0 = all (default: {DEFAULT_LIMIT}; all with --json).",
    ),
    runs_dir: Path | None = RUNS_DIR,
) -> None:
    """List runs, most recent first, with status, seed, sweep and main metrics.
    PATH and --runs-dir both name where to look (PATH may also be a sweep or run folder)."""
    with usage_errors():
        if path is not None and runs_dir is not None and path != runs_dir:
            raise ConfigError(f"runs list: give PATH ({path}) or --runs-dir ({runs_dir}), "
                              "not both")
        wanted = _parse_statuses(status, (*STATUSES, "unreadable")) if status else None
        conditions = store.parse_where(where)
        records = store.load_runs(path or runs_dir or store.default_runs_dir())
        metric, descending = store.parse_sort(sort, records) if sort else (None, True)
        if wanted:
            records = [r for r in records if r["status"] in wanted]
        records = store.filter_where(records, conditions)
    records = store.sort_runs(records, metric, descending)
    if as_json:
        shown = records[:limit] if limit else records
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    if not records:
        typer.echo("no runs match", err=True)
        return
    limit = DEFAULT_LIMIT if limit is None else limit
    shown = records[:limit] if limit else records
    _console().print(_runs_table(shown, metric))
    if len(shown) < len(records):
        typer.echo(f"showing {len(shown)} of {len(records)} runs; --limit 0 shows all", err=True)


@app.command()
def show(
    run: str = typer.Argument(..., help="Run id, unique id prefix, or run folder."),
    runs_dir: Path | None = RUNS_DIR,
) -> None:
    """Show one run: status, error, provenance, config, metric summary and files."""
    with usage_errors():
        run_dir = store.resolve_run(run, runs_dir or store.default_runs_dir())
    from rich.markup import escape
    from rich.syntax import Syntax

    record = store.read_run(run_dir)
    console = _console()
    console.print(_overview(record), soft_wrap=True)
    error = record.get("error")
    if isinstance(error, dict) and record["status"] != "completed":
        console.print(f"\n[bold red]{escape(str(error.get('type', 'Error')))}:[/] "
                      f"{escape(str(error.get('message', '')))}")
        if error.get("traceback"):
            console.print(Syntax(error["traceback"].rstrip(), "pytb", theme="ansi_dark"))
    config_file = run_dir / store.CONFIG_FILE
    if config_file.is_file():
        console.print(f"\n[bold]{store.CONFIG_FILE}[/]")
        console.print(Syntax(config_file.read_text().rstrip(), "yaml", theme="ansi_dark"))
    if record.get("summary"):
        console.print(_summary_table(record["summary"]))
    console.print(_files_table(run_dir))
    if record.get("ensemble") and record["status"] != "completed":
        from runlab.ensemble.api import members_of, resume_command

        members = members_of(run_dir)
        if len(members) > 1:
            console.print(f"\nresume the ensemble ({len(members)} seeds): {resume_command(members)}",
                          soft_wrap=True, highlight=False)
        console.print(f"resume this member alone: runlab runs resume {record.get('id')}",
                      highlight=False)


@app.command()
def delete(
    runs: list[str] = typer.Argument(
        ..., metavar="RUN...", help="Run ids, unique id prefixes, or run folders."
    ),
    yes: bool = YES,
    runs_dir: Path | None = RUNS_DIR,
) -> None:
    """Delete runs (asks first). Running runs and folders outside the runs root are refused."""
    root = runs_dir or store.default_runs_dir()
    with usage_errors():
        records, problems = [], []
        for ref in runs:
            try:
                records.append(store.read_run(store.resolve_run(ref, root)))
            except ConfigError as e:
                problems += e.problems
        problems += [why for r in records if (why := _refusal(r, root))]
        if problems:
            raise ConfigError([*problems, "nothing deleted"])
    unique = {os.path.realpath(r["path"]): r for r in records}
    _confirm_and_delete(list(unique.values()), yes)


@app.command()
def clean(
    statuses: list[str] | None = typer.Argument(
        None, metavar="[STATUS]...",
        help=f"Statuses to remove: {', '.join(CLEANABLE)} (default: failed).",
    ),
    status: list[str] = typer.Option(
        [], "--status", "-s", help="Same as STATUS (repeatable, comma-separated list allowed)."
    ),
    yes: bool = YES,
    runs_dir: Path | None = RUNS_DIR,
) -> None:
    """Delete every run with the given status (asks first; never touches running runs):
    `runlab runs clean failed crashed`."""
    root = runs_dir or store.default_runs_dir()
    with usage_errors():
        wanted = _parse_statuses(",".join([*(statuses or []), *status]) or "failed", CLEANABLE)
        records = [r for r in store.load_runs(root) if r["status"] in wanted]
    inside = []
    for record in records:
        why = _refusal(record, root)
        if why is None:
            inside.append(record)
        else:
            typer.echo(f"skipping {record['path']}: {why}", err=True)
    records = store.sort_runs(inside)
    if not records:
        typer.echo(f"no {' or '.join(sorted(wanted))} runs under {root}")
        return
    _confirm_and_delete(records, yes)


def _parse_statuses(spec: str, allowed: tuple[str, ...]) -> set[str]:
    from runlab.errors import did_you_mean

    wanted = {s.strip() for s in spec.split(",") if s.strip()}
    problems = []
    for name in sorted(wanted - set(allowed)):
        problems.append(f"unknown status '{name}'.{did_you_mean(name, allowed, cutoff=0.6)} Allowed: {', '.join(allowed)}")
    if problems:
        raise ConfigError(problems)
    return wanted


def _refusal(record: dict, root: Path) -> str | None:
    """Why this run must not be deleted, or None."""
    if not store.is_inside(record["path"], root):
        return f"refusing to delete '{record['path']}': not inside the runs root '{root}'"
    if record["status"] in ALIVE:
        return (f"refusing to delete {record['status']} run '{record['id']}' "
                f"(pid {record.get('pid')} on {record.get('host')})")
    others = [d for d in store.find_run_dirs(record["path"]) if d != record["path"]]
    if others:
        return (f"refusing to delete '{record['path']}': it holds {len(others)} other run(s), "
                f"e.g. {others[0]} (a stray run.json?)")
    return None


def _confirm_and_delete(records: list[dict], yes: bool) -> None:
    """List the runs, ask unless `yes` (no answer, e.g. no stdin, means no), then delete."""
    for record in records:
        typer.echo(f"  {record['status']:<11} {record['path']}")
    if not yes:
        try:
            ok = typer.confirm(f"Delete these {len(records)} run(s)?", default=False)
        except typer.Abort:
            ok = False
        if not ok:
            typer.echo("aborted: nothing deleted", err=True)
            raise typer.Exit(1)
    for record in records:
        _delete_locked(record)


def _delete_locked(record: dict) -> None:
    """Delete one run while holding its lock, so that no process can start using it meanwhile
    (a sweep may have resumed it while we waited for the answer)."""
    from runlab.runs.lock import RunBusy, RunLock

    path = os.path.realpath(record["path"])
    try:
        lock = RunLock.acquire(Path(path))
    except RunBusy:
        typer.echo(f"skipped {record['id']}: it is in use now (training or being resumed)", err=True)
        return
    except FileNotFoundError:
        typer.echo(f"skipped {record['id']}: it is gone already", err=True)
        return
    try:
        if alive_elsewhere(store.read_run_json_or_empty(path)):  # holding the lock, only
            typer.echo(f"skipped {record['id']}: it is running now", err=True)
            return
        shutil.rmtree(path)
    finally:
        lock.release()
    typer.echo(f"deleted {record['id']}")


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # files and pipes: keep ids and paths on one line
        console.width = 240
    return console


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _metric_columns(records: list[dict], first: str | None) -> list[str]:
    """Up to four metrics to show: the sort metric, then val/*, else any non-bookkeeping ones."""
    names = sorted({m for r in records for m in (r.get("summary") or {})})
    chosen = [m for m in names if m.startswith("val/")] or [
        m for m in names if not m.startswith(("hparam/", "diag/")) and m != "lr"
    ]
    if first:
        chosen = [first] + [m for m in chosen if m != first]
    return chosen[:4]


def _runs_table(records: list[dict], sort_metric: str | None) -> Any:
    from rich.table import Table
    from rich.text import Text

    metrics = _metric_columns(records, sort_metric)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True)
    for name in ("name", "status", "started", "duration", "seed", "sweep"):
        table.add_column(name, no_wrap=True)
    for metric in metrics:
        table.add_column(escape(metric), justify="right", no_wrap=True)
    now = time.time()
    for r in records:
        sweep = r.get("sweep") if isinstance(r.get("sweep"), dict) else {}
        values = [store.final_value(r, m) for m in metrics]
        table.add_row(
            Text(str(r.get("id"))),
            Text(str(r.get("name") or "")),
            _styled(r["status"]),
            _when(r.get("started") or r.get("created")),
            _duration(r, now),
            _text(r.get("seed")),
            Text(str(sweep.get("name") or "")),
            *("" if v is None else f"{v:.4g}" for v in values),
        )
    return table


def _overview(record: dict) -> str:
    """`key  value` lines (markup): unlike a table, no line is padded to the widest one."""
    from rich.markup import escape

    status = _styled(record["status"])
    if record.get("recorded_status"):
        age = heartbeat_age(record)
        last = "never" if age is None else f"{_seconds(age)} ago"
        status += (
            f" (run.json says {record['recorded_status']}; process gone, last heartbeat {last})"
        )
    sweep = record.get("sweep") or {}
    rows = {
        "id": record.get("id"),
        "path": record["path"],
        "status": status,
        "name": record.get("name"),
        "seed": record.get("seed"),
        "started": _when(record.get("started")),
        "ended": _when(record.get("ended")),
        "duration": _duration(record, time.time()),
        "progress": f"epoch {record.get('epoch')}, step {record.get('step')}"
        if "step" in record
        else None,
        "sweep": ", ".join(f"{k}={v}" for k, v in sweep.items()) if sweep else None,
        "ensemble": record.get("ensemble"),
        "git": _git_text(record.get("git") or {}),
        "versions": " ".join(f"{k}={v}" for k, v in (record.get("versions") or {}).items() if v),
        "host": f"{record.get('host')} (pid {record.get('pid')})",
        "devices": ", ".join(record.get("devices") or []),
        "command": shlex.join(record["command"]) if record.get("command") else None,
    }
    width = max(len(k) for k in rows)
    return "\n".join(f"[bold]{key:<{width}}[/]  {value if key == 'status' else escape(str(value))}"
                     for key, value in rows.items() if value not in (None, ""))


def _git_text(git: dict) -> str:
    if git.get("error"):
        return str(git["error"])
    parts = [
        (git.get("commit") or "")[:12],
        git.get("branch"),
        "(dirty)" if git.get("dirty") else "",
    ]
    return " ".join(str(p) for p in parts if p)


def _summary_table(summary: dict) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="summary", title_justify="left", header_style="bold")
    table.add_column("metric")
    columns = ("final", "best", "min", "max", "best_step", "goal")
    for column in columns:
        table.add_column(column, justify="right")
    for metric, entry in sorted(summary.items()):
        entry = entry if isinstance(entry, dict) else {"final": entry}
        table.add_row(Text(metric), *(_text(entry.get(c)) for c in columns))
    return table


def _files_table(run_dir: Path) -> Any:
    """Top-level files with sizes; folders (checkpoints/, diagnostics/) as totals."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="files", title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column()
    table.add_column(justify="right")
    for entry in sorted(os.scandir(run_dir), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            sizes = [
                os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(entry.path) for f in fs
            ]
            table.add_row(Text(f"{entry.name}/"), f"{_size(sum(sizes))} in {len(sizes)} files")
        else:
            table.add_row(Text(entry.name), _size(entry.stat(follow_symlinks=False).st_size))
    return table


def escape(text: str) -> str:
    """`text` shown verbatim by rich (metric and run names may hold `[x]`)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _when(stamp: str | None) -> str:
    """ISO timestamp as local 'YYYY-mm-dd HH:MM:SS'."""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return stamp or ""


def _duration(record: dict, now: float) -> str:
    if record["status"] == "running" and record.get("started"):
        return _seconds(now - store.started_at(record))
    seconds = record.get("duration_s")
    return _seconds(seconds) if isinstance(seconds, (int, float)) else ""


def _seconds(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _size(n: float) -> str:
    units = ("B", "KB", "MB", "GB", "TB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.0f} {units[i]}" if i == 0 else f"{n:.1f} {units[i]}"
