"""The always-on writer: long-format, append-only, flushed `metrics.csv`."""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

from runlab.logging.base import Writer

HEADER = "step,epoch,time,metric,value\n"


class CSVWriter(Writer):
    """Appends `step,epoch,time,metric,value` rows; any new metric name may appear at any time.

    Names are stored verbatim, quoted as the `csv` module does (RFC 4180: a name holding
    `,`, `"` or a newline is written in double quotes, `"` doubled), so every CSV reader
    (csv, pandas, pyarrow with `newlines_in_values`) reads them back unchanged.

    `time` is seconds since the run first started (`t0`, kept across resumes). Rows are
    buffered and written at `flush()`, which the Trainer calls at every logging point."""

    def __init__(self, path: Path, t0: float | None = None):
        self.path = Path(path)
        self.t0 = time.time() if t0 is None else t0
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", encoding="utf-8", newline="")
        if new:
            self._f.write(HEADER)
        self._buffer = io.StringIO()
        self._rows = csv.writer(self._buffer, lineterminator="\n")

    def write_scalars(self, step: int, scalars: Mapping[str, float], epoch: int = 0) -> None:
        t = f"{time.time() - self.t0:.3f}"
        for name, value in scalars.items():
            v = float(value)
            self._rows.writerow((step, epoch, t, name, repr(v) if math.isfinite(v) else str(v)))

    def flush(self) -> None:
        text = self._buffer.getvalue()
        if text:
            self._f.write(text)
            self._buffer.seek(0)
            self._buffer.truncate()
        self._f.flush()

    def tell(self) -> int:
        """Byte offset of everything written so far, on disk: checkpoints store it, so the
        rows it counts are fsynced here (at checkpoints, not per row)."""
        self.flush()
        os.fsync(self._f.fileno())
        return self._f.tell()

    def close(self) -> None:
        if not self._f.closed:
            self.flush()
            self._f.close()


def truncate_csv(path: Path, offset: int) -> None:
    """Cut metrics.csv back to a checkpoint's offset: no row duplicated or missing on resume."""
    if path.exists() and path.stat().st_size > offset:
        with open(path, "r+b") as f:
            f.truncate(offset)
