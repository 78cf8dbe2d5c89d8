"""The data path: seeded splits, and batches by index slicing or through a DataLoader.

Every epoch's order is a permutation drawn from its own generator seeded with
`epoch_seed(seed, epoch)`, and every batch's augmentation from `batch_seed(seed, epoch,
batch)`, so any epoch (and any batch inside it) can be replayed without stored sampler
state, whatever the number of workers: this is what makes resume exact.

Two loaders, one interface (`len`, `num_samples`, `epoch(epoch, start)`, `close()`):
- `MemoryLoader`: tensors on the device, batches by index slicing, transforms on the device;
- `TorchLoader`, a DataLoader: over a map-style dataset its sampler hands each worker a
  whole batch (epoch, batch index, sample indices): the worker reads, collates and
  transforms it, so a batch's content never depends on which worker built it, and the
  workers persist across epochs; over an iterable dataset worker k builds the batches b
  with (b - start) % workers == k, the DataLoader's round-robin returns them in order,
  and the workers are started anew each epoch.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data

from runlab.data.base import Part, RawData, Splits, TorchData, is_tensors
from runlab.errors import ConfigError
from runlab.signals import ignore_stop_signals

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


def split(raw: RawData | TorchData, val_fraction: float, test_fraction: float,
          split_seed: int) -> Splits:
    """Seeded train/val/test split. A dataset's own test (and val) split is kept as is; an
    iterable dataset cannot be split (see `_unsplit`)."""
    if isinstance(raw, TorchData) and isinstance(raw.train, torch.utils.data.IterableDataset):
        return _unsplit(raw, val_fraction, test_fraction)
    if isinstance(raw, TorchData):
        n, val, test = len(raw.train), raw.val, raw.test

        def take(idx: torch.Tensor) -> Part:
            return torch.utils.data.Subset(raw.train, idx.tolist())
    else:
        n, val = len(raw.x), None
        test = (raw.x_test, raw.y_test) if raw.x_test is not None else None

        def take(idx: torch.Tensor) -> Part:
            return raw.x[idx], raw.y[idx]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    if test is None and test_fraction > 0:
        n_test = max(1, int(round(n * test_fraction)))
        test, perm = take(perm[:n_test]), perm[n_test:]
    if val is None and val_fraction > 0:
        n_val = max(1, int(round(n * val_fraction)))
        val, perm = take(perm[:n_val]), perm[n_val:]
    if isinstance(raw, TorchData) and len(perm) == n:
        return Splits(raw.meta, raw.train, val, test)  # nothing carved out: no Subset
    return Splits(raw.meta, take(perm.sort().values), val, test)  # the dataset's own order


def _unsplit(raw: TorchData, val_fraction: float, test_fraction: float) -> Splits:
    """An iterable dataset's splits as returned; a fraction > 0 without the split is exit 2."""
    for key, frac, given in (("val_fraction", val_fraction, raw.val),
                             ("test_fraction", test_fraction, raw.test)):
        if frac > 0 and given is None:
            raise ConfigError(
                f"data.{key}: got {frac}, but dataset '{raw.meta.name}' is an iterable "
                f"dataset, which cannot be split. Set data.{key}=0 or return the split in TorchData")
    return Splits(raw.meta, raw.train, raw.val, raw.test)


class MemoryLoader:
    """Batches tensors that live on the device by index slicing (no per-sample work).
    `shard=(rank, world)`: yield only this process's part of every global batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 drop_last: bool = False, seed: int = 0, device: torch.device | None = None,
                 shard: tuple[int, int] = (0, 1), transform: Any = None):
        self.x = x.to(device) if device is not None else x
        self.y = y.to(device) if device is not None else y
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.bounds = batch_bounds(len(x), batch_size, drop_last, *shard)
        self.transform = transform or None  # a transforms.Pipeline, run on the device

    def __len__(self) -> int:
        return len(self.bounds)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def close(self) -> None:
        """Nothing to release (the interface of `TorchLoader.close`)."""

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of epoch `epoch`, skipping the first `start` (resume mid-epoch); a shard
        left empty by a batch smaller than the number of processes is skipped."""
        perm = epoch_permutation(len(self.x), self.seed, epoch).to(self.x.device) if self.shuffle else None
        for b in range(start, len(self.bounds)):
            lo, hi = self.bounds[b]
            if lo >= hi:
                continue
            if perm is None:
                x, y = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = perm[lo:hi]
                x, y = self.x.index_select(0, idx), self.y.index_select(0, idx)
            yield (x if self.transform is None else self.transform(x, epoch, b)), y


class _EpochBatches(torch.utils.data.Sampler):
    """Yields one key per batch of an epoch from batch `start`: (epoch, batch index, the
    sample indices of its permutation slice). `set(epoch, start)` points it at another
    epoch (the persistent DataLoader keeps its sampler)."""

    def __init__(self, n: int, bounds: list[tuple[int, int]], seed: int, shuffle: bool,
                 epoch: int, start: int):
        self.n, self.bounds, self.seed, self.shuffle = n, bounds, seed, shuffle
        self.set(epoch, start)

    def set(self, epoch: int, start: int) -> _EpochBatches:
        self.keys = [(b, lo, hi) for b, (lo, hi) in enumerate(self.bounds) if b >= start and lo < hi]
        self.order = epoch_permutation(self.n, self.seed, epoch) if self.shuffle else torch.arange(self.n)
        self.epoch = epoch
        return self

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[int, int, list[int]]]:
        epoch, order = self.epoch, self.order
        for b, lo, hi in self.keys:
            yield epoch, b, order[lo:hi].tolist()


def _collate(samples: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.utils.data.default_collate([tuple(s) for s in samples])
    return x.float() if not torch.is_floating_point(x) else x, y


class _Batches(torch.utils.data.Dataset):
    """Maps a batch key to the finished batch: read, collate, transform (in the worker)."""

    def __init__(self, dataset: Any, transform: Any):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, b, idx = key
        if isinstance(self.dataset, torch.utils.data.TensorDataset):
            x, y = (t[idx] for t in self.dataset.tensors)  # one gather, no per-sample Python
        elif hasattr(self.dataset, "__getitems__"):
            x, y = _collate(self.dataset.__getitems__(idx))
        else:
            x, y = _collate([self.dataset[i] for i in idx])
        return (x if self.transform is None else self.transform(x, epoch, b)), y


class _IterBatches(torch.utils.data.IterableDataset):
    """Batches of an iterable dataset from batch `start`; with workers, worker k builds the
    batches b with (b - start) % workers == k (each worker reads the whole stream)."""

    def __init__(self, dataset: Any, batch_size: int, drop_last: bool, epoch: int, start: int,
                 transform: Any):
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.epoch, self.start, self.transform = epoch, start, transform

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        k, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        it = iter(self.dataset)
        for b in itertools.count():
            samples = list(itertools.islice(it, self.batch_size))
            if not samples or (self.drop_last and len(samples) < self.batch_size):
                return
            if b >= self.start and (b - self.start) % workers == k:
                x, y = _collate(samples)
                yield (x if self.transform is None else self.transform(x, self.epoch, b)), y


def _seed_worker(worker_id: int) -> None:
    """Seed the worker's RNGs and leave stop signals to the main process: Ctrl-C and
    SLURM's scancel signal every process of the run, and a worker that died of it would
    fail the step the trainer is finishing before it checkpoints and shuts workers down."""
    import random

    ignore_stop_signals()
    s = torch.initial_seed() % 2**32  # set by the DataLoader from its seeded generator
    np.random.seed(s)
    random.seed(s)


class TorchLoader:
    """A `torch.utils.data.DataLoader` over a map-style or iterable dataset, with seeded
    order, seeded per-batch transforms and seeded workers (see the module docstring).

    A map-style dataset's workers persist across epochs: one DataLoader whose sampler is
    pointed at each new epoch, since a worker's batch depends on its key alone. An
    iterable dataset's workers carry the epoch and start position, so its DataLoader
    (and workers) is rebuilt each epoch. Persistent workers end with `close()`, when the
    loader is collected, or at exit. One epoch is read at a time: starting another while
    an earlier one's batches are still being read makes the earlier one raise."""

    def __init__(self, dataset: Any, batch_size: int, *, shuffle: bool, drop_last: bool = False,
                 seed: int = 0, num_workers: int = 0, pin_memory: bool = False,
                 device: torch.device | None = None, shard: tuple[int, int] = (0, 1),
                 transform: Any = None, prefetch_factor: int | None = None):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.seed, self.num_workers = drop_last, seed, num_workers
        self.pin_memory, self.device, self.transform = pin_memory, device, transform or None
        self.prefetch_factor = prefetch_factor if num_workers else None
        self.iterable = isinstance(dataset, torch.utils.data.IterableDataset)
        if self.iterable and shard != (0, 1):
            raise ConfigError("data: an iterable dataset cannot be sharded over processes; "
                              "return a map-style dataset for distributed training")
        self.bounds = batch_bounds(len(dataset), batch_size, drop_last, *shard)
        self.persistent = num_workers > 0 and not self.iterable
        self._loader: torch.utils.data.DataLoader | None = None  # the persistent one, once started
        self._reading: object = None  # the epoch now reading the persistent loader
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.bounds)

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def _data_loader(self, source: Any, sampler: Any, seed: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            source, batch_size=None, sampler=sampler, num_workers=self.num_workers,
            pin_memory=self.pin_memory, worker_init_fn=_seed_worker,
            prefetch_factor=self.prefetch_factor, persistent_workers=self.persistent,
            generator=torch.Generator().manual_seed(seed))

    def _epoch_loader(self, epoch: int, start: int) -> torch.utils.data.DataLoader:
        """The DataLoader that yields epoch `epoch`'s batches from batch `start`."""
        seed = epoch_seed(self.seed, epoch) + start
        if self.iterable:
            return self._data_loader(_IterBatches(self.dataset, self.batch_size, self.drop_last,
                                                  epoch, start, self.transform), None, seed)
        if self._loader is not None:
            self._loader.sampler.set(epoch, start)
            return self._loader
        sampler = _EpochBatches(len(self.dataset), self.bounds, self.seed, self.shuffle, epoch, start)
        loader = self._data_loader(_Batches(self.dataset, self.transform), sampler, seed)
        if self.persistent:
            self._loader = loader
            _PERSISTENT.add(self)
        return loader

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = self._epoch_loader(epoch, start)
        self._reading = reading = object()
        nb = self.device is not None and self.device.type == "cuda"
        for xb, yb in loader:
            if self.device is not None:
                xb, yb = xb.to(self.device, non_blocking=nb), yb.to(self.device, non_blocking=nb)
            yield xb, yb
            if self.persistent and self._reading is not reading:
                raise RuntimeError(f"TorchLoader: epoch {epoch} was still being read when another "
                                   "epoch started or the loader was closed")

    def close(self) -> None:
        """Shut down the persistent workers now (a later epoch starts new ones)."""
        loader, self._loader, self._reading = self._loader, None, None
        _PERSISTENT.discard(self)
        it = getattr(loader, "_iterator", None)
        if it is None or os.getpid() != self._pid:
            return
        it._shutdown_workers()  # asks each worker to end, waits up to 5 s, then SIGTERM ...
        for w in it._workers:
            if w.is_alive():  # ... which a worker ignores (see `_seed_worker`)
                w.kill()


def _close_persistent() -> None:
    """At exit: persistent workers ignore SIGTERM (see `_seed_worker`), so multiprocessing's
    exit handler could not end them and would wait on them forever; shut them down first.
    Registered after torch's own exit handler, so it runs before it (while a DataLoader
    can still shut its workers down)."""
    for loader in list(_PERSISTENT):
        with contextlib.suppress(Exception):  # one loader's failure must not keep the others'
            loader.close()


_PERSISTENT: weakref.WeakSet[TorchLoader] = weakref.WeakSet()
atexit.register(_close_persistent)


def tensor_bytes(data: Part) -> int:
    return sum(t.numel() * t.element_size() for t in data) if is_tensors(data) else 0


def make_loader(data: Part, batch_size: int, *, kind: str, shuffle: bool, seed: int,
                device: torch.device, drop_last: bool = False, num_workers: int = 0,
                shard: tuple[int, int] = (0, 1), transform: Any = None,
                memory_limit: int = MEMORY_LIMIT_BYTES,
                prefetch_factor: int | None = None) -> MemoryLoader | TorchLoader:
    """`kind`: memory | dataloader | auto (memory when tensors fit under `memory_limit`
    bytes; torch datasets always take the DataLoader). `shard=(rank, world)`: this
    process's part of every batch (data-parallel training). `transform`: a
    `transforms.Pipeline`, run per batch on the device (memory) or in the workers."""
    tensors = is_tensors(data)
    if kind == "auto":
        kind = "memory" if tensors and tensor_bytes(data) < memory_limit else "dataloader"
    if kind == "memory":
        if not tensors:
            raise ConfigError("data.loader: got 'memory', but this dataset returns a torch Dataset "
                              "(TorchData), not tensors. Use auto or dataloader")
        return MemoryLoader(*data, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                            device=device, shard=shard, transform=transform)
    dataset = torch.utils.data.TensorDataset(*data) if tensors else data
    return TorchLoader(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                       num_workers=num_workers, pin_memory=device.type == "cuda", device=device,
                       shard=shard, transform=transform, prefetch_factor=prefetch_factor)
