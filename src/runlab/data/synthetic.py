"""Generated datasets: nothing to download, sizes from the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runlab.data.base import DatasetMeta, RawData, TorchData
from runlab.registry import DATASETS


def _raw(name: str, x: np.ndarray, y: np.ndarray, task: str, num_classes: int | None,
         input_shape: tuple[int, ...] | None = None) -> RawData:
    xt = torch.as_tensor(x, dtype=torch.float32)
    if input_shape is not None:
        xt = xt.reshape(len(xt), *input_shape)
    if task == "classification":
        yt = torch.as_tensor(y, dtype=torch.long)
    else:
        yt = torch.as_tensor(y, dtype=torch.float32)
    meta = DatasetMeta(name, tuple(xt.shape[1:]), num_classes, task, tuple(yt.shape[1:]))
    return RawData(xt, yt, meta)


@DATASETS.register("moons")
def moons(root: Path, n_samples: int = 1000, noise: float = 0.1, random_state: int = 0) -> RawData:
    """Two interleaving half circles (scikit-learn), 2 classes."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=random_state)
    return _raw("moons", x, y, "classification", 2)


@DATASETS.register("circles")
def circles(root: Path, n_samples: int = 1000, noise: float = 0.05, factor: float = 0.5,
            random_state: int = 0) -> RawData:
    """A circle inside a circle (scikit-learn), 2 classes."""
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=random_state)
    return _raw("circles", x, y, "classification", 2)


@DATASETS.register("blobs")
def blobs(root: Path, n_samples: int = 1000, n_features: int = 2, centers: int = 3,
          cluster_std: float = 1.0, random_state: int = 0) -> RawData:
    """Isotropic Gaussian blobs (scikit-learn), `centers` classes."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers,
                      cluster_std=cluster_std, random_state=random_state)
    return _raw("blobs", x, y, "classification", centers)


@DATASETS.register("swiss_roll")
def swiss_roll(root: Path, n_samples: int = 1000, noise: float = 0.05,
               random_state: int = 0) -> RawData:
    """3-D swiss roll (scikit-learn); target is the position along the roll (regression)."""
    from sklearn.datasets import make_swiss_roll

    x, t = make_swiss_roll(n_samples=n_samples, noise=noise, random_state=random_state)
    x = (x - x.mean(0)) / x.std(0)
    t = ((t - t.mean()) / t.std())[:, None]
    return _raw("swiss_roll", x, t, "regression", None)


@DATASETS.register("digits")
def digits(root: Path) -> RawData:
    """8x8 handwritten digits shipped with scikit-learn (1,797 images, 10 classes)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _raw("digits", d.data / 16.0, d.target, "classification", 10, (1, 8, 8))


@DATASETS.register("mnist1d")
def mnist1d(root: Path, num_samples: int = 5000, random_state: int = 42,
            shuffle_seq: bool = False) -> RawData:
    """MNIST-1D (Greydanus 2020): 40-point 1-D signals, 10 classes, generated locally
    with the `mnist1d` package and cached under `<root>/mnist1d/`."""
    cache = Path(root) / "mnist1d" / f"mnist1d-n{num_samples}-s{random_state}-sh{int(shuffle_seq)}.npz"
    if cache.is_file():
        d = dict(np.load(cache))
    else:
        d = _generate_mnist1d(num_samples, random_state, shuffle_seq)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **d)
        tmp.replace(cache)
    raw = _raw("mnist1d", d["x"], d["y"], "classification", 10, (1, d["x"].shape[-1]))
    raw.x_test = torch.as_tensor(d["x_test"], dtype=torch.float32).reshape(-1, *raw.meta.input_shape)
    raw.y_test = torch.as_tensor(d["y_test"], dtype=torch.long)
    return raw


def _generate_mnist1d(num_samples: int, seed: int, shuffle_seq: bool) -> dict[str, np.ndarray]:
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.shuffle_seq = num_samples, seed, shuffle_seq
    # make_dataset reseeds the global RNGs; keep the caller's streams untouched.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


class GeneratedImages(torch.utils.data.Dataset):
    """Sample i: the prototype of class i % num_classes plus noise drawn from a generator
    seeded by (random_state, i), so any sample can be made alone, in any process."""

    def __init__(self, n_samples: int, shape: tuple[int, ...], num_classes: int, noise: float,
                 random_state: int, offset: int = 0):
        g = torch.Generator().manual_seed(random_state)
        self.prototypes = torch.rand((num_classes, *shape), generator=g)  # (K, C, H, W) in [0, 1)
        self.n, self.noise, self.random_state, self.offset = n_samples, noise, random_state, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        j = self.offset + i
        g = torch.Generator().manual_seed(self.random_state * 1_000_003 + j + 1)
        label = j % len(self.prototypes)
        proto = self.prototypes[label]
        return proto + self.noise * torch.randn(proto.shape, generator=g), label


@DATASETS.register("synthetic_images")
def synthetic_images(root: Path, n_samples: int = 5000, n_test: int = 1000,
                     shape: list[int] = (3, 32, 32), num_classes: int = 10, noise: float = 0.5,
                     random_state: int = 0, lazy: bool = False) -> RawData | TorchData:
    """CIFAR-10-shaped images made from seeded noise around one pattern per class; `lazy`
    makes each sample on request (a map-style Dataset, never all in memory; its noise is
    drawn per sample, so its numbers differ from the eager tensors)."""
    shape = tuple(shape)
    train = GeneratedImages(n_samples, shape, num_classes, noise, random_state)
    test = GeneratedImages(n_test, shape, num_classes, noise, random_state, offset=n_samples)
    meta = DatasetMeta("synthetic_images", shape, num_classes)
    if lazy:
        return TorchData(train, meta, test=test if n_test else None)

    def stacked(ds: GeneratedImages) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(random_state * 1_000_003 + ds.offset)
        y = (torch.arange(len(ds)) + ds.offset) % num_classes
        return ds.prototypes[y] + noise * torch.randn((len(ds), *shape), generator=g), y

    x, y = stacked(train)
    xt, yt = stacked(test) if n_test else (None, None)
    return RawData(x, y, meta, xt, yt)
