"""The scheduling loop: keep the launcher's slots busy with (setting, seed) runs.

The run folders are the truth: a run whose run.json says `completed` is never started
again; any other run is (re)started with the same `--run-dir`, and the trainer resumes
it from its checkpoint. A failed run is retried up to `max_retries` times in one
invocation; a failing setting never stops the others.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runlab.errors import ConfigError
from runlab.sweep.jobs import Job, claim, error_line, run_state, together
from runlab.sweep.progress import Progress
from runlab.sweep.search import Search
from runlab.sweep.settings import Setting, build_config, run_id, validate, write_config
from runlab.sweep.spec import SweepSpec
from runlab.sweep.summary import objective, run_value

_TICK_S = 0.02
_RECHECK_S = 1.0
_STOP_GRACE_S = 120.0
EXIT_BAD_CONFIG = 2


@dataclass
class Failure:
    sid: str
    seed: int
    run_id: str
    run_dir: Path
    error: str


@dataclass
class Tally:
    """What the loop saw: metric values per setting and seed, failures, interruption."""

    values: dict[str, dict[int, float | None]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False


class Scheduler:
    """Runs every (setting, seed) of a sweep once, `launcher.capacity` at a time.

    Example:
        >>> tally = Scheduler(spec, folder, search, LocalLauncher(spec.name, 2)).run(settings)
    """

    def __init__(self, spec: SweepSpec, folder: Path, search: Search, launcher: Any,
                 vectorize: str = "false"):
        self.spec, self.folder, self.search, self.launcher = spec, folder, search, launcher
        self.vectorize = vectorize
        self.tally = Tally()
        self._pending: deque[tuple[Setting, list[int]]] = deque()
        self._blocked: list[tuple[Setting, int]] = []
        self._left: dict[str, set[int]] = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self._running: dict[Any, Job] = {}
        self._started: dict[Any, float] = {}
        self._stop = False
        self._recorded: set[str] = set()

    def run(self, settings: list[Setting], progress: Progress) -> Tally:
        """Run until every setting is done (or the sweep is interrupted)."""
        self.progress = progress
        self._recorded = self.search.completed()
        main = threading.current_thread() is threading.main_thread()  # signals need it
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)
               if main}
        try:
            for s in settings:
                self._add(s)
            if progress.done:
                progress.note(f"{progress.done} of {progress.total} runs already done")
            self._loop()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
        return self.tally

    # ------------------------------------------------------------ setting bookkeeping

    def _add(self, setting: Setting) -> None:
        """Queue the setting's unfinished seeds; count finished ones as done."""
        values = self.tally.values.setdefault(setting.sid, {})
        todo = []
        for seed in self.spec.seeds:
            state = run_state(self._run_dir(setting, seed))
            if state["status"] == "completed":
                values[seed] = run_value(state, self.spec.metric, self.spec.stat)
                self.progress.skip()
            else:
                todo.append(seed)
        self._left[setting.sid] = set(todo)
        if not todo:
            self._finish_setting(setting)
            return
        one = len(todo) > 1 and self.vectorize != "false" and together(setting.config,
                                                                      self.vectorize)
        groups = [todo] if one else [[s] for s in todo]
        self._pending.extend((setting, g) for g in groups)

    def _finish_setting(self, setting: Setting) -> None:
        if setting.sid in self._recorded:
            return
        values = self.tally.values.get(setting.sid, {})
        self.search.record(setting, objective([values.get(s) for s in self.spec.seeds]))
        self._recorded.add(setting.sid)

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        last_recheck = time.monotonic()
        while True:
            if not self._stop:
                self._fill()
            if not self._running and (self._stop or not (self._pending or self._blocked)):
                return
            for handle, code in [(h, h.poll()) for h in list(self._running)]:
                if code is not None:
                    self._ended(handle, code)
            if self._blocked and time.monotonic() - last_recheck > _RECHECK_S:
                last_recheck = time.monotonic()
                blocked, self._blocked = self._blocked, []
                for setting, seed in blocked:
                    self._pending.append((setting, [seed]))
            time.sleep(_TICK_S)

    def _fill(self) -> None:
        batch: list[Job] = []
        while len(self._running) + len(batch) < self.launcher.capacity:
            if self._pending:
                job = self._claim(*self._pending.popleft())
                if job is not None:
                    batch.append(job)
            elif not self._propose():
                break
        if batch:
            for job, handle in zip(batch, self.launcher.launch(batch), strict=True):
                self._running[handle] = job
                self._started[handle] = time.monotonic()

    def _propose(self) -> bool:
        """Queue a new setting from the sampler (random/tpe); False when there is none."""
        setting = self.search.propose()
        if setting is None:
            return False
        try:
            setting.config = build_config(self.spec.raw_base, setting.params, self.spec.name)
            validate([setting])
        except ConfigError as e:
            self._fail_all(setting, e.problems[0])
            return True
        self._add(setting)
        return True

    def _claim(self, setting: Setting, seeds: list[int]) -> Job | None:
        """A job for the seeds this process could claim; the rest wait as blocked."""
        job = Job(setting, [], [], Path(), Path())
        for seed in seeds:
            run_dir = self._run_dir(setting, seed)
            fd = claim(self.folder / "claims", run_dir.name)
            state = run_state(run_dir) if fd is not None else {"status": "claimed"}
            if state["status"] not in ("completed", "running", "claimed"):
                job.seeds.append(seed)
                job.run_dirs.append(run_dir)
                job.claims.append(fd)
                continue
            if fd is not None:
                os.close(fd)
            if state["status"] == "completed":  # another sweep process finished it
                self._run_done(setting, seed, state, None)
            else:  # another process trains it: look again later
                self._blocked.append((setting, seed))
        if not job.seeds:
            return None
        # Written when first needed: a 1,000-setting grid starts without 1,000 YAML dumps.
        job.config_path = write_config(setting, self.folder / "configs")
        job.log_path = self.folder / "logs" / f"{job.run_dirs[0].name}.log"
        return job

    def _ended(self, handle: Any, code: int) -> None:
        job = self._running.pop(handle)
        seconds = time.monotonic() - self._started.pop(handle)
        self.launcher.release(handle)
        job.release()
        took: float | None = seconds
        for i, (seed, run_dir) in enumerate(zip(job.seeds, job.run_dirs, strict=True)):
            state = run_state(run_dir)
            if state["status"] == "completed":  # one wall time per process, not per seed
                self._run_done(job.setting, seed, state, took, len(job.seeds),
                               eta=i == len(job.seeds) - 1)
                took = None
            elif self._stop:
                self.tally.interrupted = True
            else:
                self._run_failed(job, seed, state, code)

    def _run_done(self, setting: Setting, seed: int, state: dict, seconds: float | None,
                  together: int = 1, eta: bool = True) -> None:
        value = run_value(state, self.spec.metric, self.spec.stat)
        self.tally.values.setdefault(setting.sid, {})[seed] = value
        rid = run_id(self.spec.name, setting.sid, seed)
        shown = "n/a" if value is None else f"{value:.4g}"
        took = "" if seconds is None else f" in {seconds:.1f} s"
        if seconds is not None and together > 1:
            took += f" ({together} seeds trained together)"
        self.progress.advance(f"{rid} completed{took} ({self.spec.metric} {self.spec.stat} "
                              f"{shown})", eta=eta)
        self._seed_over(setting, seed)

    def _run_failed(self, job: Job, seed: int, state: dict, code: int) -> None:
        key = (job.setting.sid, seed)
        self._attempts[key] = self._attempts.get(key, 0) + 1
        error = error_line(state, job.log_path)
        rid = run_id(self.spec.name, job.setting.sid, seed)
        if code != EXIT_BAD_CONFIG and self._attempts[key] <= self.spec.max_retries:
            self.progress.note(f"{rid} failed ({error}); retry {self._attempts[key]} of "
                               f"{self.spec.max_retries}")
            self._pending.append((job.setting, [seed]))
            return
        run_dir = self._run_dir(job.setting, seed)
        self.tally.failures.append(Failure(job.setting.sid, seed, rid, run_dir, error))
        self.progress.advance(f"{rid} FAILED: {error}")
        self._seed_over(job.setting, seed)

    def _fail_all(self, setting: Setting, error: str) -> None:
        """A setting that cannot run at all (its proposed config is invalid)."""
        self._left[setting.sid] = set()
        for seed in self.spec.seeds:
            rid = run_id(self.spec.name, setting.sid, seed)
            self.tally.failures.append(Failure(setting.sid, seed, rid, self._run_dir(setting, seed),
                                                  error))
            self.progress.advance(f"{rid} FAILED: {error}")
        self._finish_setting(setting)

    def _seed_over(self, setting: Setting, seed: int) -> None:
        left = self._left.get(setting.sid, set())
        left.discard(seed)
        if not left:
            self._finish_setting(setting)

    def _run_dir(self, setting: Setting, seed: int) -> Path:
        return self.folder / run_id(self.spec.name, setting.sid, seed)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """First Ctrl-C/SIGTERM: stop launching, let runs checkpoint; second: kill them."""
        already = self._stop
        self._stop = True
        self.tally.interrupted = True
        for handle in self._running:
            (handle.kill if already else handle.terminate)()
