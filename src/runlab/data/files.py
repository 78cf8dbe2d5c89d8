"""File-based datasets read from the data root: MNIST / Fashion-MNIST (IDX files),
CIFAR-10 (the python pickle batches) and `tensors` (an .npz or .pt with x, y).

A missing file is downloaded (checksummed, see `runlab.data.download`) unless the config
says `download: false`; then it is reported with where it was looked for and where to get it.
The CIFAR-10 batches are pickles: they are read with `SafeUnpickler`, which builds only the
numpy arrays, strings, lists and dicts the real files hold and refuses anything else, so a
crafted file in data.root can run no code.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

from runlab.data.base import DatasetMeta, RawData
from runlab.data.download import RESOURCES
from runlab.data.download import download as fetch
from runlab.errors import ConfigError
from runlab.registry import DATASETS

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
class MissingFile(ConfigError):
    """A dataset file is not in data.root (a download may bring it)."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays (what CIFAR batches hold): any
    other global, such as `os.system` in a crafted `__reduce__`, is refused unimported."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays "
                                         "and plain containers are allowed in dataset files")
        return super().find_class(module, name)


def safe_unpickle(path: Path) -> object:
    """Read a dataset pickle with `SafeUnpickler`; a refused or broken file is a ConfigError."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path} is not a valid dataset pickle: {e}") from None


def _missing(dataset: str, filename: str, looked: list[Path]) -> MissingFile:
    where = ", ".join(str(p) for p in looked)
    res = RESOURCES[dataset]
    urls = ", ".join(u for n in res.files for u in res.urls(n, None))
    return MissingFile(
        f"data file missing for dataset '{dataset}' (data.root): {filename} "
        f"(looked for {where}, also with .gz). Set download: true in data to fetch it, "
        f"or get it from {urls}"
    )


def _with_download(dataset: str, root: Path, download: bool, mirror: str | None, read):
    """`read()`, downloading the dataset's files first when one is missing and `download`."""
    try:
        return read()
    except MissingFile:
        if not download:
            raise
    fetch(dataset, root, mirror)
    return read()


def _find(dataset: str, root: Path, dirs: list[str], filename: str) -> Path:
    looked = [root / d / filename for d in dirs]
    for p in looked:
        for candidate in (p, p.with_name(p.name + ".gz")):
            if candidate.is_file():
                return candidate
    raise _missing(dataset, filename, looked)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic, dims, then big-endian data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ConfigError(f"{path} is not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[data[2]]
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ConfigError(f"{path}: truncated IDX file ({arr.size} values, header says {shape})")
    return arr.reshape(shape)


def _idx_dataset(name: str, root: Path, dirs: list[str], classes: tuple[str, ...],
                 download: bool, mirror: str | None) -> RawData:
    root = Path(root)
    arrays = _with_download(name, root, download, mirror, lambda: {
        k: read_idx(_find(name, root, dirs, f)) for k, f in IDX_FILES.items()})

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, H, W)

    x, xt = images(arrays["train_x"]), images(arrays["test_x"])
    meta = DatasetMeta(name, tuple(x.shape[1:]), 10, "classification", (), classes)
    return RawData(x, torch.from_numpy(arrays["train_y"].astype(np.int64)), meta,
                   xt, torch.from_numpy(arrays["test_y"].astype(np.int64)))


@DATASETS.register("mnist")
def mnist(root: Path, download: bool = True, mirror: str | None = None) -> RawData:
    """MNIST handwritten digits from IDX files in <root>/mnist/ (or <root>/MNIST/raw/),
    downloaded (checksummed) when missing."""
    return _idx_dataset("mnist", root, ["mnist", "MNIST/raw", "."], tuple(str(i) for i in range(10)),
                        download, mirror)


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: Path, download: bool = True, mirror: str | None = None) -> RawData:
    """Fashion-MNIST from IDX files in <root>/fashion_mnist/ (or <root>/FashionMNIST/raw/),
    downloaded (checksummed) when missing."""
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
    return _idx_dataset("fashion_mnist", root, ["fashion_mnist", "FashionMNIST/raw"], classes,
                        download, mirror)


@DATASETS.register("cifar10")
def cifar10(root: Path, download: bool = True, mirror: str | None = None) -> RawData:
    """CIFAR-10 from the python pickle batches in <root>/cifar-10-batches-py/, downloaded
    (checksummed) when missing; read with a safe unpickler."""
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

    def present() -> None:
        for name in names:
            if not (folder / name).is_file():
                raise _missing("cifar10", name, [folder / name])

    _with_download("cifar10", Path(root), download, mirror, present)

    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = folder / name
        d = safe_unpickle(path)
        if not isinstance(d, dict) or "data" not in d or "labels" not in d:
            raise ConfigError(f"{path} is not a CIFAR-10 batch (a dict with data and labels)")
        return np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(d["labels"])

    parts = [load(f"data_batch_{i}") for i in range(1, 6)]
    xt, yt = load("test_batch")
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    meta = DatasetMeta("cifar10", (3, 32, 32), 10, "classification", (), classes)

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0)

    return RawData(images(x), torch.from_numpy(y.astype(np.int64)), meta,
                   images(xt), torch.from_numpy(yt.astype(np.int64)))


@DATASETS.register("tensors")
def tensors(root: Path, path: str, task: str = "auto", num_classes: int | None = None) -> RawData:
    """Your own arrays: an .npz or .pt file holding `x` and `y` (and optionally
    `x_test`, `y_test`); `path` is relative to data.root. Integer y = classification."""
    file = Path(root) / path
    if not file.is_file():
        raise ConfigError(f"data file missing for dataset 'tensors' at data.path: {file} does not exist")
    if file.suffix == ".npz":
        d = {k: torch.as_tensor(v) for k, v in np.load(file).items()}
    else:
        d = torch.load(file, map_location="cpu", weights_only=True)
    missing = [k for k in ("x", "y") if k not in d]
    if missing:
        raise ConfigError(f"{file} lacks {missing}: data.path must name a file holding x and y")
    x, y = d["x"].float(), d["y"]
    if task == "auto":
        task = "classification" if not torch.is_floating_point(y) else "regression"
    if task == "classification":
        y = y.long()
        num_classes = num_classes or int(y.max()) + 1
    else:
        y = y.float()
    meta = DatasetMeta("tensors", tuple(x.shape[1:]), num_classes, task, tuple(y.shape[1:]))
    xt = d["x_test"].float() if "x_test" in d else None
    yt = d["y_test"].to(y.dtype) if "y_test" in d else None
    return RawData(x, y, meta, xt, yt)
