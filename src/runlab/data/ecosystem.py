"""Datasets from the ecosystem (optional extras, imported only when a config names them):
Hugging Face `datasets` (`data: {name: hf, path: ..., split: ...}`) and torchvision
datasets by class name (`data: {name: torchvision, dataset: CIFAR100}`, also ImageFolder).

Both return `TorchData` over a map-style dataset that converts one record at a time
(images HWC -> CHW float in [0, 1]), so Arrow-backed or file-backed data stays on disk.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runlab.data.base import DatasetMeta, TorchData
from runlab.errors import ConfigError, did_you_mean
from runlab.registry import DATASETS

FILE_BUILDERS = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "json"}


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or exit 2 saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - ImportError, or a wheel built for another torch
        raise ConfigError(f"{what} needs the optional package '{module.split('.')[0]}', which does not "
                          f"import here ({type(e).__name__}: {e}). Install it with: "
                          f"pip install 'runlab[{extra}]'") from None


def to_tensor(value: Any) -> torch.Tensor:
    """A record's input as float: images (PIL or HxWxC uint8) -> (C, H, W) in [0, 1]."""
    arr = np.asarray(value)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1) if arr.ndim == 3 else arr
    return torch.as_tensor(np.ascontiguousarray(arr), dtype=torch.float32)


class Records(torch.utils.data.Dataset):
    """(x, y) samples from an indexable of records: x from `x_keys` (one column as is, several
    stacked into a feature vector), y from `label_key` (int: class; float: regression)."""

    def __init__(self, records: Any, x_keys: list[str], label_key: str, regression: bool):
        self.records, self.x_keys, self.label_key = records, x_keys, label_key
        self.regression = regression

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        r = self.records[int(i)]
        x = to_tensor(r[self.x_keys[0]]) if len(self.x_keys) == 1 else torch.tensor(
            [float(r[k]) for k in self.x_keys])
        y = r[self.label_key]
        return x, torch.tensor([float(y)]) if self.regression else int(y)


def _load_hf(path: str, split: str, root: Path) -> Any:
    ds = require("datasets", "hf", "data.name=hf")
    local = (root / path).expanduser()
    try:
        if local.is_dir():
            loaded = ds.load_from_disk(str(local))
            return loaded[split] if isinstance(loaded, ds.DatasetDict) else loaded
        if local.suffix in FILE_BUILDERS and local.is_file():
            return ds.load_dataset(FILE_BUILDERS[local.suffix], data_files={split: str(local)},
                                   split=split, cache_dir=str(root / "hf"))
        return ds.load_dataset(path, split=split, cache_dir=str(root / "hf"))
    except (FileNotFoundError, KeyError, ValueError, ConnectionError, OSError) as e:
        raise ConfigError(f"data: loading Hugging Face dataset {path!r} (split {split!r}) failed: "
                          f"{type(e).__name__}: {e}") from None


@DATASETS.register("hf")
def hf(root: Path, path: str, split: str = "train", test_split: str | None = None,
       x_key: str | list[str] = "image", label_key: str = "label",
       task: str = "classification", num_classes: int | None = None) -> TorchData:
    """A Hugging Face dataset (hub name, folder saved with save_to_disk, or a .csv/.parquet/
    .json file under data.root); `x_key` names the input column(s). Needs runlab[hf]."""
    root = Path(root)
    train = _load_hf(path, split, root)
    x_keys = [x_key] if isinstance(x_key, str) else list(x_key)
    missing = [k for k in [*x_keys, label_key] if k not in train.column_names]
    if missing:
        raise ConfigError(f"data: Hugging Face dataset {path!r} has no column(s) {missing} "
                          f"(x_key / label_key). Columns: {', '.join(train.column_names)}")
    regression = task != "classification"
    if not regression and num_classes is None:
        feature = train.features[label_key]
        names = getattr(feature, "names", None)
        num_classes = len(names) if names else int(max(train[label_key])) + 1
    wrap = Records(train, x_keys, label_key, regression)
    test = Records(_load_hf(path, test_split, root), x_keys, label_key, regression) if test_split else None
    x0 = wrap[0][0]
    names = getattr(train.features[label_key], "names", None) or ()
    meta = DatasetMeta(f"hf:{path}", tuple(x0.shape), None if regression else num_classes, task,
                       (1,) if regression else (), tuple(names))
    return TorchData(wrap, meta, test=test)


class _PILPairs(torch.utils.data.Dataset):
    """A torchvision dataset's (PIL image, int) samples as (tensor, int), each image resized
    to `size` (H, W) first when given (datasets whose images differ in size)."""

    def __init__(self, inner: Any, size: tuple[int, int] | None = None):
        self.inner, self.size = inner, size

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.inner[int(i)]
        if self.size is not None:
            from torchvision.transforms.v2.functional import resize

            x = resize(x, list(self.size), antialias=True)
        return to_tensor(x), int(y)


def _image_size(image_size: int | list[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ConfigError(f"data.image_size: expected a positive integer or [height, width], "
                          f"got {image_size!r}")
    return size[0], size[1]


def _tv_class(tv: Any, dataset: str) -> type:
    cls = getattr(tv, dataset, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.utils.data.Dataset)):
        names = [n for n in getattr(tv, "__all__", dir(tv)) if n[:1].isupper()]
        same = [n for n in names if n.lower() == dataset.lower()]  # Cifar10 -> CIFAR10
        hint = f" Did you mean {same[0]!r}?" if same else did_you_mean(dataset, names)
        raise ConfigError(f"data.dataset: torchvision.datasets has no dataset {dataset!r}.{hint} "
                          f"Available: {', '.join(sorted(names))}")
    return cls


def _tv_parts(tv: Any, cls: type, base: Path, split: str, test_split: str | None,
              download: bool) -> list[tuple[str, dict[str, Any]]]:
    """(what, constructor kwargs) of the train part and, if any, the test part."""
    name = cls.__name__
    if issubclass(cls, tv.DatasetFolder):  # ImageFolder & co: one folder per split
        parts = [(split, {"root": str(base / split)})]
        if test_split is not None:
            parts.append((test_split, {"root": str(base / test_split)}))
        missing = [str(base / s) for s, _ in parts if not (base / s).is_dir()]
        if missing:
            raise ConfigError(f"data: torchvision {name} reads one folder per split (class "
                              f"sub-folders of images): no folder {', '.join(missing)} (data.root, "
                              "data.path, data.split, data.test_split; test_split: null carves "
                              "the test split out of the training data)")
        return parts
    params = inspect.signature(cls).parameters
    extra = {"download": download} if "download" in params else {}
    if "train" in params:
        if split != "train" or test_split not in ("test", None):
            raise ConfigError(f"data: torchvision {name} takes train=True/False: data.split must "
                              f"be 'train' (got {split!r}) and data.test_split 'test' or null "
                              f"(got {test_split!r})")
        parts = [("train", {"train": True})] + ([("test", {"train": False})] if test_split else [])
    elif "split" in params:
        parts = [(split, {"split": split})] + ([(test_split, {"split": test_split})] if test_split else [])
    else:
        raise ConfigError(f"data: torchvision {name} takes neither train= nor split=, so runlab "
                          "cannot tell its splits apart; wrap it in a dataset plugin")
    return [(what, {"root": str(base), **kw, **extra}) for what, kw in parts]


def _num_classes(inner: Any, name: str, given: int | None) -> tuple[int, tuple[str, ...]]:
    """(classes, class names): `given` (data.num_classes), else the dataset's `classes`, else
    the largest of its `targets`/`labels` plus one."""
    classes = tuple(map(str, getattr(inner, "classes", ()) or ()))
    if given is not None or classes:
        return given or len(classes), classes
    labels = getattr(inner, "targets", None)
    labels = getattr(inner, "labels", None) if labels is None else labels
    if labels is None:
        raise ConfigError(f"data: torchvision {name} lists neither classes nor targets: "
                          "set data.num_classes")
    return int(max(int(y) for y in labels)) + 1, ()


@DATASETS.register("torchvision")
def torchvision_dataset(root: Path, dataset: str, download: bool = True, path: str | None = None,
                        split: str = "train", test_split: str | None = "test",
                        num_classes: int | None = None,
                        image_size: int | list[int] | None = None) -> TorchData:
    """A torchvision dataset by class name, read from `data.root` (or `data.root/path`):
    those that take `train=` (MNIST, FashionMNIST, KMNIST, CIFAR10, CIFAR100, ...), those
    that take `split=` (SVHN, STL10, GTSRB, ...: `split`, `test_split`), and ImageFolder /
    DatasetFolder (one folder of class sub-folders per split: `path/split`, `path/test_split`).
    `download` lets torchvision fetch what is missing (and check it); `image_size` resizes
    every image (datasets of mixed sizes). Needs runlab[vision]."""
    tv = require("torchvision.datasets", "vision", f"data.name=torchvision (dataset {dataset})")
    cls = _tv_class(tv, dataset)
    size = _image_size(image_size)
    base = Path(root) / path if path else Path(root)
    loaded = []
    for what, kwargs in _tv_parts(tv, cls, base, split, test_split, download):
        try:
            loaded.append(_PILPairs(cls(**kwargs), size))
        except (RuntimeError, TypeError, ValueError, OSError) as e:  # OSError: offline download
            fetch = ("With data.download: true torchvision could not fetch its files (offline?); "
                     "put them there as torchvision lays them out" if kwargs.get("download") else
                     "data.download: true lets torchvision fetch its files")
            raise ConfigError(f"data: torchvision {dataset} ({what} split) did not load from "
                              f"{kwargs['root']}: {type(e).__name__}: {e}. {fetch}") from None
    train, test = loaded[0], (loaded[1] if len(loaded) > 1 else None)
    n_classes, classes = _num_classes(train.inner, dataset, num_classes)
    meta = DatasetMeta(f"torchvision:{dataset}", tuple(train[0][0].shape), n_classes,
                       class_names=classes)
    return TorchData(train, meta, test=test)
