"""The `runlab` command: thin, parses and calls the library. Heavy imports are lazy so
`runlab --help` answers at once.

Exit codes: 0 success, 1 the run/sweep itself failed, 2 bad usage or bad config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from runlab.analysis.cli import analyze, report
from runlab.runs.cli import app as runs_app
from runlab.runs.cli import usage_errors
from runlab.sweep.cli import sweep

# `runlab --help` lists commands in the order of a project's life, not of registration.
COMMAND_ORDER = ("train", "sweep", "runs", "eval", "analyze", "report", "diagnose", "list", "init")


class _OrderedGroup(typer.core.TyperGroup):
    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER
                      else len(COMMAND_ORDER))


app = typer.Typer(
    name="runlab",
    cls=_OrderedGroup,
    help="Train, sweep and analyse PyTorch models from one YAML config; every run recorded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich help imports ~0.2 s of rich (issue 7)
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(runs_app, name="runs", help="List, show, resume and delete runs.")
app.command("sweep")(sweep)
app.command("analyze")(analyze)
app.command("report")(report)

KINDS = ("models", "datasets", "losses", "optimizers", "schedulers", "hparam-schedules",
         "diagnostics", "callbacks", "steps", "transforms", "writers")


def _parse_seeds(text: str) -> list[int]:
    from runlab.errors import ConfigError

    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        k = int(text)
    except ValueError:
        raise ConfigError(f"--seeds: expected a count K or a list like 0,3,7, got {text!r}") from None
    if k < 1:
        raise ConfigError(f"--seeds: expected a count >= 1, got {k}")
    return list(range(k))


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: Annotated[Path, typer.Argument(help="YAML config file (or a run's config.yaml).")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Dotted KEY=VALUE overrides, e.g. model.latent_dim=8 trainer.max_epochs=3.")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Runs root.", envvar="RUNLAB_RUNS_DIR")] = Path("runs"),
    name: Annotated[str | None, typer.Option("--name", help="Run name (overrides `name:`).")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="Train seeds 0..K-1 (K) or a list (0,3,7).")] = None,
    no_vectorize: Annotated[bool, typer.Option("--no-vectorize", help="With --seeds: one seed after another.")] = False,
    chunk: Annotated[int | None, typer.Option("--chunk", help="With --seeds: members trained at once.")] = None,
    nproc: Annotated[int, typer.Option("--nproc", help="Data-parallel processes (torch.distributed).")] = 1,
    run_dir: Annotated[list[Path] | None, typer.Option("--run-dir", hidden=True,
                                                          help="Train into exactly this folder.")] = None,
    sweep_info: Annotated[str | None, typer.Option("--sweep-info", hidden=True)] = None,
    force: Annotated[bool, typer.Option("--force", help="Resume even if the config changed.")] = False,
) -> None:
    """Train one config (or several seeds of it) into run folders."""
    from runlab.config import load_config
    from runlab.errors import ConfigError

    with usage_errors():
        ov = list(overrides or [])
        if name:
            ov.append(f"name={name}")
        cfg = load_config(config, ov)
        extra = {"sweep": json.loads(sweep_info)} if sweep_info else {}
        target = run_dir[0] if run_dir else None
        if nproc > 1:
            from runlab.distributed import launch

            if seeds is not None:
                raise ConfigError("--nproc: trains one run over several processes; it cannot be "
                                  "combined with --seeds")
            raise typer.Exit(launch(config, ov, nproc, runs_dir, target, sweep_info, force))
        from runlab.distributed import rendezvous_for

        rv = rendezvous_for(cfg)
        if rv is not None:  # one rank of a run started by torchrun, `--nproc` or srun
            from runlab.distributed.worker import train as train_rank

            raise typer.Exit(train_rank(cfg, rv, runs_dir, target, extra, force))
        if seeds is not None:
            from runlab.ensemble.api import train_seeds

            code = train_seeds(cfg, _parse_seeds(seeds), runs_dir, run_dirs=run_dir,
                               vectorize=not no_vectorize, chunk=chunk, extra=extra)
            raise typer.Exit(code)
        from runlab.train.api import train as train_run

        raise typer.Exit(train_run(cfg, runs_dir, target, extra, force=force))


@runs_app.command("resume")
def resume(
    run: Annotated[str, typer.Argument(help="Run id, unique id prefix, or run folder.")],
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Runs root.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Resume even if the config changed.")] = False,
    nproc: Annotated[int | None, typer.Option(
        "--nproc", help="Processes to resume on (default: as many as the run had).")] = None,
) -> None:
    """Continue an interrupted or crashed run from its last checkpoint (same folder, same id)."""
    from runlab.runs import store
    from runlab.train.api import resume as resume_run

    with usage_errors():
        root = runs_dir or store.default_runs_dir()
        folder = store.resolve_run(run, root)
        recorded = store.read_run_json_or_empty(folder).get("distributed")
        world = nproc or (recorded if isinstance(recorded, dict) else {}).get("world_size", 1)
        world = world if isinstance(world, int) else 1
        if world > 1:
            from runlab.distributed import launch

            raise typer.Exit(launch(folder / "config.yaml", [], world, root, folder, force=force))
        raise typer.Exit(resume_run(folder, force=force))


@app.command("list")
def list_components(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}.")],
) -> None:
    """List registered components with a one-line description and their parameters."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from runlab.config import did_you_mean
    from runlab.errors import ERROR
    from runlab.registry import REGISTRIES

    if kind not in REGISTRIES:
        typer.echo(f"{ERROR}unknown kind '{kind}'.{did_you_mean(kind, KINDS)} Available: "
                   f"{', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    table = Table(title=f"runlab {kind}", show_lines=False)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("description")
    table.add_column("parameters (defaults)", style="dim")
    filled = {}
    if kind == "schedulers":  # lengths the framework fills in from the run (runlab.optim)
        from runlab.optim import LENGTH_PARAMS

        filled = dict.fromkeys(LENGTH_PARAMS, "run length")
    for entry in REGISTRIES[kind]:
        src = "" if entry.source == "runlab" else f" [{entry.source}]"
        table.add_row(entry.name, escape(entry.description + src),
                      escape(entry.describe_params(filled)))
    Console(width=max(120, Console().width)).print(table)


@app.command("eval")
def evaluate(
    run: Annotated[str, typer.Argument(help="Run id, unique id prefix, or run folder.")],
    checkpoint: Annotated[str, typer.Option(
        "--checkpoint", "-c", help="last, best, another kept checkpoint's name, or a .pt file.")] = "last",
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    device: Annotated[str | None, typer.Option("--device", help="Default: the run's trainer.device.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Runs root.")] = None,
) -> None:
    """Evaluate a run's saved weights on a split with the run's own loss and metrics."""
    from runlab.saved import load_run

    with usage_errors():
        loaded = load_run(run, checkpoint, device=device, runs_dir=runs_dir)
        metrics = loaded.evaluate(split)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    typer.echo(f"{loaded.path.name}  {loaded.checkpoint.name} (epoch {loaded.epoch}, "
               f"step {loaded.step})  split {split}")
    for name, value in metrics.items():
        typer.echo(f"  {name} {value:.6g}")


@app.command("diagnose")
def diagnose(
    run: Annotated[str, typer.Argument(help="Run id, unique id prefix, or run folder.")],
    diagnostic: Annotated[str, typer.Option(
        "--diagnostic", "-d", help="A registered diagnostic (runlab list diagnostics).")],
    params: Annotated[list[str] | None, typer.Argument(
        help="The diagnostic's parameters as KEY=VALUE, e.g. n=32.")] = None,
    checkpoint: Annotated[str, typer.Option(
        "--checkpoint", "-c", help="last, best, another kept checkpoint's name, or a .pt file.")] = "last",
    device: Annotated[str | None, typer.Option("--device", help="Default: the run's trainer.device.")] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Runs root.")] = None,
) -> None:
    """Run a diagnostic on a run's saved weights; outputs go to the run's diagnostics/ folder."""
    from runlab.config import parse_overrides
    from runlab.errors import ConfigError
    from runlab.saved import load_run

    with usage_errors():
        parsed = parse_overrides(list(params or []))
        if any(op == "remove" for op, _, _ in parsed):
            raise ConfigError("diagnose: parameters are KEY=VALUE; ~KEY removes nothing here")
        kwargs = {key: value for _, key, value in parsed}
        loaded = load_run(run, checkpoint, device=device, runs_dir=runs_dir)
        result = loaded.diagnose(diagnostic, **kwargs)
    for name, value in result["scalars"].items():
        typer.echo(f"  {name} {value:.6g}" if isinstance(value, float) else f"  {name} {value}")
    for file in result["files"]:
        typer.echo(f"wrote {file}")


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder to create.")]) -> None:
    """Scaffold a research project: configs/, sweeps/, models/, datasets/ with examples."""
    from runlab.scaffold import scaffold

    with usage_errors():
        created = scaffold(directory)
    typer.echo(f"created {len(created)} files in {directory}:")
    for p in created:
        typer.echo(f"  {p}")
    typer.echo(f"next: cd {directory} && runlab train configs/example.yaml")


_status = 1  # the exit status `main` ends with (1 until it knows: an uncaught exception)


def _exit_status(code: object) -> int:
    """The status Python would exit with for `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _skip_teardown() -> None:
    """The last exit handler: end the process without tearing down its modules.

    With torch loaded (torch._dynamo in particular), the interpreter's final module
    teardown takes ~0.8 s on a 2-core machine: more than a short run's whole runlab
    overhead. By now non-daemon threads are joined (the drawing worker is shut down)
    and every other exit handler has run (wandb, TensorBoard, plugins' own). What
    teardown would still do that matters is flushing files nobody closed, so that is
    done here before `os._exit`."""
    if "torch" not in sys.modules:
        return  # nothing slow to skip
    import gc
    import io
    import os

    kinds = (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom)
    for f in [o for o in gc.get_objects() if type(o) in kinds]:
        try:
            if not f.closed:
                f.flush()
        except Exception:  # noqa: BLE001 - a broken stream must not stop the exit
            pass
    os._exit(_status)


def main() -> None:
    """The `runlab` console script."""
    import atexit

    global _status
    atexit.register(_skip_teardown)  # registered first, so it runs after every other handler
    try:
        code = _run_app()
        _status = code
        if code:
            sys.exit(code)
    except SystemExit as e:
        _status = _exit_status(e.code)
        raise


def _run_app() -> int:
    """Run the typer app and return its exit code. Click's own usage errors ("No such
    option") are printed with runlab's one error prefix, like every other error."""
    try:  # typer >= 0.16 vendors click
        from typer._click.exceptions import ClickException
    except ImportError:
        from click.exceptions import ClickException

    from runlab.errors import ERROR

    try:
        code = typer.main.get_command(app).main(prog_name="runlab", standalone_mode=False)
    except typer.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):
            return 130
        typer.echo("Aborted!", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except ClickException as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as click shows it
            e.show()
        else:
            if ctx is not None:
                typer.echo(f"{ctx.get_usage()}\nTry '{ctx.command_path} --help' for help.\n",
                           err=True)
            typer.echo(ERROR + e.format_message(), err=True)
        return e.exit_code
    return code if isinstance(code, int) else 0

if __name__ == "__main__":
    main()
