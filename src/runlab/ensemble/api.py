"""`runlab train CONFIG --seeds K`: K seeds of one config in one process, K run folders.

Vectorised (torch.func) when the optimiser, scheduler and model allow it, else one
seed after another through `runlab.train.api.train`. With `run_dirs` (sweeps) each
seed trains into exactly its folder: completed ones are skipped, others resume
from their `checkpoints/last.pt`; members at the same point resume together.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import traceback
from pathlib import Path
from typing import Any

from runlab.config import config_diff, config_hash, load_config, validate_config
from runlab.errors import ConfigError
from runlab.runs.folder import CaptureOutput, new_run_id, read_run_json

EXIT_OK, EXIT_FAILED = 0, 1


def refusals(cfg: dict[str, Any]) -> list[str]:
    """Config settings that make a vectorised ensemble differ from K separate runs."""
    from runlab.optim import ELEMENTWISE
    from runlab.train.build import PRECISION_DTYPES

    out = []
    opt = str(cfg["optimizer"]["name"]).lower()
    if opt not in ELEMENTWISE:
        out.append(f"optimizer.name: {opt!r} is not element-wise, so one optimiser over the stacked "
                   f"seeds would couple them; vectorised seeds need one of: {', '.join(sorted(ELEMENTWISE))}")
    sched = cfg["scheduler"] or {}
    if str(sched.get("name", "")).lower() == "reducelronplateau" or sched.get("monitor"):
        out.append(f"scheduler.name: {sched.get('name')!r} follows a metric, which differs between "
                   "seeds, but the vectorised seeds share one learning rate")
    t = cfg["trainer"]
    if PRECISION_DTYPES[str(t["precision"])] is not None and str(t["precision"]).startswith("16"):
        out.append(f"trainer.precision: {t['precision']!r} needs a loss scaler that skips steps for "
                   "all seeds at once; use 32 or bf16")
    if t["compile"]:
        out.append("trainer.compile: true is not supported for vectorised seeds")
    return out


def sequential_reason(cfg: dict[str, Any]) -> str | None:
    """Why the seeds of `cfg` train one after another although nothing is refused: the
    vectorised ensemble drives one optimizer over one default forward-loss step."""
    from runlab.registry import CALLBACKS, MODELS
    from runlab.train.events import vectorizable

    if cfg.get("optimizers"):
        return "several optimizers (optimizers:) are not vectorised"
    if cfg["optimizer"].get("groups") or cfg["optimizer"].get("no_decay_bias_norm"):
        return "parameter groups (optimizer.groups / no_decay_bias_norm) are not vectorised"
    if cfg.get("step"):
        return f"a custom step (step: {cfg['step']['name']}) is not vectorised"
    if cfg["data"].get("transforms"):
        return "data.transforms: vectorised seeds draw their batches from in-memory tensors, untransformed"
    model = MODELS.get(cfg["model"]["name"]).obj
    if callable(getattr(model, "training_step", None)):
        return f"model {cfg['model']['name']!r} defines its own training_step, which is not vectorised"
    for c in cfg["callbacks"]:
        if not vectorizable(CALLBACKS.get(c["name"]).obj):
            return f"callback {c['name']!r} needs the single-run trainer's events"
    return None


def train_seeds(cfg: dict[str, Any], seeds: list[int], runs_dir: Path,
                run_dirs: list[Path] | None = None, vectorize: bool = True,
                chunk: int | None = None, extra: dict[str, Any] | None = None) -> int:
    """Train `cfg` once per seed; returns the exit code (0 only if every seed completed)."""
    from runlab.runs.provenance import same_git_state

    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: every seed must appear once, got {seeds}")
    if run_dirs and len(run_dirs) != len(seeds):
        raise ConfigError(f"--run-dir: given {len(run_dirs)} folders for {len(seeds)} seeds; give one per seed")
    if chunk is not None and chunk < 1:
        raise ConfigError(f"--chunk: expected >= 1, got {chunk}")
    validate_config(cfg)
    with same_git_state():  # the seeds start together from one tree
        return _train_seeds(cfg, seeds, runs_dir, run_dirs, vectorize, chunk, extra)


def _train_seeds(cfg: dict[str, Any], seeds: list[int], runs_dir: Path, run_dirs: list[Path] | None,
                 vectorize: bool, chunk: int | None, extra: dict[str, Any] | None) -> int:
    cfgs = [{**copy.deepcopy(cfg), "seed": int(s)} for s in seeds]
    dirs: list[Path | None] = [Path(d) for d in run_dirs] if run_dirs else [None] * len(seeds)
    extra = {**(extra or {}), "ensemble": _ensemble_id(cfg, dirs)}
    if not vectorize or (len(cfgs) == 1 and chunk_of(dirs[0]) is None):
        return _sequential(cfgs, runs_dir, dirs, extra)  # one seed alone: the plain Trainer is faster
    problems = refusals(cfg)
    if problems:
        raise ConfigError([*problems, "pass --no-vectorize to train the seeds one after another"])
    reason = sequential_reason(cfg)
    if reason is not None:
        print(f"runlab: these seeds cannot be trained vectorised ({reason}); "
              "training them one after another")
        return _sequential(cfgs, runs_dir, dirs, extra)
    todo = _common_point([(c, d, _resume_state(c, d)) for c, d in zip(cfgs, dirs, strict=True)
                          if not _completed(d)])
    codes = []
    for group in _by_progress(todo):
        code = _train_group(group, runs_dir, extra, chunk)
        codes.append(code)
        if code > EXIT_FAILED:  # interrupted (128 + signal) or Ctrl-C: stop here
            return code
    return max(codes, default=EXIT_OK)


def chunk_of(run_dir: Path | None) -> list[int] | None:
    """The seeds of the vectorised chunk an unfinished member trains in (read from its
    checkpoint), or None (no such member, or a chunk of one)."""
    from runlab.train.api import resume_checkpoint

    if run_dir is None or not (run_dir / "run.json").exists() or not read_run_json(run_dir).get("ensemble"):
        return None
    with contextlib.suppress(ConfigError):
        if _completed(run_dir, quiet=True):
            return None
    state = resume_checkpoint(run_dir, quiet=True)[0]
    seeds = (state.extra.get("ensemble") or {}).get("seeds") if state is not None else None
    return [int(s) for s in seeds] if seeds and len(seeds) > 1 else None


def resume_member(run_dir: Path) -> int:
    """`runlab runs resume <member>` of a vectorised chunk: the member continues alone in
    its chunk (the other places computed as ghosts), bit for bit as in the chunk."""
    cfg = load_config(run_dir / "config.yaml")
    return train_seeds(cfg, [int(cfg["seed"])], run_dir.parent, [run_dir])


def resume_command(members: list[tuple[int, Path]]) -> str:
    """The command that resumes an ensemble's (seed, run folder) members together (it
    skips completed ones); the same command that a sweep reruns."""
    dirs = " ".join(f"--run-dir {d}" for _, d in members)
    seeds = ",".join(str(s) for s, _ in members)
    return f"runlab train {members[0][1] / 'config.yaml'} --seeds {seeds} {dirs}"


def members_of(run_dir: Path) -> list[tuple[int, Path]]:
    """(seed, folder) of every member of `run_dir`'s ensemble (its sibling folders with
    the same `ensemble` id in run.json), by seed; [] for a run of no ensemble."""
    ensemble = read_run_json(run_dir).get("ensemble")
    if not ensemble:
        return []
    found = []
    for info in sorted(run_dir.parent.glob("*/run.json")):
        with contextlib.suppress(OSError, ValueError):
            other = read_run_json(info.parent)
            if other.get("ensemble") == ensemble:
                found.append((int(other["seed"]), info.parent))
    return sorted(found)


def _ensemble_id(cfg: dict[str, Any], dirs: list[Path | None]) -> str:
    """The id in existing members' run.json (resume), else a new one."""
    for d in dirs:
        if d is not None and (d / "run.json").exists():
            found = read_run_json(d).get("ensemble")
            if found:
                return str(found)
    return new_run_id(f"{cfg['name']}-ens")


def _completed(run_dir: Path | None, quiet: bool = False) -> bool:
    from runlab.runs.status import effective_status

    if run_dir is None or not (run_dir / "run.json").exists():
        return False
    info = read_run_json(run_dir)
    status = effective_status(info, run_dir=run_dir)
    if status in ("running", "created"):
        raise ConfigError(f"run {info['id']} is running (pid {info.get('pid')} on {info.get('host')}); "
                          "it cannot be trained twice")
    if status == "completed" and not quiet:
        print(f"runlab: run {info['id']} (seed {info.get('seed')}) is already completed; skipped")
    return status == "completed"


def _resume_state(cfg: dict[str, Any], run_dir: Path | None) -> Any:
    """The member's last checkpoint when its folder has one (config checked), else None."""
    from runlab.train.api import resume_checkpoint

    if run_dir is None or not (run_dir / "run.json").exists():
        return None
    stored = load_config(run_dir / "config.yaml")
    if config_hash(stored) != config_hash(cfg):
        diff = "\n    ".join(config_diff(stored, cfg))
        raise ConfigError(f"config of run {run_dir.name} no longer matches (stored -> given):\n    {diff}")
    return resume_checkpoint(run_dir)[0]  # last.pt, else best.pt (named in a warning)


def _point(state: Any) -> tuple[int, int, int]:
    return (state.epoch, state.step, state.batch_in_epoch) if state is not None else (0, 0, 0)


def _common_point(todo: list[tuple]) -> list[tuple]:
    """The members resume from one point. They checkpoint at the same steps, but a kill
    between the writes of two members leaves some a checkpoint ahead: those go back to
    their previous.pt (or to the start, when the others have no checkpoint yet). Without
    such a point (members stopped early at their own steps) they stay where they are."""
    from runlab.runs import checkpoint as ckpt

    oldest = min((_point(s) for _, _, s in todo), default=(0, 0, 0))
    out = []
    for cfg, run_dir, state in todo:
        if _point(state) != oldest:
            prev = run_dir / "checkpoints" / ckpt.PREVIOUS
            state = ckpt.read(prev) if prev.exists() and oldest != (0, 0, 0) else None
            if _point(state) != oldest:
                return todo
        out.append((cfg, run_dir, state))
    return out


def _by_progress(todo: list[tuple]) -> list[list[tuple]]:
    """Members at the same (epoch, step, batch) train together; fresh ones at (0, 0, 0)."""
    groups: dict[tuple[int, int, int], list[tuple]] = {}
    for item in todo:
        s = item[2]
        key = (s.epoch, s.step, s.batch_in_epoch) if s is not None else (0, 0, 0)
        groups.setdefault(key, []).append(item)
    return list(groups.values())


def _sequential(cfgs: list[dict[str, Any]], runs_dir: Path, dirs: list[Path | None],
                extra: dict[str, Any]) -> int:
    from runlab.train.api import train

    codes = []
    for cfg, run_dir in zip(cfgs, dirs, strict=True):
        code = train(cfg, runs_dir, run_dir, extra)
        codes.append(code)
        if code > EXIT_FAILED:
            return code
    return max(codes, default=EXIT_OK)


def _train_group(group: list[tuple], runs_dir: Path, extra: dict[str, Any], chunk: int | None) -> int:
    """Members at one point of training, in chunks that fit the device."""
    from runlab.data.base import is_tensors
    from runlab.train.api import prepare

    first = prepare(group[0][0])
    if not is_tensors(first.splits.train):
        print(f"runlab: these seeds cannot be trained vectorised (dataset '{first.splits.meta.name}' "
              "is a torch Dataset, not in-memory tensors); training them one after another")
        return _sequential([c for c, _, _ in group], runs_dir, [d for _, d, _ in group], extra)
    size = chunk or auto_chunk(first, len(group))
    codes = []
    for part, ghosts in _chunks(group, size):
        prepared = [first if c is group[0][0] else prepare(c, first.splits) for c, _, _ in part]
        code = _train_chunk(prepared, part, ghosts, first.splits, runs_dir, extra)
        codes.append(code)
        if code > EXIT_FAILED:
            return code
    return max(codes)


def _chunks(group: list[tuple], size: int) -> list[tuple[list[tuple], frozenset[int]]]:
    """(part, ghosts) to train: fresh members `size` at a time; resumed ones in the chunk
    their checkpoints were written in (a member's numbers depend on the chunk's size: the
    shape of the random draws, the batched kernels), the chunk's seeds that are not resumed
    now filling their places as ghosts."""
    fresh, resumed = [], {}
    for item in group:
        seeds = (item[2].extra.get("ensemble") or {}).get("seeds") if item[2] is not None else None
        if seeds and int(item[0]["seed"]) in seeds:
            resumed.setdefault(tuple(int(s) for s in seeds), {})[int(item[0]["seed"])] = item
        else:
            fresh.append(item)
    out = [(fresh[i:i + size], frozenset()) for i in range(0, len(fresh), size)]
    for seeds, mine in resumed.items():
        cfg = next(iter(mine.values()))[0]
        part = [mine.get(s) or ({**copy.deepcopy(cfg), "seed": s}, None, None) for s in seeds]
        out.append((part, frozenset(i for i, s in enumerate(seeds) if s not in mine)))
    return out


def auto_chunk(p: Any, k: int) -> int:
    """How many members fit at once: half the free host memory, 80 % of free GPU memory."""
    import torch

    from runlab.ensemble.stacked import StepModule, member_bytes

    x, y = p.splits.train
    bs = p.cfg["data"]["batch_size"]
    step = StepModule(p.model, p.loss, p.splits.meta.task == "classification")
    need = member_bytes(step, x[:bs].to(p.device), y[:bs].to(p.device))
    if p.device.type == "cuda":
        budget = 0.8 * torch.cuda.mem_get_info(p.device)[0]
    else:
        budget = 0.5 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(k, int(budget // max(need, 1))))


def _train_chunk(prepared: list, part: list[tuple], ghosts: frozenset[int], splits: Any, runs_dir: Path,
                 extra: dict[str, Any]) -> int:
    from runlab.ensemble.session import Session

    session = Session(prepared, part, splits, extra, ghosts)
    problem = session.problem()
    if problem is not None:
        print(f"runlab: these seeds cannot be trained vectorised ({problem}); "
              "training them one after another")
        mine = [item for i, item in enumerate(part) if i not in ghosts]
        return _sequential([c for c, _, _ in mine], runs_dir, [d for _, d, _ in mine], extra)
    with contextlib.ExitStack() as stack:
        session.open(runs_dir)
        for m in session.trained:
            resumed = m.record.info.get("resumes", 0)
            marker = f"===== runlab: resumed at epoch {m.state.epoch} step {m.state.step} =====" if resumed else None
            stack.enter_context(CaptureOutput(m.record.dir / "stdout.log", marker))
        return _run(session)


def _run(session) -> int:
    from runlab import background
    from runlab.signals import StopFlag
    from runlab.train.api import _wait_plots
    from runlab.train.trainer import Interrupted

    trainer = session.trainer
    background.prewarm()  # as a single run: matplotlib loads in the drawing workers, not here
    for m in session.trained:
        m.record.start()
    seeds = ",".join(str(m.seed) for m in session.trained)
    ghosts = ",".join(str(m.seed) for m in session.members if m.record is None)
    alone = f"; seeds {ghosts} of its chunk computed alongside, without records" if ghosts else ""
    print(f"runlab: training seeds {seeds} vectorised in one process with {session.stack.method} "
          f"(ensemble {session.ensemble_id}{alone}); epoch lines show mean ± std over the seeds")
    try:
        with StopFlag(trainer):
            trainer.fit()
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        command = resume_command([(m.seed, m.record.dir) for m in trainer.active])
        trainer.saver.wait()  # the checkpoints to resume from are on disk
        print(f"runlab: {name} received: checkpoints saved at epoch {trainer.state.epoch} "
              f"step {trainer.state.step}; "
              f"resume the ensemble with `{command}` "
              "or one member alone with `runlab runs resume <run-id>`")
        for m in trainer.active:
            m.finish("interrupted", signal=name)
        return 128 + e.signum
    except BaseException as e:  # noqa: BLE001 - every failure is recorded, then re-reported
        with contextlib.suppress(Exception):  # what was submitted before the failure still lands
            trainer.saver.wait()
        traceback.print_exc()
        err = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
        for m in trainer.active:
            m.finish("failed", error=err)
        if isinstance(e, KeyboardInterrupt):
            return 130
        from runlab.train.metrics import UnknownMonitor

        return 2 if isinstance(e, UnknownMonitor) else EXIT_FAILED
    done = [m for m in session.trained if m.record.info["status"] == "completed"]
    plots = [background.submit(background.plot_metrics, m.record.dir) for m in done]  # drawn in parallel
    for m, future in zip(done, plots, strict=True):
        _wait_plots(future)
        shown = [k for k in ("val/acc", "val/loss", "test/acc") if k in m.summary.data]
        parts = ", ".join(f"{k} {m.summary.data[k]['final']:.4f}" for k in shown)
        print(f"runlab: run {m.record.dir.name} (seed {m.seed}) completed" + (f": {parts}" if parts else ""))
    return EXIT_OK if len(done) == len(session.trained) else EXIT_FAILED

