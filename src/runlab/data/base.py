"""Dataset metadata and what a dataset function returns.

A dataset function (registered in `DATASETS`) returns either
- `RawData`: every sample as in-memory tensors (x float, y long for classification); the
  framework carves val/test out of it, seeded, and batches it by index slicing on the
  device (or through a DataLoader when it exceeds `data.memory_limit_mb`); or
- `TorchData`: a `torch.utils.data.Dataset` (map-style: `__len__` + `__getitem__(i)` giving
  one `(x, y)` sample) or an `IterableDataset` (`__iter__` giving samples and `__len__`, the
  number of samples per epoch) plus its `DatasetMeta`. These always go through a DataLoader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class DatasetMeta:
    """What a model needs to know about its data; handed to every model constructor.

    `input_shape` excludes the batch dimension and is channels-first for signals and
    images: mnist1d is (1, 40), digits (1, 8, 8), moons (2,).
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int | None = None
    task: str = "classification"
    target_shape: tuple[int, ...] = ()
    class_names: tuple[str, ...] = field(default_factory=tuple)

    @property
    def channels(self) -> int:
        return self.input_shape[0] if len(self.input_shape) > 1 else 1

    @property
    def input_dim(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RawData:
    """What a dataset function returns: all samples, plus a fixed test split if the
    dataset defines one (MNIST, CIFAR). The framework carves out the rest, seeded."""

    x: torch.Tensor
    y: torch.Tensor
    meta: DatasetMeta
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None


@dataclass
class TorchData:
    """What a dataset function returns when samples come one at a time from torch datasets
    (files read lazily, data larger than memory, generated samples, ecosystem datasets).

    `train`: a map-style `Dataset` or an `IterableDataset`; each sample is `(x, y)` with x a
    float tensor of shape `meta.input_shape` and y an integer class (classification) or a
    float tensor of shape `meta.target_shape`. A map-style `train` is split into
    train/val/test by `data.val_fraction`/`data.test_fraction` (seeded, like RawData) unless
    `val`/`test` are given; an iterable one is never split. An iterable dataset may define
    `set_epoch(epoch)`: it is called before each epoch (for its own seeded shuffling).

    Example:
        >>> @DATASETS.register("my_images")
        ... def my_images(root: Path) -> TorchData:
        ...     return TorchData(ImageFolderDataset(root / "train"), DatasetMeta(
        ...         "my_images", (3, 64, 64), num_classes=5), test=ImageFolderDataset(root / "test"))
    """

    train: Any
    meta: DatasetMeta
    val: Any = None
    test: Any = None


Part = Any  # one split: (x, y) tensors, or a torch Dataset / IterableDataset


def is_tensors(part: Part) -> bool:
    return isinstance(part, tuple) and all(isinstance(t, torch.Tensor) for t in part)


def num_samples(part: Part) -> int:
    """Samples in one split, whichever form it has."""
    return len(part[0]) if isinstance(part, tuple) else len(part)


@dataclass
class Splits:
    """Train/val/test of one dataset: each `(x, y)` tensors (x float, y long for
    classification), or a torch Dataset for data that comes as `TorchData`."""

    meta: DatasetMeta
    train: Part
    val: Part | None
    test: Part | None


def take(part: Part, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples `idx` of one split as (x, y) tensors (an iterable dataset gives its first
    len(idx) samples): a fixed batch for diagnostics, whichever form the split has."""
    if isinstance(part, tuple):
        x, y = part
        return x[idx.to(x.device)], (y[idx.to(y.device)] if y is not None else None)
    if isinstance(part, torch.utils.data.IterableDataset):
        import itertools

        items = list(itertools.islice(iter(part), len(idx)))
    else:
        items = [part[int(i)] for i in idx]
    x, y = torch.utils.data.default_collate([tuple(item) for item in items])
    return x.float(), y
