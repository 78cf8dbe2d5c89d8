"""Dataset metadata and the in-memory dataset container."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
class Splits:
    """Train/val/test tensors of one dataset (x float, y long for classification)."""

    meta: DatasetMeta
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor] | None
