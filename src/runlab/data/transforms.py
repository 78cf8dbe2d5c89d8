"""Batch transforms from config (`data.transforms: {train: [...], eval: [...]}`).

A transform works on a whole batch `(B, C, *spatial)` wherever the batch lives: on the
device for in-memory data (no per-sample Python), in a DataLoader worker otherwise. Its
randomness comes only from the `torch.Generator` it is handed, seeded from
`(seed, epoch, batch index)`, so a resumed run replays the same augmentation whatever
the number of workers.

A `TRANSFORMS` entry is a factory: config params in, `f(x, generator) -> x` out.
Plugins add their own:

    >>> @TRANSFORMS.register("cutout")
    ... def cutout(size: int = 8):
    ...     def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor: ...
    ...     return apply

Names starting with `torchvision.` are torchvision.transforms.v2 classes (needs the
optional torchvision), applied sample by sample with the global RNG seeded from the
same generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from runlab.errors import ConfigError, did_you_mean
from runlab.registry import TRANSFORMS

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
TORCHVISION_PREFIX = "torchvision."


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """The seed of the augmentation of batch `batch` of epoch `epoch` (documented, so a
    hand-written loop can replay it)."""
    from runlab.data.loader import epoch_seed

    return (epoch_seed(seed, epoch) * 1_000_003 + int(batch) + 1) % (2**63)


@TRANSFORMS.register("random_crop")
def random_crop(padding: int = 4, fill: float = 0.0) -> Transform:
    """Pad every spatial side by `padding` (with `fill`), then crop back to the input size at
    a random offset per sample (images (B, C, H, W) and signals (B, C, L))."""
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding: expected a non-negative integer, got {padding!r}")

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        spatial = x.shape[2:]
        out = F.pad(x, [padding] * (2 * len(spatial)), value=fill)
        offsets = torch.randint(0, 2 * padding + 1, (len(x), len(spatial)), generator=g,
                                device=x.device)  # (B, n_spatial)
        for d, size in enumerate(spatial):  # gather the window along one spatial dim at a time
            idx = offsets[:, d:d + 1] + torch.arange(size, device=x.device)  # (B, size)
            shape = [len(x)] + [1] * (out.dim() - 1)
            shape[2 + d] = size
            out = out.gather(2 + d, idx.view(shape).expand(*out.shape[:2 + d], size, *out.shape[3 + d:]))
        return out

    return apply


@TRANSFORMS.register("horizontal_flip")
def horizontal_flip(p: float = 0.5) -> Transform:
    """Flip the last dimension of each sample with probability `p`."""

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        flip = torch.rand(len(x), generator=g, device=x.device) < p
        return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)

    return apply


@TRANSFORMS.register("normalize")
def normalize(mean: float | list[float] = 0.0, std: float | list[float] = 1.0) -> Transform:
    """(x - mean) / std, per channel when lists are given (e.g. CIFAR-10's channel stats)."""
    if any(s == 0 for s in (std if isinstance(std, list) else [std])):
        raise ValueError(f"std: must be non-zero, got {std!r}")

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for key, v in (("mean", mean), ("std", std)):  # else (1, C) broadcasts to another C
            if isinstance(v, list) and len(v) not in (1, x.shape[1]):
                raise ValueError(f"normalize: {key} has {len(v)} values but the samples have "
                                 f"{x.shape[1]} channels")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(shape if isinstance(mean, list) else ())
        s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(shape if isinstance(std, list) else ())
        return (x - m) / s

    return apply


@TRANSFORMS.register("gaussian_noise")
def gaussian_noise(std: float = 0.1) -> Transform:
    """Add N(0, std^2) noise to every value."""

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return x + std * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)

    return apply


def _torchvision(name: str, params: dict[str, Any]) -> Transform:
    cls_name = name[len(TORCHVISION_PREFIX):]
    try:
        from torchvision.transforms import v2
    except Exception as e:  # noqa: BLE001 - ImportError, or a torchvision built for another torch
        raise ValueError(f"'{name}' needs torchvision (pip install 'runlab[vision]'), which does "
                         f"not import here: {type(e).__name__}: {e}") from None
    if not isinstance(getattr(v2, cls_name, None), type):
        names = [n for n in dir(v2) if n[:1].isupper() and isinstance(getattr(v2, n), type)]
        raise ValueError(f"torchvision.transforms.v2 has no '{cls_name}'.{did_you_mean(cls_name, names)}")
    t = getattr(v2, cls_name)(**params)

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))
        with torch.random.fork_rng(devices=[]):  # v2 draws its parameters from the CPU RNG
            torch.manual_seed(seed)
            return torch.stack([t(xi) for xi in x])

    return apply


def build_transforms(specs: Sequence[dict[str, Any]] | None, key: str) -> list[Transform]:
    """The transforms a list of `{name: ..., **params}` specs names; ConfigError naming `key`."""
    steps, problems = [], []
    for i, spec in enumerate(specs or []):
        where = f"{key}[{i}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            problems.append(f"{where}: expected a mapping with a 'name', got {spec!r}. "
                            f"Available: {', '.join(TRANSFORMS.names())}, or torchvision.<Name>")
            continue
        name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
        try:
            if name.startswith(TORCHVISION_PREFIX):
                steps.append(_torchvision(name, params))
            elif name not in TRANSFORMS:
                problems.append(f"{where}.name: {TRANSFORMS.unknown_message(name)}, or torchvision.<Name>")
            else:
                steps.append(TRANSFORMS.get(name).obj(**params))
        except (TypeError, ValueError) as e:
            problems.append(f"{where}: building '{name}' failed: {e}")
    if problems:
        raise ConfigError(problems)
    return steps


class Pipeline:
    """Transforms applied in order to batch `batch` of epoch `epoch`, with a generator on the
    batch's device seeded by `batch_seed(seed, epoch, batch)`. Pickles as its specs (the
    steps are closures), so DataLoader workers started by `spawn` rebuild it."""

    def __init__(self, specs: Sequence[dict[str, Any]] | None, seed: int, key: str = "data.transforms"):
        self.specs, self.seed, self.key = list(specs or []), seed, key
        self.steps = build_transforms(self.specs, key)

    def __bool__(self) -> bool:
        return bool(self.specs)

    def __getstate__(self) -> dict[str, Any]:
        return {"specs": self.specs, "seed": self.seed, "key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["specs"], state["seed"], state["key"])

    def __call__(self, x: torch.Tensor, epoch: int, batch: int) -> torch.Tensor:
        if not self.steps:
            return x
        g = torch.Generator(device=x.device).manual_seed(batch_seed(self.seed, epoch, batch))
        for step in self.steps:
            x = step(x, g)
        return x


def pipelines(transforms: dict[str, Any] | None, seed: int) -> tuple[Pipeline, Pipeline]:
    """(train, eval) pipelines from `data.transforms`."""
    t = transforms or {}
    return (Pipeline(t.get("train"), seed, "data.transforms.train"),
            Pipeline(t.get("eval"), seed, "data.transforms.eval"))


def shape_problems(transforms: dict[str, Any] | None, input_shape: tuple[int, ...]) -> list[str]:
    """What goes wrong when `data.transforms` meets samples of `input_shape` (the dataset's
    `meta.input_shape`, which the model is built for): a pipeline that fails on such a batch
    (a per-channel normalize for another number of channels) or changes its shape (a v2
    Resize or CenterCrop to another size). Empty when both pipelines keep the shape."""
    problems = []
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    for which, pipe in zip(("train", "eval"), pipelines(transforms, 0)):
        if not pipe:
            continue
        key = f"data.transforms.{which}"
        try:
            out = pipe(x, 0, 0)
        except Exception as e:  # noqa: BLE001 - any step's own error, reported with the key
            problems.append(f"{key}: applying it to samples of shape {tuple(input_shape)} failed: "
                            f"{type(e).__name__}: {e}")
            continue
        if tuple(out.shape[1:]) != tuple(input_shape):
            problems.append(f"{key}: turns samples of shape {tuple(input_shape)} into "
                            f"{tuple(out.shape[1:])}, but the model is built for the dataset's "
                            "shape: crop or resize back to it, or give the dataset that size "
                            "(data.image_size for torchvision datasets)")
    return problems
