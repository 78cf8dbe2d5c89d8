"""Shared helpers for runlab's speed benchmarks: pinned threads, interleaved repeats,
robust statistics, whole-process timing with peak RSS, and the result table.

Timings on a shared 2-core machine are noisy, so every benchmark interleaves its
contenders (A B B A A B ...), reports medians, and gives the interquartile range of the
per-repeat ratios as its noise figure.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
THREADS = 1  # every contender gets exactly one intra-op thread
THREAD_ENV = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}


def pin_threads() -> None:
    """Pin this process (and the children it starts) to THREADS torch/OpenMP threads."""
    os.environ.update(THREAD_ENV)
    import torch

    torch.set_num_threads(THREADS)


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a timed subprocess: pinned threads, no terminal niceties."""
    env = {**os.environ, **THREAD_ENV, "CI": "1", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def python_bin() -> str:
    return sys.executable


def bin_path(name: str) -> str:
    """An entry point installed next to this interpreter (`runlab`)."""
    return str(Path(sys.executable).with_name(name))


@dataclass
class Proc:
    """One finished subprocess: wall seconds, CPU seconds (user + system, its waited-for
    children included), peak RSS (MiB), exit code, output."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    returncode: int
    output: str


# A small launcher process starts each timed command. Linux charges a child's ru_maxrss
# with the memory its pre-exec copy of the parent had (the benchmark process holds torch:
# ~500 MiB); the launcher's own footprint is ~10 MiB, so its child's figure is the
# command's own. The launcher also times fork-to-reap itself, so its start is not counted,
# and stamps RUNLAB_PROFILE_STARTUP=launch with the time of that fork.
_LAUNCHER = """
import os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
if os.environ.get("RUNLAB_PROFILE_STARTUP") == "launch":
    os.environ["RUNLAB_PROFILE_STARTUP"] = repr(time.time())
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t
with open(out, "w") as f:
    f.write(f"{wall} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_process(cmd: Sequence[str], *, cwd: Path | None = None,
                env: dict[str, str] | None = None, timeout_s: float = 600) -> Proc:
    """Run `cmd` to completion (through the launcher above): wall time from fork to reap,
    CPU time and peak RSS from wait4's rusage of that one process (and its waited-for
    children, e.g. git)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log, stats = (RESULTS / f".proc-{os.getpid()}.{ext}" for ext in ("log", "stats"))
    stats.unlink(missing_ok=True)
    with open(log, "w+b") as out:
        p = subprocess.Popen([sys.executable, "-S", "-E", "-c", _LAUNCHER, str(stats), *cmd],
                             cwd=cwd, env=env or child_env(), stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    log.unlink(missing_ok=True)
    if not stats.exists():
        return Proc(float("nan"), float("nan"), float("nan"), p.returncode or -9, text)
    wall, cpu, maxrss_kib, code = stats.read_text().split()
    stats.unlink()
    return Proc(float(wall), float(cpu), int(maxrss_kib) / 1024, int(code), text)


def check(proc: Proc, what: str) -> Proc:
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited with {proc.returncode}:\n{proc.output[-3000:]}")
    return proc


def interleave(contenders: dict[str, Callable[[], float]], repeats: int,
               warmup: int = 1) -> dict[str, list[float]]:
    """Call each contender `warmup` times untimed, then `repeats` times in alternating
    order (ABBA...), so slow drifts of the machine's load hit all contenders alike."""
    names = list(contenders)
    for _ in range(warmup):
        for n in names:
            contenders[n]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names if r % 2 == 0 else reversed(names):
            samples[n].append(contenders[n]())
    return samples


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def paired(num: Sequence[float], den: Sequence[float]) -> tuple[float, float, float]:
    """Quartiles (q1, median, q3) of the paired ratios num[i] / den[i]. Each pair ran side
    by side under the same load, so their median is the ratio least moved by a neighbour's
    burst (the ratio of the two medians pairs samples taken at different moments)."""
    ratios = [a / b for a, b in zip(num, den)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class Row:
    """One line of the table: `value` of runlab against `reference`, and the target."""

    bench: str
    what: str
    runlab: float
    reference: float | None = None
    ref_name: str = ""
    unit: str = "s"
    target: str = ""
    passed: bool | None = None
    noise: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if not self.reference else self.runlab / self.reference


def ratio_row(bench: str, what: str, runlab: list[float], ref: list[float], ref_name: str, *,
              unit: str = "s", max_ratio: float | None = None, min_speedup: float | None = None,
              scale: float = 1.0) -> Row:
    """A Row from paired samples: medians, ratio of medians, and the paired ratios' median
    and IQR (a `max_ratio` target is judged on that median, see `paired`)."""
    a, b = median(runlab) * scale, median(ref) * scale
    lo, mid, hi = paired(runlab, ref)
    row = Row(bench, what, a, b, ref_name, unit, noise=f"{mid:.3f} ({lo:.2f}-{hi:.2f})")
    row.extra["paired_ratio_median"] = mid
    if max_ratio is not None:
        row.target, row.passed = f"<= {max_ratio:g}", mid <= max_ratio
    elif min_speedup is not None:
        row.target, row.passed = f">= {min_speedup:g}x faster", b / a >= min_speedup
    return row


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return ""
    if unit == "ms":
        return f"{v:.3f} ms"
    if unit == "MiB":
        return f"{v:.0f} MiB"
    if unit == "s":
        return f"{v:.2f} s"
    return f"{v:.3g} {unit}".strip()


def table(rows: list[Row]) -> str:
    """Markdown table, ready for the README."""
    head = "| benchmark | runlab | reference | ratio of medians | paired ratio: median (IQR) | target | |"
    lines = [head, "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ref = f"{fmt(r.reference, r.unit)} ({r.ref_name})" if r.reference is not None else ""
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else ""
        ok = "" if r.passed is None else ("PASS" if r.passed else "FAIL")
        lines.append(f"| {r.what} | {fmt(r.runlab, r.unit)} | {ref} | {ratio} | {r.noise} | "
                     f"{r.target} | {ok} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "threads": THREADS, "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(),
        "loadavg_at_start": None if load is None else [round(x, 2) for x in load],
    }


def save(name: str, rows: list[Row], **extra: Any) -> Path:
    """Write rows (plus anything extra) to benchmarks/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), "rows": [{**asdict(r), "ratio": r.ratio} for r in rows], **extra}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
