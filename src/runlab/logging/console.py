"""What a person watching the run sees: a live progress bar on a terminal, one line per epoch.

On a terminal (and not under CI) a rich progress bar follows the epoch's batches
with the loss, throughput and ETA; it disappears at the end of the epoch. In both
modes the end of every epoch prints one plain line to `sys.stdout` (which the
trainer tees into stdout.log):

    epoch 3/20  train/loss 0.4123  val/loss 0.4012  val/acc 0.8710  lr 1.0e-03  12.3s
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from runlab.logging.base import Writer

REFRESH_S = 0.1  # the bar redraws at most ten times a second, however fast the steps


def is_interactive(stream: TextIO) -> bool:
    """True when `stream` is a terminal a person watches (not CI, not a dumb terminal)."""
    isatty = getattr(stream, "isatty", None)
    return bool(
        isatty and isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"
    )


def format_value(name: str, value: float) -> str:
    """`lr 1.0e-03`, `train/loss 0.4123`, `count 12`: short and aligned enough to scan."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if name == "lr" or name.startswith("lr/") or name.endswith("/lr"):
        return f"{value:.1e}"
    if value == 0 or not math.isfinite(value) or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.3e}"


def epoch_line(epoch: int, max_epochs: int, metrics: Mapping[str, Any], seconds: float) -> str:
    """The plain line for a finished epoch; `epoch` is 0-based and shown 1-based."""
    parts = [f"epoch {epoch + 1}/{max_epochs}"]
    # one line whatever the names hold (a newline in a name is shown as \n)
    parts += [f"{_one_line(name)} {format_value(name, value)}" for name, value in metrics.items()]
    parts.append(f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s")
    return "  ".join(parts)


def _one_line(name: str) -> str:
    return name.replace("\r", "\\r").replace("\n", "\\n")


class ConsoleWriter(Writer):
    """Human-facing progress output; the trainer calls it around every epoch.

    `advance` is called once per optimisation step and costs a few additions (plus
    a clock read on a terminal), so it never slows training down.

    Example:
        >>> console = ConsoleWriter()
        >>> console.start_epoch(0, max_epochs=20, total_batches=len(loader))
        >>> for x, y in loader:
        ...     console.advance(1, len(x))
        >>> console.end_epoch({"train/loss": 0.41, "val/loss": 0.40})
        epoch 1/20  train/loss 0.4100  val/loss 0.4000  3.2s

    Args:
        stream: where the live bar goes; pass the real terminal (not the tee into
            stdout.log) so the bar's redraws stay out of the log. Default: sys.stdout.
        live: force the bar on or off; default: on when `stream` is interactive.
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream or sys.stdout
        self.live = is_interactive(self.stream) if live is None else live
        self._progress: Any = None  # rich.progress.Progress while an epoch runs live
        self._task: Any = None
        self._epoch = self._max_epochs = 0
        self._batches = self._samples = 0
        self._t0 = self._next_refresh = 0.0
        self._loss: float | None = None

    def start_epoch(
        self, epoch: int, max_epochs: int, total_batches: int | None, completed_batches: int = 0
    ) -> None:
        """Begin an epoch (0-based); `completed_batches` > 0 when resuming mid-epoch."""
        self._epoch, self._max_epochs = epoch, max_epochs
        self._batches, self._samples = completed_batches, 0
        self._t0 = time.monotonic()
        self._next_refresh = self._t0
        if self.live:
            self._start_bar(total_batches)

    def advance(self, n_batches: int = 1, n_samples: int = 0) -> None:
        """Count finished batches and samples; redraws the bar at most every REFRESH_S."""
        self._batches += n_batches
        self._samples += n_samples
        if self._progress is not None:
            now = time.monotonic()
            if now >= self._next_refresh:
                self._next_refresh = now + REFRESH_S
                self._redraw(now)

    def end_epoch(self, metrics: Mapping[str, Any]) -> None:
        """Remove the bar and print the epoch's line."""
        seconds = time.monotonic() - self._t0
        self._stop_bar()
        print(epoch_line(self._epoch, self._max_epochs, metrics, seconds), flush=True)

    def message(self, text: str) -> None:
        """Print a line (a checkpoint saved, early stopping) without tearing the bar."""
        if self._progress is None:
            print(text, flush=True)
            return
        self._progress.stop()  # transient: clears the bar, so the line lands cleanly
        print(text, flush=True)
        self._progress.start()
        self._redraw(time.monotonic())

    def write_scalars(self, step: int, scalars: Mapping[str, float], epoch: int = 0) -> None:
        self._loss = scalars.get("train/loss", self._loss)

    def close(self) -> None:
        self._stop_bar()

    def _start_bar(self, total_batches: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._stop_bar()
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} samples/s"),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(file=self.stream, force_terminal=True),
            auto_refresh=False,  # no background thread; advance() decides when to redraw
            transient=True,
            redirect_stdout=False,  # prints must keep reaching the stdout.log tee
            redirect_stderr=False,
        )
        self._task = self._progress.add_task(
            "train",
            total=total_batches,
            completed=self._batches,
            epoch=f"{self._epoch + 1}/{self._max_epochs}",
            loss="-",
            rate="-",
        )
        self._progress.start()
        self._progress.refresh()

    def _redraw(self, now: float) -> None:
        elapsed = now - self._t0
        self._progress.update(
            self._task,
            completed=self._batches,
            loss="-" if self._loss is None else format_value("train/loss", self._loss),
            rate=f"{self._samples / elapsed:,.0f}" if elapsed > 0 else "-",
        )
        self._progress.refresh()

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = self._task = None
