"""Checkpoint I/O: a write cut short never damages the previous checkpoint; RNG state round-trips."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from runlab.runs import checkpoint as ckpt

WRITER = textwrap.dedent("""
    import sys, time
    import torch
    from runlab.runs.checkpoint import save_atomic

    save_atomic({"good": torch.arange(10)}, sys.argv[1])
    print("saved", flush=True)
    save_atomic({"huge": torch.ones(2**27)}, sys.argv[1])  # 512 MB: killed while writing
    print("huge saved", flush=True)
""")


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout is not None and proc.stdout.readline() == "saved\n"
    tmp = path.with_name(f".last.pt.{proc.pid}.tmp")
    deadline = time.monotonic() + 60
    while not (tmp.exists() and tmp.stat().st_size > 0):
        assert proc.poll() is None and time.monotonic() < deadline, "the huge write never started"
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert tmp.exists(), "killed too late: the huge write had finished"  # the half-written file
    assert tmp.stat().st_size < 2**29
    assert torch.equal(ckpt.load(path)["good"], torch.arange(10))


def test_a_failing_write_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path: Path,
                                                                         monkeypatch) -> None:
    path = tmp_path / "last.pt"
    ckpt.save_atomic({"v": torch.tensor(1)}, path)

    def half_save(obj, f) -> None:
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_atomic({"v": torch.tensor(2)}, path)

    assert ckpt.load(path)["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_rng_state_round_trips_through_a_checkpoint_file(tmp_path: Path) -> None:
    ckpt.seed_everything(3)
    torch.rand(5), np.random.rand(5), random.random()  # move away from the seeded states
    ckpt.save_atomic({"rng": ckpt.rng_state()}, tmp_path / "rng.pt")
    expected = torch.rand(5), np.random.rand(5), random.random()

    ckpt.seed_everything(99)
    ckpt.set_rng_state(ckpt.load(tmp_path / "rng.pt")["rng"])  # weights_only load
    got = torch.rand(5), np.random.rand(5), random.random()

    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


def test_one_checkpoint_written_to_several_paths(tmp_path: Path) -> None:
    best, last = tmp_path / "a" / "best.pt", tmp_path / "a" / "last.pt"
    ckpt.save_atomic({"v": torch.tensor(1)}, last)
    ckpt.save_atomic({"v": torch.arange(3)}, best, last)
    assert torch.equal(ckpt.load(best)["v"], torch.arange(3))
    assert torch.equal(ckpt.load(last)["v"], torch.arange(3))
    assert sorted(p.name for p in best.parent.iterdir()) == ["best.pt", "last.pt"]


def test_background_saver_writes_the_state_at_submit_in_order(tmp_path: Path) -> None:
    saver = ckpt.BackgroundSaver()
    weights = torch.zeros(3)
    for value in (1.0, 2.0, 3.0):
        weights.fill_(value)
        saver.submit({"w": weights}, tmp_path / "last.pt", tmp_path / "best.pt")
    weights.fill_(99.0)  # after submit: not in any file
    saver.wait()
    for name in ("last.pt", "best.pt"):
        assert torch.equal(ckpt.load(tmp_path / name)["w"], torch.full((3,), 3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temp files left


def test_background_saver_reraises_a_failed_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    saver = ckpt.BackgroundSaver()
    saver.submit({"w": torch.zeros(1)}, tmp_path / "file" / "last.pt")  # a file is not a folder
    with pytest.raises(OSError):
        saver.wait()
    saver.wait()  # reported once


def test_python_rng_state_is_one_tensor_and_older_checkpoints_still_load(tmp_path: Path) -> None:
    random.seed(3)
    older = random.getstate()  # what checkpoints held before: a tuple of 625 ints
    ckpt.save_atomic({"rng": ckpt.rng_state()}, tmp_path / "last.pt")
    expected = random.random()
    state = ckpt.load(tmp_path / "last.pt")["rng"]
    assert torch.is_tensor(state["python"][1])
    for python in (state["python"], older):
        ckpt.set_rng_state({**state, "python": python})
        assert random.random() == expected
