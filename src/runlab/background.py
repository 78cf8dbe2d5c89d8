"""Background processes for drawing, so figures cost the training loop little.

Rendering a matplotlib figure (0.1-0.3 s) and importing matplotlib (~0.5 s) dominate
what diagnostics and end-of-run plots cost. A run starts this worker early
(`prewarm`), the worker imports matplotlib on a spare core while training goes on,
and figures are then drawn there: diagnostics send `Drawing`s (a function named by
its module and plain arrays) or pickled figures, the end of a run sends
`plot_metrics`. This module imports neither torch nor matplotlib itself. One pool per
process, shared by every run, of up to two workers at a lower CPU priority (nice 10):
drawing takes the cycles training leaves, and the figures of a run's last moments
are drawn two at a time while the run waits for them.
"""

from __future__ import annotations

import importlib
import os
import pickle
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

_pool: Any = None
_pool_pid = 0  # the process that made `_pool`
NICE = 10  # the workers' priority below the run's: training first, drawing in what is left
EXIT_WAIT_S = 5.0  # at exit, how long drawings still running may take


@dataclass
class Drawing:
    """A figure to draw later: `function(**kwargs)` returns a matplotlib Figure.

    Give `function` as "module:name" of a module that imports without torch (like
    `runlab.diagnostics.render`) and kwargs of numpy arrays, numbers and strings: the
    figure is then drawn in the background drawing process, and the run's process
    neither waits for it nor imports matplotlib. A function object is drawn in the
    run's process (e.g. one defined in a plugin file, which the drawing process
    cannot import).

    Example:
        >>> Drawing("runlab.diagnostics.render:jacobian_spectra", {"spectra": sv, "step": 10})
    """

    function: str | Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def portable(self) -> bool:
        """Whether another process can draw it (the function is named, not an object)."""
        return isinstance(self.function, str)

    def draw(self) -> Any:
        fn = self.function
        if isinstance(fn, str):
            module, _, name = fn.partition(":")
            fn = getattr(importlib.import_module(module), name)
        return fn(**self.kwargs)


def _executor() -> Any:
    global _pool
    if _pool is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a fresh interpreter (no forked torch threads) that imports only what it draws.
        # A second worker starts only when figures queue up (the end of a diagnostics round).
        workers = min(2, os.cpu_count() or 1)
        _pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_init_worker, initargs=(os.getpid(),))
        import threading

        global _pool_pid
        _pool_pid = os.getpid()
        # Runs before concurrent.futures' own exit hook (they run in reverse order), which
        # joins the pool's manager thread: see `_shutdown`.
        threading._register_atexit(_shutdown)
    return _pool


def _shutdown() -> None:
    """At interpreter exit: drop queued drawings, give running ones `EXIT_WAIT_S`, then end
    the workers. Whoever needed a figure has waited for it already (the end of a run, a
    diagnostic's close); what is left belongs to a run that was stopped (a second Ctrl-C
    20 ms after the first), and exit must never wait on it forever."""
    pool = _pool
    if pool is None or _pool_pid != os.getpid():  # a forked child (a DataLoader worker)
        return  # inherits this hook and a copy of the pool: neither is its own
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        # The process is exiting: a Ctrl-C now (the second one, 20 ms after the first) must
        # not break off this hook half-way, or the exit hooks after it wait on a worker
        # that nobody told to stop, forever.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + EXIT_WAIT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)


def _init_worker(parent: int) -> None:
    """The worker lives and dies with its run (process `parent`), below its priority:
    it ignores the stop signals the run handles (the run shuts it down), holds none of
    the run's output pipes, and exits when the run's process is gone (SIGKILL), so
    nothing is left waiting for it. `parent` comes from the run, not from
    `os.getppid()` here: a run killed while this worker was still starting has
    already handed it to init."""
    import threading
    import time

    from runlab.signals import ignore_stop_signals

    if hasattr(os, "nice"):
        os.nice(NICE)
    ignore_stop_signals()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="runlab-parent-watch", daemon=True).start()


def _warm() -> None:
    """Import matplotlib and draw once (fonts load on the first draw)."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    fig.savefig(io.BytesIO(), format="png")


def prewarm() -> None:
    """Start the worker and import matplotlib there, without waiting."""
    _executor().submit(_warm)


def submit(fn: Callable[..., Any], *args: Any) -> Future:
    """Run a module-level function in the worker."""
    return _executor().submit(fn, *args)


def plot_metrics(run_dir: Any) -> list:
    """Worker side of end-of-run plots (imported there, so this process never loads them)."""
    from runlab.diagnostics.plots import plot_metrics as plot

    return plot(run_dir)


def render_drawing(drawing: Drawing, path: str, dpi: int = 100,
                   paths: tuple[str, ...] = ()) -> None:
    """Worker side of a diagnostic's `Drawing`: draw it and write its PNG. `paths`: the
    run's import path (`sys.path`, plugin folders included), so the worker imports the
    drawing's module exactly where the run would (`Drawing("mypkg.figures:draw")` with
    `mypkg/` in a plugin folder)."""
    import sys

    sys.path.extend(p for p in paths if p not in sys.path)
    drawing.draw().savefig(path, dpi=dpi)


def submit_drawing(drawing: Drawing, path: Any) -> Future:
    """Draw `drawing` into the PNG at `path` in the worker, importing as this process does."""
    import sys

    return submit(render_drawing, drawing, str(path), 100, tuple(sys.path))


def render_figure(blob: bytes, path: str, dpi: int = 100) -> None:
    """Worker side of `save_figure`: unpickle a figure and write its PNG."""
    pickle.loads(blob).savefig(path, dpi=dpi)


def save_figure(figure: Any, path: Any) -> Future | None:
    """Write `figure` as a PNG in the worker; a figure that cannot be pickled is drawn
    here instead (returns None then)."""
    try:
        blob = pickle.dumps(figure)
    except Exception:  # noqa: BLE001 - unpicklable artists: draw in this process
        figure.savefig(path, dpi=100)
        return None
    return submit(render_figure, blob, str(path))
