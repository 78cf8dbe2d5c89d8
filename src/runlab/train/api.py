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
from runlab.runs.folder import CaptureOutput, RunRecord, new_run_id, read_run_json

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2")
EXIT_OK, EXIT_FAILED = 0, 1


@dataclass
class Prepared:
    """Everything built from a config, before a run folder exists."""

    cfg: dict[str, Any]
    splits: Any
    model: Any
    loss: Any
    optimizer: Any
    scheduler: Any
    sched_interval: str
    sched_monitor: str | None
    scheduled: list
    device: Any
    callbacks: list = field(default_factory=list)


def prepare(cfg: dict[str, Any], splits: Any = None) -> Prepared:
    """Validate and build. Raises ConfigError (exit 2) on any problem; touches no run folder.
    `splits`: the data already built from this `cfg["data"]` (an ensemble's seeds share it)."""
    import torch

    from runlab.optim import build_optimizer, build_scheduler
    from runlab.registry import CALLBACKS
    from runlab.runs.checkpoint import seed_everything
    from runlab.schedule_check import warn_schedules
    from runlab.train.build import build_model_and_loss, build_splits, resolve_device
    from runlab.train.callbacks import EarlyStopping

    validate_config(cfg)
    device = resolve_device(str(cfg["trainer"]["device"]))
    splits = build_splits(cfg["data"]) if splits is None else splits
    seed_everything(cfg["seed"])  # after data: model init is the first draw from the seed
    built = build_model_and_loss(cfg, splits.meta)
    built.model.to(device)
    if cfg["diagnostics"]:
        from runlab.diagnostics.runner import validate_diagnostics

        problems = validate_diagnostics(cfg["diagnostics"], built.model, splits.meta)
        if problems:
            raise ConfigError(problems)
    try:
        optimizer = build_optimizer(cfg["optimizer"], built.model.parameters())
        n_batches = -(-len(splits.train[0]) // cfg["data"]["batch_size"])
        steps = max(1, n_batches // cfg["trainer"]["accumulate"])
        warn_schedules(cfg, steps)
        scheduler, interval, monitor = build_scheduler(
            cfg["scheduler"], optimizer, cfg["trainer"]["max_epochs"], steps)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer/scheduler: {e}") from None
    callbacks = [CALLBACKS.get(c["name"]).obj(**{k: v for k, v in c.items() if k != "name"})
                 for c in cfg["callbacks"]]
    if cfg["trainer"]["early_stopping"]:
        callbacks.append(EarlyStopping(**cfg["trainer"]["early_stopping"]))
    if cfg["trainer"]["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return Prepared(cfg, splits, built.model, built.loss, optimizer, scheduler, interval,
                    monitor, built.scheduled, device, callbacks)


def make_writers(cfg: dict[str, Any], run_dir: Path, record: RunRecord, terminal,
                 resume_state: dict[str, Any] | None):
    """CSV always; console, TensorBoard and wandb as the config says."""
    from runlab.logging.base import MultiWriter
    from runlab.logging.csv import CSVWriter

    lg = cfg["logging"]
    csv = CSVWriter(run_dir / "metrics.csv", t0=resume_state["csv_t0"] if resume_state else None)
    writers: list = [csv]
    console = None
    if lg["console"]:
        from runlab.logging.console import ConsoleWriter

        console = ConsoleWriter(stream=terminal)
        writers.append(console)
    if lg["tensorboard"]:
        from runlab.logging.tensorboard import TensorBoardWriter

        writers.append(TensorBoardWriter(run_dir / "tensorboard"))
    wb = lg["wandb"]
    if wb and wb.get("enabled"):
        from runlab.logging.wandb import WandbWriter

        prev = (record.info.get("wandb") or {}).get("id")
        w = WandbWriter(run_dir, cfg, cfg["name"], run_id=prev, project=wb.get("project") or "runlab",
                        entity=wb.get("entity"), mode=wb.get("mode"), tags=wb.get("tags") or (),
                        resume=resume_state is not None and prev is not None)
        record.update(wandb={"id": w.run_id, "mode": w.mode})
        writers.append(w)
    return MultiWriter(writers), csv, console


class _SignalStop:
    """Turns stop signals into a flag the Trainer checks after each step."""

    def __init__(self, trainer):
        self.trainer, self.saved = trainer, {}

    def __enter__(self):
        for name in STOP_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.trainer.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.trainer.stop_signal = signum

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def create_run_dir(cfg: dict[str, Any], runs_dir: Path, run_dir: Path | None,
                   extra: dict[str, Any]) -> RunRecord:
    from runlab.runs.provenance import collect_provenance, write_provenance_files

    run_id = run_dir.name if run_dir is not None else new_run_id(cfg["name"])
    run_dir = run_dir if run_dir is not None else Path(runs_dir) / "manual" / run_id
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    cwd = Path.cwd()
    record = RunRecord.create(run_dir, run_id, cfg["name"], cfg["seed"],
                              config_hash=config_hash(cfg), **collect_provenance(cwd), **extra)
    write_provenance_files(run_dir, cwd)
    return record


def execute(p: Prepared, record: RunRecord, resume_state: dict[str, Any] | None = None,
            trainer_factory: Callable[..., Any] | None = None) -> int:
    """Train inside an existing run folder; record how it ended. Returns the exit code.
    `trainer_factory` builds the trainer in place of `Trainer` (runlab.distributed's)."""
    from runlab import background
    from runlab.train.trainer import Interrupted, Trainer

    run_dir = record.dir
    marker = None
    if resume_state is not None:
        marker = f"===== runlab: resumed at epoch {resume_state['epoch']} step {resume_state['step']} ====="
    terminal = sys.stdout
    with CaptureOutput(run_dir / "stdout.log", marker):
        writer, csv, console = make_writers(p.cfg, run_dir, record, terminal, resume_state)
        callbacks = list(p.callbacks)
        if p.cfg["diagnostics"]:
            from runlab.diagnostics.runner import DiagnosticsCallback

            callbacks.append(DiagnosticsCallback(p.cfg["diagnostics"], run_dir, p.cfg["seed"]))
        trainer = (trainer_factory or Trainer)(p.cfg, p.splits, p.model, p.loss, p.optimizer, p.device, writer,
                          scheduled=p.scheduled, scheduler=p.scheduler,
                          sched_interval=p.sched_interval, sched_monitor=p.sched_monitor,
                          callbacks=callbacks, run_dir=run_dir, progress=console, csv=csv,
                          on_epoch=lambda t: record.update(epoch=t.state.epoch, step=t.state.step,
                                                           summary=t.summary.data))
        if resume_state is not None:
            trainer.load_checkpoint(resume_state)
        from runlab.train.startup import watch_first_step

        watch_first_step(p.optimizer)
        background.prewarm()  # the drawing process imports matplotlib while training starts
        if resume_state is not None:
            print(f"runlab: resuming run {record.info['id']} at epoch {resume_state['epoch']} "
                  f"step {resume_state['step']} (checkpoints/last.pt)")
        record.start()
        try:
            with _SignalStop(trainer):
                summary = trainer.fit()
        except Interrupted as e:
            name = signal.Signals(e.signum).name
            print(f"runlab: {name} received: checkpoint saved at epoch {trainer.state.epoch} "
                  f"step {trainer.state.step}; resume with `runlab runs resume {record.info['id']}`")
            _finish(record, trainer, writer, callbacks, "interrupted", signal=name)
            return 128 + e.signum
        except BaseException as e:  # noqa: BLE001 - every failure is recorded, then re-reported
            traceback.print_exc()
            # `run_error`: the failure that caused this one, e.g. on another process of the run
            err = getattr(e, "run_error", None) or {
                "type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
            _finish(record, trainer, writer, callbacks, "failed", error=err)
            sys.stderr.flush()  # the traceback before the closing lines
            print(f"runlab: run {run_dir.name} failed at epoch {trainer.state.epoch} step "
                  f"{trainer.state.step}: {err['type']}: {err['message']}".split("\n")[0])
            print(f"runlab: run folder {run_dir}")
            if isinstance(e, KeyboardInterrupt):
                return 130
            return EXIT_FAILED
        plots = background.submit(background.plot_metrics, run_dir)
        _finish(record, trainer, writer, callbacks, "completed")
        _wait_plots(plots)
        _report(summary, run_dir)
    return EXIT_OK


Runner = Callable[[Prepared, RunRecord, "dict[str, Any] | None"], int]


def _finish(record: RunRecord, trainer, writer, callbacks, status: str, **fields: Any) -> None:
    s = trainer.state
    try:
        for cb in callbacks:
            cb.close()
        writer.close()
    finally:
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
    return runner(p, record, None)


def resume(run_dir: Path, cfg: dict[str, Any] | None = None, force: bool = False,
           runner: Runner = execute) -> int:
    """Continue a run in its own folder from `checkpoints/last.pt`, same id."""
    from runlab.config import load_config
    from runlab.logging.csv import truncate_csv
    from runlab.runs import checkpoint as ckpt
    from runlab.runs.status import effective_status

    info = read_run_json(run_dir)
    status = effective_status(info)
    if status == "completed":
        print(f"runlab: run {info['id']} is already completed; nothing to do")
        return EXIT_OK
    if status == "running":
        raise ConfigError(f"run {info['id']} is running (pid {info.get('pid')} on {info.get('host')}); "
                          "it cannot be resumed twice")
    stored = load_config(run_dir / "config.yaml")
    cfg = stored if cfg is None else cfg
    last = run_dir / "checkpoints" / "last.pt"
    state = ckpt.load(last) if last.exists() else None  # on the CPU, where RNG states must be
    changes = config_diff(stored, cfg)
    if state is not None and state["config_hash"] != config_hash(cfg):  # e.g. config.yaml edited
        changes = changes or config_diff(state.get("config", {}), cfg)
    if changes and not force:
        diff = "\n    ".join(changes)
        raise ConfigError(f"config of run {info['id']} no longer matches the one it was trained with "
                          f"(trained -> given):\n    {diff}\n  pass --force to resume anyway")
    p = prepare(cfg)
    if changes and state is not None:
        try:  # a forced change must still fit the weights it continues from
            p.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ConfigError(f"checkpoint {last} does not fit the changed config: {e}") from None
    record = RunRecord.load(run_dir)
    record.info["resumes"] = int(record.info.get("resumes", 0)) + 1
    if cfg != stored:  # the folder records the config the run continues with
        save_config(cfg, run_dir / "config.yaml")
    if changes:
        record.info["forced_changes"] = [*record.info.get("forced_changes", []), *changes]
    for tmp in (run_dir / "checkpoints").glob(".*.tmp"):  # left by a kill during a checkpoint write
        tmp.unlink()
    if state is not None and state["trainer"]["csv_offset"] is not None:
        truncate_csv(run_dir / "metrics.csv", state["trainer"]["csv_offset"])
    elif state is None:  # nothing to continue from: start over in the same folder
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    return runner(p, record, state)
