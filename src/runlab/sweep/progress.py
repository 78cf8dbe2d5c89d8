"""Progress over a sweep's runs: a rich bar with ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Counts finished runs out of `total`; `note()` prints a line above the bar.

    Example:
        >>> with Progress(total=6) as p:
        ...     p.advance("vae-s001-s0 completed in 3.1 s")
    """

    def __init__(self, total: int, live: bool | None = None):
        self.total, self.done = total, 0
        self.live = sys.stdout.isatty() if live is None else live
        self._bar: Any = None
        self._task: Any = None
        self._start = time.monotonic()
        self._finished_here = 0

    def __enter__(self) -> Progress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("runs"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
            self._bar.start()
            self._task = self._bar.add_task("runs", total=self.total, completed=self.done)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def skip(self) -> None:
        """A run found already done: counted, not timed."""
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)

    def advance(self, line: str, eta: bool = True) -> None:
        """One run finished; `eta=False` for all but the last of runs that ended together
        (a setting's seeds trained in one process), whose estimate would count them as left."""
        self.done += 1
        self._finished_here += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            self._bar.console.print(line, highlight=False, markup=False)
        else:
            print(f"[{self.done}/{self.total}] {line}{self._eta() if eta else ''}", flush=True)

    def note(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
        else:
            print(line, flush=True)

    def _eta(self) -> str:
        left = self.total - self.done
        if left <= 0:
            return ""
        per_run = (time.monotonic() - self._start) / self._finished_here
        return f" (eta {per_run * left:.0f} s)"
