"""Stop signals, in one place: which signals stop a run, and the three ways a process
treats them. Every layer imports this module downward (it imports nothing of runlab).

- the training process turns them into a flag the loop checks after each step
  (`StopFlag`): the run finishes its step, checkpoints and ends `interrupted`;
- helper processes (DataLoader workers, drawing workers) ignore them
  (`ignore_stop_signals`): the run that owns them shuts them down;
- a process that must outlive a stop to record a failure remembers them
  (`remember_stop_signals`, distributed workers).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2")


def stop_signals() -> list[signal.Signals]:
    """The stop signals this platform has."""
    return [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]


def _install(handler: Any) -> dict[signal.Signals, Any]:
    """Set `handler` for every stop signal; returns the handlers it replaced."""
    return {sig: signal.signal(sig, handler) for sig in stop_signals()}


def ignore_stop_signals() -> None:
    """For helper processes of a run: stop signals are the run's to handle."""
    _install(signal.SIG_IGN)


def remember_stop_signals(remember: Callable[[int], None]) -> None:
    """From now on a stop signal calls `remember(signum)` and is otherwise ignored."""
    _install(lambda signum, frame: remember(signum))


class StopFlag:
    """While entered, a stop signal sets `target.stop_signal` (the Trainer checks it after
    each step); a second Ctrl-C raises KeyboardInterrupt at once. Restores the previous
    handlers on exit.

    Example:
        >>> with StopFlag(trainer):
        ...     trainer.fit()
    """

    def __init__(self, target: Any):
        self.target, self.saved = target, {}

    def __enter__(self) -> StopFlag:
        self.saved = _install(self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.target.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.target.stop_signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
