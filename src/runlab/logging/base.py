"""The writer interface (after CLU's metric_writers) and a fan-out MultiWriter."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("completed", "failed", "interrupted")


@dataclass
class WriterContext:
    """What a writer factory (`runlab.registry.WRITERS`) gets about the run it logs.

    Attributes:
        run_dir: the run folder; config: the resolved config; run_id/run_name: runlab's.
        info: run.json as it is now (a writer's own ids from an earlier start live here);
        resume: whether the run continues from a checkpoint;
        record: stores keys in run.json, e.g. `context.record(wandb={"id": ...})`.
    """

    run_dir: Path
    config: Mapping[str, Any]
    run_id: str
    run_name: str
    info: Mapping[str, Any] = field(default_factory=dict)
    resume: bool = False
    record: Callable[..., None] = lambda **_: None

    @property
    def group(self) -> str | None:
        """The runs this one belongs with: `<sweep>-<setting>` in a sweep, else its ensemble."""
        sweep = self.info.get("sweep") or {}
        if sweep.get("name") and sweep.get("setting"):
            return f"{sweep['name']}-{sweep['setting']}"
        return self.info.get("ensemble")

    @property
    def job_type(self) -> str:
        """"sweep", "ensemble" or "train"."""
        if self.info.get("sweep"):
            return "sweep"
        return "ensemble" if self.info.get("ensemble") else "train"


class Writer:
    """Receives everything a run logs. Every method is a no-op by default.

    `step` is the global optimisation step. Scalars arrive batched (one call per
    logging point), so a writer never costs more than one call per log interval.
    """

    @property
    def wants_figures(self) -> bool:
        """Whether figures must be drawn for this writer (it overrides `write_figure`);
        otherwise diagnostics draw theirs in the background process only."""
        return type(self).write_figure is not Writer.write_figure

    def write_scalars(self, step: int, scalars: Mapping[str, float], epoch: int = 0) -> None:
        """Scalars by name (`train/loss`, `val/acc`, `hparam/beta`, `lr`)."""

    def write_figure(self, step: int, name: str, figure: Any) -> None:
        """A matplotlib Figure (the writer must not close it)."""

    def write_image(self, step: int, name: str, image: Any) -> None:
        """An (H, W, 3) uint8 numpy array."""

    def write_histogram(self, step: int, name: str, values: Any) -> None:
        """A 1-D array-like of values."""

    def write_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float] | None = None) -> None:
        """The flattened config, and optionally the final metrics."""

    def write_text(self, step: int, name: str, text: str) -> None:
        """A piece of text."""

    def flush(self) -> None:
        """Make everything written so far durable."""

    def finish(self, status: str, exit_code: int = 0) -> None:
        """How the run ended (one of STATUSES, and the process's exit code for it);
        called once, just before `close`."""

    def close(self) -> None:
        """Flush and release files; called once at the end of the run."""


class MultiWriter(Writer):
    """Fans every call out to several writers."""

    def __init__(self, writers: Iterable[Writer]):
        self.writers = list(writers)

    @property
    def wants_figures(self) -> bool:
        return any(w.wants_figures for w in self.writers)

    def write_scalars(self, step, scalars, epoch=0):
        for w in self.writers:
            w.write_scalars(step, scalars, epoch)

    def write_figure(self, step, name, figure):
        for w in self.writers:
            w.write_figure(step, name, figure)

    def write_image(self, step, name, image):
        for w in self.writers:
            w.write_image(step, name, image)

    def write_histogram(self, step, name, values):
        for w in self.writers:
            w.write_histogram(step, name, values)

    def write_hparams(self, hparams, metrics=None):
        for w in self.writers:
            w.write_hparams(hparams, metrics)

    def write_text(self, step, name, text):
        for w in self.writers:
            w.write_text(step, name, text)

    def flush(self):
        for w in self.writers:
            w.flush()

    def finish(self, status, exit_code=0):
        for w in self.writers:
            w.finish(status, exit_code)

    def close(self):
        for w in self.writers:
            w.close()


def figure_pixels(figure: Any) -> Any:
    """A matplotlib Figure as an (H, W, 3) uint8 array, drawn with Agg (no pyplot)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def end_run(writer: Writer, config: Mapping[str, Any], summary: Mapping[str, Any], status: str,
            signal: str | None = None) -> None:
    """The writers' side of a run's end, however it ended: the flattened config with the
    final value of every metric (`write_hparams`), how it ended (`finish`), `close`."""
    import math
    import signal as signals

    from runlab.config import flatten

    finals = {name: float(entry["final"]) for name, entry in summary.items()
              if isinstance(entry, Mapping) and isinstance(entry.get("final"), (int, float))
              and math.isfinite(entry["final"])}
    code = 0 if status == "completed" else 128 + signals.Signals[signal].value if signal else 1
    try:
        writer.write_hparams(flatten(dict(config)), finals)
        writer.finish(status, code)
    finally:
        writer.close()
