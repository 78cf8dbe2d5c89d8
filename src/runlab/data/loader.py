"""The data path: seeded splits, and batches by index slicing or through a DataLoader.

Every epoch's order is a permutation drawn from its own generator seeded with
`epoch_seed(seed, epoch)`, so any epoch (and any batch inside it) can be replayed
without stored sampler state: this is what makes resume exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from runlab.data.base import RawData, Splits

MEMORY_LIMIT_BYTES = 4 << 30  # larger datasets go through a DataLoader under `loader: auto`


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s permutation (documented: hand-written loops can replay it)."""
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=g)


def batch_bounds(n: int, batch_size: int, drop_last: bool, rank: int = 0,
                 world: int = 1) -> list[tuple[int, int]]:
    """`[lo, hi)` positions of every batch of an epoch in its order. With `world` > 1, the
    part of each global batch that process `rank` takes: contiguous slices whose sizes
    differ by at most one, so the global batches are the same for any number of processes."""
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    bounds = []
    for i in range(n_batches):
        lo, size = i * batch_size, min(batch_size, n - i * batch_size)
        bounds.append((lo + rank * size // world, lo + (rank + 1) * size // world))
    return bounds


def split(raw: RawData, val_fraction: float, test_fraction: float, split_seed: int) -> Splits:
    """Seeded train/val/test split. A dataset's own test split is kept as is."""
    n = len(raw.x)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    test = None
    if raw.x_test is not None:
        test = (raw.x_test, raw.y_test)
    elif test_fraction > 0:
        n_test = max(1, int(round(n * test_fraction)))
        idx, perm = perm[:n_test], perm[n_test:]
        test = (raw.x[idx], raw.y[idx])
    val = None
    if val_fraction > 0:
        n_val = max(1, int(round(n * val_fraction)))
        idx, perm = perm[:n_val], perm[n_val:]
        val = (raw.x[idx], raw.y[idx])
    train_idx = perm.sort().values  # keep the dataset's own order inside the train split
    return Splits(raw.meta, (raw.x[train_idx], raw.y[train_idx]), val, test)


class MemoryLoader:
    """Batches tensors that live on the device by index slicing (no per-sample work).
    `shard=(rank, world)`: yield only this process's part of every global batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 drop_last: bool = False, seed: int = 0, device: torch.device | None = None,
                 shard: tuple[int, int] = (0, 1)):
        self.x = x.to(device) if device is not None else x
        self.y = y.to(device) if device is not None else y
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.bounds = batch_bounds(len(x), batch_size, drop_last, *shard)

    def __len__(self) -> int:
        return len(self.bounds)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of epoch `epoch`, skipping the first `start` (resume mid-epoch); a shard
        left empty by a batch smaller than the number of processes is skipped."""
        bounds = [b for b in self.bounds[start:] if b[0] < b[1]]
        if not self.shuffle:
            for lo, hi in bounds:
                yield self.x[lo:hi], self.y[lo:hi]
            return
        perm = epoch_permutation(len(self.x), self.seed, epoch).to(self.x.device)
        for lo, hi in bounds:
            idx = perm[lo:hi]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


class _EpochBatches(torch.utils.data.Sampler):
    """Batch sampler replaying an epoch's permutation from batch `start`."""

    def __init__(self, n: int, bounds: list[tuple[int, int]], seed: int, epoch: int, start: int,
                 shuffle: bool):
        self.bounds = [b for b in bounds[start:] if b[0] < b[1]]
        self.order = epoch_permutation(n, seed, epoch) if shuffle else torch.arange(n)

    def __len__(self) -> int:
        return len(self.bounds)

    def __iter__(self) -> Iterator[list[int]]:
        for lo, hi in self.bounds:
            yield self.order[lo:hi].tolist()


def _seed_worker(worker_id: int) -> None:
    """Seed the worker's RNGs and leave stop signals to the main process: Ctrl-C and
    SLURM's scancel signal every process of the run, and a worker that died of it would
    fail the step the trainer is finishing before it checkpoints and shuts workers down."""
    import random

    from runlab.signals import ignore_stop_signals

    ignore_stop_signals()
    s = torch.initial_seed() % 2**32  # set by the DataLoader from its seeded generator
    np.random.seed(s)
    random.seed(s)


class TorchLoader:
    """A `torch.utils.data.DataLoader` over any map-style dataset, with seeded order
    and seeded workers, rebuilt each epoch so a resumed epoch replays exactly."""

    def __init__(self, dataset: Any, batch_size: int, *, shuffle: bool, drop_last: bool = False,
                 seed: int = 0, num_workers: int = 0, pin_memory: bool = False,
                 device: torch.device | None = None, shard: tuple[int, int] = (0, 1)):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.seed, self.num_workers = drop_last, seed, num_workers
        self.pin_memory, self.device = pin_memory, device
        self.bounds = batch_bounds(len(dataset), batch_size, drop_last, *shard)

    def __len__(self) -> int:
        return len(self.bounds)

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = _EpochBatches(len(self.dataset), self.bounds, self.seed, epoch, start, self.shuffle)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=self.num_workers,
            pin_memory=self.pin_memory, worker_init_fn=_seed_worker,
            generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch) + start),
        )
        nb = self.device is not None and self.device.type == "cuda"
        for xb, yb in loader:
            if self.device is not None:
                xb, yb = xb.to(self.device, non_blocking=nb), yb.to(self.device, non_blocking=nb)
            yield xb, yb


def make_loader(data: tuple[torch.Tensor, torch.Tensor] | Any, batch_size: int, *, kind: str,
                shuffle: bool, seed: int, device: torch.device, drop_last: bool = False,
                num_workers: int = 0, shard: tuple[int, int] = (0, 1)) -> MemoryLoader | TorchLoader:
    """`kind`: memory | dataloader | auto (memory when tensors fit under MEMORY_LIMIT_BYTES).
    `shard=(rank, world)`: this process's part of every batch (data-parallel training)."""
    is_tensors = isinstance(data, tuple) and all(isinstance(t, torch.Tensor) for t in data)
    if kind == "auto":
        fits = is_tensors and sum(t.numel() * t.element_size() for t in data) < MEMORY_LIMIT_BYTES
        kind = "memory" if fits else "dataloader"
    if kind == "memory":
        if not is_tensors:
            raise ValueError("data.loader=memory needs a dataset of tensors")
        return MemoryLoader(*data, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                            device=device, shard=shard)
    dataset = torch.utils.data.TensorDataset(*data) if is_tensors else data
    return TorchLoader(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                       num_workers=num_workers, pin_memory=device.type == "cuda", device=device,
                       shard=shard)
