"""Checks on what a dataset function returned, before any run folder exists.

A plugin that returns numpy arrays, wrong shapes or dtypes, mismatched lengths, or labels
outside `num_classes` would otherwise fail mid-run with a raw PyTorch traceback. In-memory
tensors are checked whole (cheap: one pass over y); torch datasets on a sample of
`SAMPLE` items spread over the dataset (the first ones of an iterable dataset).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from runlab.data.base import DatasetMeta, RawData, TorchData
from runlab.errors import ConfigError

SAMPLE = 16


def check_dataset(name: str, out: Any) -> None:
    """Raise ConfigError naming the dataset and every mismatch with its DatasetMeta."""
    if not isinstance(out, (RawData, TorchData)):
        raise ConfigError(f"data: dataset '{name}' must return runlab.data.RawData or "
                          f"runlab.data.TorchData, got {type(out).__name__}")
    meta = out.meta
    if not isinstance(meta, DatasetMeta):
        raise ConfigError(f"data: dataset '{name}' returned meta of type {type(meta).__name__}; "
                          "expected runlab.data.DatasetMeta")
    problems = _meta_problems(meta)
    if not problems and isinstance(out, RawData):
        for xk, yk in (("x", "y"), ("x_test", "y_test")):
            problems += _tensor_problems(meta, xk, getattr(out, xk), yk, getattr(out, yk))
    elif not problems:
        for part in ("train", "val", "test"):
            problems += _torch_problems(meta, part, getattr(out, part))
    if problems:
        raise ConfigError([f"data: dataset '{name}': {p}" for p in problems])


def _meta_problems(meta: DatasetMeta) -> list[str]:
    if meta.task == "classification" and not (isinstance(meta.num_classes, int) and meta.num_classes > 0):
        return [f"meta.num_classes is {meta.num_classes!r}; a classification dataset needs a "
                "positive integer"]
    return []


def _kind(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"a numpy array (dtype {v.dtype}); return torch tensors: torch.from_numpy(...)"
    return f"a {type(v).__name__}; expected a torch.Tensor"


def _tensor_problems(meta: DatasetMeta, xk: str, x: Any, yk: str, y: Any) -> list[str]:
    """`x`, `y` of a RawData (both None is fine for the optional test split)."""
    if x is None and y is None and xk != "x":
        return []
    bad = [f"{k} is {_kind(v)}" for k, v in ((xk, x), (yk, y)) if not isinstance(v, torch.Tensor)]
    if bad:
        return bad
    problems = []
    if len(x) != len(y):
        problems.append(f"{xk} holds {len(x)} samples but {yk} holds {len(y)}")
    if not torch.is_floating_point(x):
        problems.append(f"{xk} has dtype {x.dtype}; expected a float tensor (e.g. x.float() / 255)")
    if tuple(x.shape[1:]) != tuple(meta.input_shape):
        problems.append(f"{xk} has sample shape {tuple(x.shape[1:])} but meta.input_shape is "
                        f"{tuple(meta.input_shape)}")
    return problems + _target_problems(meta, yk, y)


def _target_problems(meta: DatasetMeta, yk: str, y: torch.Tensor) -> list[str]:
    if meta.task != "classification":
        if not torch.is_floating_point(y):
            return [f"{yk} has dtype {y.dtype}; a {meta.task} target must be a float tensor"]
        if tuple(y.shape[1:]) != tuple(meta.target_shape):
            return [f"{yk} has target shape {tuple(y.shape[1:])} but meta.target_shape is "
                    f"{tuple(meta.target_shape)}"]
        return []
    if torch.is_floating_point(y) or y.dtype == torch.bool:
        return [f"{yk} has dtype {y.dtype}; classification labels must be integers (y.long())"]
    if y.dim() != 1:
        return [f"{yk} has shape {tuple(y.shape)}; classification labels must be 1-D class indices"]
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= meta.num_classes):
        return [f"{yk} holds labels {int(y.min())}..{int(y.max())}, outside 0..{meta.num_classes - 1} "
                f"(meta.num_classes={meta.num_classes})"]
    return []


def _sample(part: Any) -> list[tuple[int, Any]]:
    """Up to SAMPLE (position, item) pairs: spread over a map-style dataset, the first ones
    of an iterable one."""
    if isinstance(part, torch.utils.data.IterableDataset):
        return list(enumerate(itertools.islice(iter(part), SAMPLE)))
    n = len(part)
    idx = sorted({i * (n - 1) // max(1, SAMPLE - 1) for i in range(min(n, SAMPLE))}) if n else []
    return [(i, part[i]) for i in idx]


def _torch_problems(meta: DatasetMeta, part: str, ds: Any) -> list[str]:
    if ds is None:
        return [] if part != "train" else ["TorchData.train is None"]
    if not isinstance(ds, torch.utils.data.Dataset):
        return [f"TorchData.{part} is a {type(ds).__name__}; expected a torch.utils.data.Dataset "
                "or IterableDataset"]
    try:
        n = len(ds)
    except TypeError:
        return [f"TorchData.{part} has no __len__; an iterable dataset must say how many samples "
                "an epoch holds (define __len__)"]
    if n == 0:
        return [f"TorchData.{part} is empty"]
    try:
        items = _sample(ds)
    except Exception as e:  # noqa: BLE001 - the plugin's own error, reported with its name
        return [f"reading samples of TorchData.{part} failed: {type(e).__name__}: {e}"]
    for i, item in items:
        where = f"{part}[{i}]"
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            return [f"{where} is a {type(item).__name__}; each sample must be an (x, y) pair"]
        x, y = item
        if not isinstance(x, torch.Tensor):
            return [f"{where} x is {_kind(x)}"]
        if isinstance(y, (int, float, np.integer, np.floating)) and not isinstance(y, bool):
            y = torch.as_tensor(y)
        if not isinstance(y, torch.Tensor):
            return [f"{where} y is {_kind(y)}"]
        problems = _tensor_problems(meta, f"{where} x", x[None], f"{where} y", y.reshape(1, *y.shape))
        if problems:
            return problems
    return []
