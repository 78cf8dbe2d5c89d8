"""The writer interface (after CLU's metric_writers) and a fan-out MultiWriter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


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

    def close(self):
        for w in self.writers:
            w.close()
