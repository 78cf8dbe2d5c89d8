"""`runlab sweep SWEEP_CONFIG`: the command the main app registers as `app.command("sweep")`.

Only typer and the standard library load at import time, so `runlab --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def sweep(
    sweep_config: Annotated[Path, typer.Argument(help="The sweep file (YAML).")],
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", help="Local worker processes (overrides launcher.workers).")] = None,
    launcher: Annotated[str | None, typer.Option(
        "--launcher", help="local or slurm (overrides launcher.name).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List settings x seeds without running anything.")] = False,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="optuna storage URL shared by several machines "
                          "(default: a journal file in the sweep folder).")] = None,
    runs_dir: Annotated[Path, typer.Option(
        "--runs-dir", help="Runs root; the sweep lives in RUNS_DIR/sweeps/<name>/.")] = Path("runs"),
) -> None:
    """Run a hyperparameter sweep over seeds; the same command again resumes it."""
    from runlab.errors import ConfigError
    from runlab.sweep.runner import run_sweep

    try:
        code = run_sweep(sweep_config, workers=workers, launcher=launcher, dry_run=dry_run,
                         storage=storage, runs_dir=runs_dir)
    except ConfigError as e:
        typer.echo(e.format(), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
