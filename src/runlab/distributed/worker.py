"""What each process of a distributed run does: rank 0 leads (decides the run folder,
resumes or starts it, records how it ended), the other ranks follow its decision.

    rank 0:  api.train(...) -> prepare, create or resume the run folder -> share the plan
             -> api.execute with a DistributedTrainer (writers, checkpoints, run.json)
    rank r:  wait for the plan -> prepare the same config -> load the same checkpoint
             -> the same training loop, writing nothing
"""

from __future__ import annotations

import shutil
import sys
import traceback
from functools import partial
from pathlib import Path
from typing import Any

from runlab.distributed.context import Context
from runlab.distributed.env import Rendezvous
from runlab.errors import ConfigError

EXIT_FAILED, EXIT_USAGE = 1, 2


def train(cfg: dict[str, Any], rv: Rendezvous, runs_dir: Path, run_dir: Path | None = None,
          extra: dict[str, Any] | None = None, force: bool = False) -> int:
    """One rank's share of `runlab train` in a distributed run. Returns its exit code."""
    from runlab.distributed.launch import watch_launcher

    watch_launcher()
    ctx = Context.start(rv, str(cfg["trainer"]["device"]))
    ctx.hold_signals()
    try:
        if ctx.is_main:
            return _lead(ctx, cfg, runs_dir, run_dir, extra or {}, force)
        return _follow(ctx)
    finally:
        ctx.close()


def _lead(ctx: Context, cfg: dict[str, Any], runs_dir: Path, run_dir: Path | None,
          extra: dict[str, Any], force: bool) -> int:
    from runlab.distributed.trainer import DistributedTrainer, check_sizes
    from runlab.train import api

    shared = False

    def runner(p: api.Prepared, record: Any, state: dict[str, Any] | None) -> int:
        nonlocal shared
        try:
            check_sizes(p.cfg, p.splits, ctx.world)
        except ConfigError:
            if state is None and run_dir is None:  # made a moment ago for a run that cannot start
                shutil.rmtree(record.dir)
            raise
        ctx.share({"cfg": p.cfg, "run_dir": str(record.dir), "resume": state is not None})
        shared = True
        record.update(distributed={"world_size": ctx.world, "backend": ctx.backend})
        return api.execute(p, record, state, trainer_factory=partial(DistributedTrainer, ctx))

    try:
        code = api.train(cfg, runs_dir, run_dir, extra, force, runner=runner)
    except BaseException as e:
        if not shared:  # the run never started: let the followers go
            ctx.share({"code": EXIT_USAGE if isinstance(e, ConfigError) else EXIT_FAILED})
        raise
    if not shared:
        ctx.share({"code": code})
    return code


def _follow(ctx: Context) -> int:
    from runlab.distributed.trainer import DistributedTrainer
    from runlab.logging.base import MultiWriter
    from runlab.signals import StopFlag
    from runlab.train.api import prepare, resume_checkpoint
    from runlab.train.trainer import Interrupted

    plan = ctx.share()
    if "code" in plan:
        return plan["code"]
    try:
        p = prepare(plan["cfg"])
        ctx.seed_rank(p.cfg["seed"])
        # the same choice as rank 0 (last.pt, else best.pt), from the same files
        state = resume_checkpoint(Path(plan["run_dir"]))[0] if plan["resume"] else None
        trainer = DistributedTrainer(ctx, p.cfg, p.splits, p.model, p.loss, p.optimizers, p.device,
                                     MultiWriter([]), **p.trainer_kwargs(), callbacks=list(p.callbacks))
        if state is not None:
            trainer.load_checkpoint(state)
        with StopFlag(trainer):
            trainer.fit()
    except Interrupted as e:
        return 128 + e.signum
    except BaseException as e:  # noqa: BLE001 - posted for rank 0's run.json, then reported here
        ctx.report_failure(e)
        print(f"runlab: rank {ctx.rank} failed:", file=sys.stderr)
        traceback.print_exc()
        if isinstance(e, KeyboardInterrupt):
            return 130
        from runlab.train.metrics import UnknownMonitor

        return EXIT_USAGE if isinstance(e, UnknownMonitor) else EXIT_FAILED
    return 0
