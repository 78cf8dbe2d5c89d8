"""One run, start to finish: config -> components -> run folder -> Trainer -> status.

Config problems are found before the run folder exists (exit 2, nothing left
behind). Once the folder exists every ending is recorded honestly: `completed`,
`failed` (exception, traceback in run.json), `interrupted` (signal, checkpoint saved).
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runlab.config import config_diff, config_hash, save_config, validate_config
from runlab.errors import ConfigError
from runlab.runs.folder import CaptureOutput, RunRecord, make_run_folder
from runlab.runs.lock import RunLock

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


@dataclass
class Prepared:
    """Everything built from a config, before a run folder exists."""

    cfg: dict[str, Any]
    splits: Any
    model: Any
    loss: Any
    optimizers: dict  # name -> runlab.optim.OptimizerSlot
    scheduled: list
    device: Any
    callbacks: list = field(default_factory=list)
    step: Any = None  # the `step:` component, if the config names one

    @property
    def optimizer(self) -> Any:
        """The first (or only) optimizer."""
        return next(iter(self.optimizers.values())).optimizer

    def trainer_kwargs(self) -> dict[str, Any]:
        """The Trainer's keyword arguments that come from the config."""
        return {"scheduled": self.scheduled, "step": self.step}


def prepare(cfg: dict[str, Any], splits: Any = None) -> Prepared:
    """Validate and build. Raises ConfigError (exit 2) on any problem; touches no run folder.
    `splits`: the data already built from this `cfg["data"]` (an ensemble's seeds share it)."""
    import torch

    from runlab.data.base import num_samples
    from runlab.metric_rules import MetricRules
    from runlab.optim import build_optimizers
    from runlab.registry import CALLBACKS
    from runlab.runs.checkpoint import seed_everything
    from runlab.schedule_check import warn_schedules
    from runlab.train.build import build_model_and_loss, build_splits, resolve_device
    from runlab.train.callbacks import EarlyStopping
    from runlab.train.step import build_step

    validate_config(cfg)
    device = resolve_device(str(cfg["trainer"]["device"]))
    splits = build_splits(cfg["data"]) if splits is None else splits
    from runlab.data.transforms import shape_problems

    problems = shape_problems(cfg["data"]["transforms"], splits.meta.input_shape)
    if problems:
        raise ConfigError(problems)
    seed_everything(cfg["seed"])  # after data: model init is the first draw from the seed
    built = build_model_and_loss(cfg, splits.meta)
    built.model.to(device)
    if cfg["diagnostics"]:
        from runlab.diagnostics.runner import validate_diagnostics

        problems = validate_diagnostics(cfg["diagnostics"], built.model, splits.meta)
        if problems:
            raise ConfigError(problems)
    n_batches = -(-num_samples(splits.train) // cfg["data"]["batch_size"])
    steps = max(1, n_batches // cfg["trainer"]["accumulate"])
    optimizers = build_optimizers(cfg, built.model, cfg["trainer"]["max_epochs"], steps,
                                  MetricRules.from_config(cfg))
    warn_schedules(cfg, steps)
    step = build_step(cfg["step"])
    callbacks = []
    for i, c in enumerate(cfg["callbacks"]):
        try:
            callbacks.append(CALLBACKS.get(c["name"]).obj(**{k: v for k, v in c.items() if k != "name"}))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"callbacks[{i}]: building '{c['name']}' failed: {e}") from None
    if cfg["trainer"]["early_stopping"]:
        callbacks.append(EarlyStopping(**cfg["trainer"]["early_stopping"]))
    from runlab.train.metrics import monitor_problems

    problems = monitor_problems(cfg, splits.val is not None)
    if problems:
        raise ConfigError(problems)
    if cfg["trainer"]["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return Prepared(cfg, splits, built.model, built.loss, optimizers, built.scheduled, device,
                    callbacks, step)


def make_writers(cfg: dict[str, Any], run_dir: Path, record: RunRecord, terminal,
                 resume_state: dict[str, Any] | None):
    """CSV always; the console and the writers the config names (`logging.builtins`)."""
    from runlab.logging.base import MultiWriter
    from runlab.logging.csv import CSVWriter

    lg = cfg["logging"]
    csv = CSVWriter(run_dir / "metrics.csv", t0=resume_state.csv_t0 if resume_state else None)
    writers: list = [csv]
    console = None
    if lg["console"]:
        from runlab.logging.console import ConsoleWriter

        console = ConsoleWriter(stream=terminal)
        writers.append(console)
    from runlab.logging.base import WriterContext
    from runlab.logging.builtins import build_writers

    context = WriterContext(run_dir, cfg, record.info["id"], cfg["name"], record.info,
                            resume=resume_state is not None, record=record.update)
    writers += build_writers(lg, context)
    return MultiWriter(writers), csv, console


def create_run_dir(cfg: dict[str, Any], runs_dir: Path, run_dir: Path | None,
                   extra: dict[str, Any]) -> RunRecord:
    """A new run folder (a fresh id under `<runs_dir>/manual`, or exactly `run_dir`), locked
    by this process, with config.yaml, run.json (`created`) and the provenance files."""
    from runlab.runs.provenance import collect_provenance, write_provenance_files

    if run_dir is None:
        run_dir = make_run_folder(Path(runs_dir) / "manual", cfg["name"])
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock.acquire(run_dir)
    try:
        if (run_dir / "run.json").exists():  # another process made it while we waited
            raise ConfigError(f"{run_dir} already holds a run; resume it with "
                              f"`runlab runs resume {run_dir}`")
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        cwd = Path.cwd()
        record = RunRecord.create(run_dir, run_dir.name, cfg["name"], cfg["seed"], lock=lock,
                                  config_hash=config_hash(cfg), **collect_provenance(cwd, cfg["plugins"]), **extra)
        write_provenance_files(run_dir, cwd, cfg["plugins"])
    except BaseException:
        lock.release()
        raise
    return record


def execute(p: Prepared, record: RunRecord, resume_state: dict[str, Any] | None = None,
            trainer_factory: Callable[..., Any] | None = None) -> int:
    """Train inside an existing run folder; record how it ended. Returns the exit code.
    `trainer_factory` builds the trainer in place of `Trainer` (runlab.distributed's)."""
    from runlab import background
    from runlab.signals import StopFlag
    from runlab.train.metrics import UnknownMonitor
    from runlab.train.trainer import Interrupted, Trainer

    run_dir = record.dir
    marker = None
    if resume_state is not None:
        marker = f"===== runlab: resumed at epoch {resume_state.epoch} step {resume_state.step} ====="
    terminal = sys.stdout
    with CaptureOutput(run_dir / "stdout.log", marker):
        writer, csv, console = make_writers(p.cfg, run_dir, record, terminal, resume_state)
        callbacks = list(p.callbacks)
        if p.cfg["diagnostics"]:
            from runlab.diagnostics.runner import DiagnosticsCallback

            callbacks.append(DiagnosticsCallback(p.cfg["diagnostics"], run_dir, p.cfg["seed"]))
        trainer = (trainer_factory or Trainer)(p.cfg, p.splits, p.model, p.loss, p.optimizers, p.device,
                          writer, **p.trainer_kwargs(),
                          callbacks=callbacks, run_dir=run_dir, progress=console, csv=csv,
                          on_epoch=lambda t: record.update(epoch=t.state.epoch, step=t.state.step,
                                                           summary=t.summary.data, durable=True))
        if resume_state is not None:
            trainer.load_checkpoint(resume_state)
        from runlab.train.startup import watch_first_step

        watch_first_step(p.optimizer)
        background.prewarm()  # the drawing process imports matplotlib while training starts
        if resume_state is not None:
            print(f"runlab: resuming run {record.info['id']} at epoch {resume_state.epoch} "
                  f"step {resume_state.step}")
        record.start()
        try:
            with StopFlag(trainer):
                summary = trainer.fit()
        except Interrupted as e:
            name = signal.Signals(e.signum).name
            _finish(record, trainer, writer, callbacks, "interrupted", signal=name)  # first: a
            print(f"runlab: {name} received: checkpoint saved at epoch {trainer.state.epoch} "
                  f"step {trainer.state.step}; resume with `runlab runs resume {record.info['id']}`")
            return 128 + e.signum  # Ctrl-C right after the first must not skip recording the end
        except BaseException as e:  # noqa: BLE001 - every failure is recorded, then re-reported
            # `run_error`: the failure that caused this one, e.g. on another process of the run
            err = getattr(e, "run_error", None) or {
                "type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
            _finish(record, trainer, writer, callbacks, "failed", error=err)
            traceback.print_exception(e)
            sys.stderr.flush()  # the traceback before the closing lines
            print(f"runlab: run {run_dir.name} failed at epoch {trainer.state.epoch} step "
                  f"{trainer.state.step}: {err['type']}: {err['message']}".split("\n")[0])
            print(f"runlab: run folder {run_dir}")
            if isinstance(e, KeyboardInterrupt):
                return 130
            return EXIT_BAD_INPUT if isinstance(e, UnknownMonitor) else EXIT_FAILED
        plots = background.submit(background.plot_metrics, run_dir)
        _finish(record, trainer, writer, callbacks, "completed")
        _wait_plots(plots)
        _report(summary, run_dir)
    return EXIT_OK


Runner = Callable[[Prepared, RunRecord, "dict[str, Any] | None"], int]


def _finish(record: RunRecord, trainer, writer, callbacks, status: str, **fields: Any) -> None:
    """Close callbacks and writers, then record the final status. A close that fails (a
    full disk) turns a clean ending into `failed` with that error; it never keeps run.json
    from being written."""
    from runlab.logging.base import end_run

    s = trainer.state
    try:
        for cb in callbacks:
            cb.close()
        end_run(writer, trainer.cfg, trainer.summary.data, status, fields.get("signal"))
    except KeyboardInterrupt:  # another Ctrl-C while closing: stop waiting, still record the end
        print("runlab: stopped while closing the run's writers", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - recorded in run.json below
        print(f"runlab: error: closing the run's writers failed: {type(e).__name__}: {e}",
              file=sys.stderr)
        if status != "failed":
            status, fields["error"] = "failed", {
                "type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
    record.finish(status, epoch=s.epoch, step=s.step, summary=trainer.summary.data, **fields)


def _wait_plots(future) -> None:
    """End-of-run curves of every metric in plots/ (a failure here never fails the run)."""
    try:
        future.result()
    except Exception as e:  # noqa: BLE001 - plots are a convenience, the run is done
        print(f"runlab: warning: end-of-run plots failed: {type(e).__name__}: {e}")


def _report(summary: dict[str, Any], run_dir: Path) -> None:
    shown = [k for k in ("val/acc", "val/loss", "test/acc", "test/loss") if k in summary]
    parts = [f"{k} {summary[k]['final']:.4f}" for k in shown]
    print(f"runlab: run {run_dir.name} completed" + (": " + ", ".join(parts) if parts else ""))
    print(f"runlab: run folder {run_dir}")


def train(cfg: dict[str, Any], runs_dir: Path, run_dir: Path | None = None,
          extra: dict[str, Any] | None = None, force: bool = False, runner: Runner = execute) -> int:
    """Train `cfg`. With `run_dir` of an existing run: completed -> nothing to do;
    otherwise resume from its last checkpoint (the sweep launchers rely on this).
    `runner` trains in the prepared folder (`execute`, or a distributed run's lead process)."""
    if run_dir is not None and (run_dir / "run.json").exists():
        return resume(run_dir, cfg=cfg, force=force, runner=runner)
    p = prepare(cfg)
    record = create_run_dir(cfg, runs_dir, run_dir, extra or {})
    try:
        return runner(p, record, None)
    finally:
        record.release()


def resume(run_dir: Path, cfg: dict[str, Any] | None = None, force: bool = False,
           runner: Runner = execute) -> int:
    """Continue a run in its own folder from `checkpoints/last.pt`, same id.

    The run's lock is taken first: while another process trains, resumes or deletes the
    run this raises RunBusy (exit 2) and touches nothing. A member of a vectorised seed
    chunk resumes in its chunk (`runlab.ensemble.api.resume_member`), bit for bit."""
    if cfg is None and not force and runner is execute:
        from runlab.ensemble.api import chunk_of, resume_member

        if chunk_of(run_dir) is not None:
            return resume_member(run_dir)
    record = _load_record(run_dir)
    try:
        p, state = _prepare_resume(record, cfg, force)
        if p is None:
            return EXIT_OK
        return runner(p, record, state)
    finally:
        record.release()


def _load_record(run_dir: Path) -> RunRecord:
    try:
        return RunRecord.load(run_dir)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot resume {run_dir}: its run.json is unreadable "
                          f"({type(e).__name__}: {e})") from None


def _prepare_resume(record: RunRecord, cfg: dict[str, Any] | None, force: bool
                    ) -> tuple[Prepared | None, dict[str, Any] | None]:
    """Check and build what resuming needs; (None, None) when the run is already completed."""
    from runlab.config import load_config
    from runlab.runs.status import alive_elsewhere

    run_dir, info = record.dir, record.info
    if info.get("status") == "completed":
        print(f"runlab: run {info.get('id')} is already completed; nothing to do")
        return None, None
    if alive_elsewhere(info):
        raise ConfigError(f"run {info.get('id')} is running (pid {info.get('pid')} on "
                          f"{info.get('host')}); it cannot be resumed twice")
    stored = load_config(run_dir / "config.yaml")
    cfg = stored if cfg is None else cfg
    state, source = resume_checkpoint(run_dir)
    changes = config_diff(stored, cfg)
    if state is not None and state.config_hash != config_hash(cfg):  # e.g. config.yaml edited
        changes = changes or config_diff(state.config, cfg)
    if changes and not force:
        diff = "\n    ".join(changes)
        raise ConfigError(f"config of run {info['id']} no longer matches the one it was trained with "
                          f"(trained -> given):\n    {diff}\n  pass --force to resume anyway")
    p = prepare(cfg)
    if changes and state is not None:
        try:  # a forced change must still fit the weights it continues from
            p.model.load_state_dict(state.model)
        except RuntimeError as e:
            raise ConfigError(f"checkpoint {source} does not fit the changed config: {e}") from None
    info["resumes"] = int(info.get("resumes") or 0) + 1
    if cfg != stored:  # the folder records the config the run continues with
        save_config(cfg, run_dir / "config.yaml")
    if changes:
        info["forced_changes"] = [*info.get("forced_changes", []), *changes]
    for tmp in (run_dir / "checkpoints").glob(".*.tmp"):  # left by a kill during a checkpoint write
        tmp.unlink()
    _restore_metrics(record, state)
    return p, state


def resume_checkpoint(run_dir: Path, quiet: bool = False) -> tuple[Any, Path | None]:
    """The checkpoint to resume from: last.pt, else best.pt when last.pt is missing or
    unreadable (0 bytes, truncated, not a checkpoint), else None (start over). Each
    unusable file is named in a warning (unless `quiet`)."""
    from runlab.runs import checkpoint as ckpt

    folder = run_dir / "checkpoints"
    for name in ("last.pt", "best.pt"):
        path = folder / name
        if not path.exists():
            continue
        try:
            state = ckpt.read(path)  # on the CPU, where RNG states must be
        except Exception as e:  # noqa: BLE001 - any unreadable file: try the next one
            if not quiet:
                _warn(f"checkpoint {path} is unusable ({type(e).__name__}: {str(e)[:200]})")
            continue
        if name != "last.pt" and not quiet:
            _warn(f"resuming {run_dir.name} from {name} (epoch {state.epoch}, step "
                  f"{state.step}): progress after it is trained again")
        return state, path
    return None, None


def _restore_metrics(record: RunRecord, state: Any) -> None:
    """Cut metrics.csv back to the checkpoint's offset, or remove it when starting over;
    say so when rows are lost (a file shorter than the offset, or a restart from scratch)."""
    from runlab.logging.csv import truncate_csv

    csv = record.dir / "metrics.csv"
    size = csv.stat().st_size if csv.exists() else 0
    notes = []
    if state is None:
        if record.info.get("step") or size:
            notes.append(f"run {record.dir.name} has no usable checkpoint: it restarts from "
                         f"scratch and its metrics.csv ({size} bytes) is discarded")
        csv.unlink(missing_ok=True)
    elif state.trainer.get("csv_offset") is not None:
        offset = state.trainer["csv_offset"]
        if size < offset:
            notes.append(f"metrics.csv of run {record.dir.name} is shorter ({size} bytes) than "
                         f"its checkpoint recorded ({offset} bytes): rows logged before the "
                         "checkpoint are lost (disk full, or the file was edited)")
        truncate_csv(csv, offset)
    for note in notes:
        _warn(note)
    if notes:
        record.info["warnings"] = [*record.info.get("warnings", []), *notes]


def _warn(message: str) -> None:
    print(f"runlab: warning: {message}", file=sys.stderr)
