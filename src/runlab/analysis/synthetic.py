"""Synthetic run folders in the exact on-disk format of docs/INTERNALS.md.

Used by the analysis tests and benchmark, and handy for trying `runlab analyze`/`report`
without training anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

Series = Sequence[float] | tuple[Sequence[int], Sequence[float]]


def make_run(
    root: str | os.PathLike,
    name: str,
    config: Mapping[str, Any],
    metrics: Mapping[str, Series],
    status: str = "completed",
    steps_per_epoch: int = 10,
    run_id: str | None = None,
    sweep: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<root>/<run-id>/` with run.json, config.yaml and metrics.csv; return the folder.

    `metrics` maps a metric name to its values (logged at steps 1, 2, ...) or to a
    `(steps, values)` pair. Rows are written interleaved by step, as a trainer would.

    Example:
        >>> make_run(tmp, "mlp", {"seed": 0, "optimizer": {"lr": 1e-3}},
        ...          {"val/loss": [0.9, 0.5, 0.4]})
    """
    config = {"name": name, **config}
    seed = config.setdefault("seed", 0)
    if run_id is None:
        digest = hashlib.sha1(json.dumps([name, config], default=str).encode()).hexdigest()
        run_id = f"{name}-20261128-101500-{digest[:4]}"
    folder = Path(root) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
    (folder / "metrics.csv").write_text(metrics_csv(metrics, steps_per_epoch))
    last_step = max((int(_steps_values(s)[0][-1]) for s in metrics.values() if len(s)), default=0)
    info = {
        "id": run_id, "name": name, "status": status, "seed": seed,
        "created": "2026-11-28T10:15:00.000+00:00", "started": "2026-11-28T10:15:00.100+00:00",
        "ended": None if status == "running" else "2026-11-28T10:16:00.000+00:00",
        "duration_s": 60.0, "host": "synthetic-host", "pid": 1, "heartbeat": time.time(),
        "command": ["runlab", "train", "config.yaml"],
        "git": {"commit": "0" * 40, "branch": "main", "dirty": False, "untracked": []},
        "versions": {"python": "3.11.7", "torch": "2.13.0", "runlab": "0.1.0"},
        "devices": ["cpu"], "sweep": dict(sweep) if sweep else None, "ensemble": None,
        "epoch": last_step // steps_per_epoch, "step": last_step, "summary": {},
        "error": {"type": "RuntimeError", "message": "synthetic", "traceback": ""}
        if status == "failed" else None,
    }
    (folder / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return folder


def metrics_csv(metrics: Mapping[str, Series], steps_per_epoch: int = 10) -> str:
    """The metrics.csv text (`step,epoch,time,metric,value`) for the given series."""
    parts = []
    for metric, series in metrics.items():
        steps, values = _steps_values(series)
        parts.append((steps, np.full(len(steps), metric, dtype=object), values))
    if not parts:
        return "step,epoch,time,metric,value\n"
    steps = np.concatenate([p[0] for p in parts])
    names = np.concatenate([p[1] for p in parts])
    values = np.concatenate([p[2] for p in parts])
    order = np.argsort(steps, kind="stable")
    steps, names, values = steps[order], names[order], values[order]
    buf = io.StringIO()
    buf.write("step,epoch,time,metric,value\n")
    epochs = steps // steps_per_epoch
    times = steps * 0.01
    buf.writelines(
        f"{s},{e},{t:.3f},{m},{v!r}\n"
        for s, e, t, m, v in zip(steps.tolist(), epochs.tolist(), times.tolist(),
                                 names.tolist(), values.tolist(), strict=True)
    )
    return buf.getvalue()


def _steps_values(series: Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(series, tuple) and len(series) == 2 and np.ndim(series[0]) == 1:
        return np.asarray(series[0], dtype=np.int64), np.asarray(series[1], dtype=np.float64)
    values = np.asarray(series, dtype=np.float64)
    return np.arange(1, len(values) + 1, dtype=np.int64), values


def make_diagnostic(folder: str | os.PathLike, name: str, step: int) -> Path:
    """Write a small PNG at `diagnostics/<name>/step-<step>.png` (a colourful test pattern)."""
    import matplotlib.image as mpimg

    out = Path(folder) / "diagnostics" / name / f"step-{step}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:32, 0:32] / 31.0
    mpimg.imsave(out, np.stack([x, y, np.full_like(x, (step % 7) / 7)], axis=-1))
    return out
