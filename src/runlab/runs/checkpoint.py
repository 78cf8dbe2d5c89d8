"""Checkpoints: the typed `Checkpoint` (one field per component's state_dict), written
and read here only (`write`, `read`; atomic: temp file, fsync, rename), and RNG state
capture.

A crash while writing never damages the previous good checkpoint: the new file only
replaces the old one by an atomic rename after its bytes are on disk.
"""

from __future__ import annotations

import io
import os
import random
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

PREVIOUS = "previous.pt"  # an ensemble member's checkpoint before its last.pt
FORMAT = 2  # 1: one optimizer under `optimizer` / `scheduler`; 2: `optimizers` by name
MAIN = "main"  # the optimizer of format-1 checkpoints (and of `optimizer:` configs)


@dataclass
class Checkpoint:
    """Everything a run needs to continue bit for bit. On disk: `to_dict()` (plain dicts
    and tensors, loadable with `torch.load(weights_only=True)`).

    `optimizers`: name -> {"optimizer": state_dict, "scheduler": state_dict | None};
    `callbacks`: "<index>:<class>" -> state_dict; `trainer`: the loop's own state
    (metric accumulators, summary, best value, pending scalars, hparams, csv offset);
    `extra`: what a strategy adds (distributed `ranks`, seed `ensemble`).

    Example:
        >>> state = read(run_dir / "checkpoints" / "last.pt")
        >>> state.epoch, state.optimizers["main"]["optimizer"]["param_groups"][0]["lr"]
    """

    config: dict[str, Any]
    config_hash: str
    epoch: int
    step: int
    batch_in_epoch: int
    model: dict[str, torch.Tensor]
    optimizers: dict[str, dict[str, Any]]
    scaler: dict[str, Any]
    rng: dict[str, Any]
    callbacks: dict[str, dict[str, Any]]
    trainer: dict[str, Any]
    csv_t0: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**out, **self.extra, "format": FORMAT}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Checkpoint:
        """Any format: format 1's `optimizer` / `scheduler` become the optimizer 'main'."""
        d = dict(d)
        if "optimizers" not in d:
            d["optimizers"] = {MAIN: {"optimizer": d.pop("optimizer"), "scheduler": d.pop("scheduler", None)}}
        d.setdefault("config", {})
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names},
                   extra={k: v for k, v in d.items() if k not in names})

    def callback_state(self, index: int, callback: Any) -> dict[str, Any]:
        return self.callbacks.get(callback_key(index, callback), {})


def callback_key(index: int, callback: Any) -> str:
    return f"{index}:{type(callback).__name__}"


def optimizer_entry(optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """One optimizer's part of a checkpoint (`Checkpoint.optimizers[name]`)."""
    return {"optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None}


def write(state: Checkpoint, *paths: Path) -> None:
    """Write `state` atomically to every one of `paths` (see `save_atomic`)."""
    save_atomic(state.to_dict(), *paths)


def read(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """The checkpoint at `path`, of any format."""
    return Checkpoint.from_dict(load(path, map_location))


def save_atomic(obj: dict[str, Any], *paths: Path) -> None:
    """Write `obj` to every one of `paths` (e.g. best.pt and last.pt of the same moment).

    It is serialised once, into the first temp file; the others are copies of it. Each
    temp file is fsynced before its rename, and each folder once after all renames:
    per extra path that saves a serialisation and a folder fsync (on small models
    checkpoint fsyncs cost as much as an epoch's training)."""
    _write_atomic(lambda f: torch.save(obj, f), paths)


def _write_atomic(write: Callable[[BinaryIO], Any], paths: tuple[Path, ...],
                  keep_previous: bool = False) -> None:
    """`keep_previous`: a last.pt being replaced becomes previous.pt first (a hard link
    renamed into place, so at every instant last.pt is a whole checkpoint)."""
    targets = [Path(p) for p in paths]
    tmps = [t.with_name(f".{t.name}.{os.getpid()}.tmp") for t in targets]
    try:
        for i, (target, tmp) in enumerate(zip(targets, tmps, strict=True)):
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                if i == 0:
                    write(f)
                else:
                    with open(tmps[0], "rb") as first:
                        shutil.copyfileobj(first, f)
                f.flush()
                os.fsync(f.fileno())
        for target, tmp in zip(targets, tmps, strict=True):
            if keep_previous and target.name == "last.pt" and target.exists():
                link = target.with_name(f".{PREVIOUS}.{os.getpid()}.tmp")
                link.unlink(missing_ok=True)
                os.link(target, link)
                os.replace(link, target.with_name(PREVIOUS))
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    for folder in dict.fromkeys(t.parent for t in targets):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the renames themselves durable
        finally:
            os.close(dir_fd)


class BackgroundSaver:
    """`save_atomic` with the file writes and fsyncs on one background thread, in order,
    while training goes on. The checkpoint is serialised on the caller's thread, so
    what is written is the state at `submit`. `wait()` before anything that needs the
    files on disk (a run's end, an interruption); it re-raises a failed write.

    Example:
        >>> saver = BackgroundSaver()
        >>> saver.submit(trainer_state, run_dir / "checkpoints" / "last.pt")
        >>> saver.wait()
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def submit(self, obj: dict[str, Any], *paths: Path, keep_previous: bool = False) -> None:
        """`keep_previous`: see `_write_atomic` (ensemble members keep one older last.pt)."""
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = buffer.getbuffer()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="runlab-checkpoints")
        self._pending.append(self._pool.submit(_write_atomic, lambda f: f.write(data), paths,
                                               keep_previous))

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint file as stored (a dict), loaded with `weights_only=True` (no
    arbitrary code from pickles); `read` gives the typed `Checkpoint`."""
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> dict[str, Any]:
    """Every global RNG the run draws from (numpy's state as plain lists for weights_only)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": _python_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state() -> list[Any]:
    """`random.getstate()` with its 625 ints as one tensor (pickled ~10x faster)."""
    version, internal, gauss = random.getstate()
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    internal = internal.tolist() if torch.is_tensor(internal) else internal  # older checkpoints: a tuple
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
