"""A map-style dataset's DataLoader workers persist across epochs: the same processes serve
every epoch, the batches stay those of a fresh loader without workers, an abandoned
epoch does not leak into the next, and the workers end with `close()` or at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from runlab.data.loader import TorchLoader
from runlab.data.synthetic import GeneratedImages
from runlab.data.transforms import Pipeline

AUGMENT = [{"name": "random_crop", "padding": 2}, {"name": "horizontal_flip"}]


def loader(workers: int) -> TorchLoader:
    return TorchLoader(GeneratedImages(40, (3, 8, 8), 4, 0.3, random_state=1), 8, shuffle=True,
                       seed=3, num_workers=workers, transform=Pipeline(AUGMENT, seed=3))


def batches(it) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in it]


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def worker_pids(tl: TorchLoader) -> list[int]:
    return [w.pid for w in tl._loader._iterator._workers]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie no longer runs
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_serve_every_epoch_and_end_with_close():
    ref = {e: batches(loader(0).epoch(e)) for e in (0, 1)}
    tl = loader(2)
    assert_same(batches(tl.epoch(0)), ref[0])
    pids = worker_pids(tl)
    partial = tl.epoch(1)
    next(partial), next(partial)  # epoch 1 abandoned after two batches ...
    assert_same(batches(tl.epoch(1, start=3)), ref[1][3:])  # ... and resumed at batch 3
    assert_same(batches(tl.epoch(0)), ref[0])
    assert worker_pids(tl) == pids  # the same two processes all along
    with pytest.raises(RuntimeError, match="epoch 1 was still being read when another epoch started"):
        next(partial)  # the overtaken epoch does not hand out the other epoch's batches
    tl.close()
    assert not any(alive(p) for p in pids)
    assert_same(batches(tl.epoch(1)), ref[1])  # a later epoch starts new workers
    assert set(worker_pids(tl)).isdisjoint(pids)
    tl.close()


def test_exit_with_workers_alive_does_not_wait_on_them():
    """Workers ignore SIGTERM (stop signals are the run's), so multiprocessing's exit handler
    alone would wait on them forever; the loader's exit hook shuts them down first."""
    script = textwrap.dedent("""
        from runlab.data.loader import TorchLoader
        from runlab.data.synthetic import GeneratedImages
        tl = TorchLoader(GeneratedImages(40, (3, 8, 8), 4, 0.3, random_state=1), 8,
                         shuffle=True, num_workers=2)
        it = tl.epoch(0)
        next(it)
        print("read", flush=True)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "read"
