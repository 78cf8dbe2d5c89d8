"""An example dataset plugin: return runlab.data.RawData (tensors + metadata)."""

import math
from pathlib import Path

import torch

from runlab.data import DatasetMeta, RawData
from runlab.registry import DATASETS


@DATASETS.register("noisy_sine")
def noisy_sine(root: Path, n_samples: int = 2000, noise: float = 0.1, seed: int = 0) -> RawData:
    """y = sin(x) + noise on x in [-pi, pi] (regression)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_samples, 1, generator=g) * 2 - 1) * math.pi
    y = torch.sin(x) + noise * torch.randn(n_samples, 1, generator=g)
    return RawData(x, y, DatasetMeta("noisy_sine", (1,), None, "regression", (1,)))
