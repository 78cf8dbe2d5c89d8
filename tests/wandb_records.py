"""Read an offline W&B run back from its own transaction log (`run-<id>.wandb`).

The .wandb file is a LevelDB-style log of protobuf `Record`s: a 7-byte file header,
then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type).
Shared by the writer's unit tests and the real-run tests.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK, HEADER = 32768, 7
FULL, LAST = 1, 4


def records(path: Path) -> Iterator[Any]:
    """Every `wandb_internal_pb2.Record` in the log, in order, once it is complete."""
    return iter(_settled(path))


def _settled(path: Path, wait_s: float = 15.0) -> list[Any]:
    """The log's records once W&B's service process has written the `exit` record:
    `run.finish()` may return a moment before it (seen with several runs in one process).
    A log that never gets one (a killed process) is read as it is after `wait_s`."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        found = list(_read(path))
        if any(r.WhichOneof("record_type") == "exit" for r in found) \
                or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _read(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as wandb_pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if left < HEADER or (length == 0 and kind == 0):
            pos += left  # block padding
            continue
        pending += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            yield wandb_pb.Record.FromString(pending)
            pending = b""


def history(path: Path) -> list[dict]:
    """The history rows of a run, media values as nested dicts (`{"_type": "image-file", ...}`)."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        row: dict = {}
        for item in record.history.item:
            *parents, leaf = [item.key] if item.key else item.nested_key
            node = row
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = json.loads(item.value_json)
        rows.append(row)
    return rows


def run_record(path: Path) -> Any:
    """The run's `RunRecord` (id, name, project, config)."""
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
