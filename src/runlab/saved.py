"""A finished (or interrupted) run brought back: its model with saved weights, its config,
its metrics; evaluate it on a split or run a diagnostic on it.

Example:
    >>> run = runlab.load_run("runs/manual/mlp-20261128-101500-a3f2", checkpoint="best")
    >>> run.model(x)                      # the trained nn.Module, in eval mode
    >>> run.evaluate("test")              # {"test/loss": ..., "test/acc": ...}
    >>> run.metrics.query("metric == 'val/acc'")
    >>> run.diagnose("confusion_matrix")  # -> diagnostics/confusion_matrix/step-<N>.png

Evaluation goes through the Trainer's own `evaluate`, with the run's config (batch size,
precision, loss), so `evaluate("test")` on the last checkpoint gives the run's logged
`test/*` values exactly (on the device the run used).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runlab.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd
    import torch


def checkpoint_path(run_dir: Path, checkpoint: str | os.PathLike) -> Path:
    """`last`, `best`, any other kept `checkpoints/<name>.pt` (`epoch-3`), or a file path."""
    given = Path(checkpoint)
    if given.suffix == ".pt" and given.is_file():
        return given
    folder = Path(run_dir) / "checkpoints"
    file = folder / f"{checkpoint}.pt"
    if file.is_file():
        return file
    kept = sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []
    hint = did_you_mean(checkpoint, kept, cutoff=0.6)
    raise ConfigError(f"--checkpoint: run {Path(run_dir).name} has no checkpoint "
                      f"'{checkpoint}'.{hint} Available: {', '.join(kept) or 'none'}")


@dataclass
class SavedRun:
    """A run folder with its model rebuilt from the config and the checkpoint's weights.

    Attributes:
        path: the run folder; info: its run.json; config: its resolved config.yaml.
        model: the nn.Module with the checkpoint's weights, in eval mode, on `device`.
        checkpoint: the .pt file the weights came from; epoch/step: where it was taken.
        splits: the run's data (train, val, test tensors and the dataset's meta).
    """

    path: Path
    info: dict[str, Any]
    config: dict[str, Any]
    model: torch.nn.Module
    checkpoint: Path
    epoch: int
    step: int
    splits: Any
    device: torch.device
    _prepared: Any = field(repr=False, default=None)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv as a long DataFrame: step, epoch, time, metric, value."""
        import pandas as pd

        file = self.path / "metrics.csv"
        if not file.is_file():
            return pd.DataFrame(columns=["step", "epoch", "time", "metric", "value"])
        return pd.read_csv(file, on_bad_lines="skip")

    @cached_property
    def _trainer(self) -> Any:
        from runlab.logging.base import MultiWriter
        from runlab.train.trainer import Trainer

        p = self._prepared
        trainer = Trainer(p.cfg, p.splits, p.model, p.loss, p.optimizers, p.device,
                          MultiWriter([]), **p.trainer_kwargs(), run_dir=None)
        trainer.state.epoch, trainer.state.step = self.epoch, self.step
        return trainer

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Sample-weighted means of every loss term and metric on `split` (train/val/test)."""
        if split == "train" and "train" not in self._trainer.eval_loaders:
            self._trainer.eval_loaders["train"] = self._trainer.make_eval_loader(self.splits.train)
        if split not in self._trainer.eval_loaders:
            have = ", ".join(["train", *self._trainer.eval_loaders])
            raise ConfigError(f"--split: run {self.path.name} has no '{split}' split. "
                              f"Available: {have}")
        return self._trainer.evaluate(split)

    def diagnose(self, name: str, **params: Any) -> dict[str, Any]:
        """Run the registered diagnostic `name` (with `params`) on these weights, as the run
        would have at this step: outputs in `diagnostics/<name>/step-<step>.png|.npz`.
        Returns `{"files": [...], "scalars": {...}}`."""
        from runlab.diagnostics.runner import DiagnosticsCallback

        callback = DiagnosticsCallback([{"name": name, **params, "at_end": True}], self.path,
                                       self.config["seed"])
        slot = callback.slots[0]
        problems = slot.diagnostic.check(self.model, self.splits.meta)
        if problems:
            raise ConfigError([f"diagnostic '{name}' {p}" for p in problems])
        state = self._trainer.state
        state.pending.clear()
        callback.on_fit_start(state)
        callback.run_now(state)
        callback.close()
        folder = self.path / "diagnostics" / slot.key
        files = sorted(str(p) for p in folder.glob(f"step-{self.step}.*"))
        scalars = {k.split("/", 2)[-1]: v for k, v in state.pending.items()}
        return {"files": files, "scalars": scalars}


def load_run(
    path: str | os.PathLike, checkpoint: str | os.PathLike = "last",
    device: str | None = None, runs_dir: str | os.PathLike | None = None,
) -> SavedRun:
    """Load a run: RUN is a run folder, a run id or a unique id prefix (under `runs_dir`).

    `checkpoint`: "last" (the final weights of a completed run), "best", the name of any
    other file kept in `checkpoints/`, or a .pt path. `device`: default the run's own
    `trainer.device` ("auto": CUDA when available).
    """
    from runlab.config import load_config
    from runlab.runs import checkpoint as ckpt
    from runlab.runs import store
    from runlab.runs.folder import read_run_json
    from runlab.train.api import prepare

    run_dir = store.resolve_run(str(path), runs_dir or store.default_runs_dir())
    cfg = load_config(run_dir / "config.yaml")
    if device is not None:
        cfg["trainer"]["device"] = device
    file = checkpoint_path(run_dir, checkpoint)
    state = ckpt.load(file)
    p = prepare(cfg)
    p.model.load_state_dict(state["model"])
    p.model.eval()
    return SavedRun(Path(run_dir), read_run_json(run_dir), cfg, p.model, file,
                    int(state.get("epoch", 0)), int(state.get("step", 0)), p.splits, p.device,
                    p)
