"""An example model plugin: any class decorated with MODELS.register can be named in a config."""

import torch
from torch import nn

from runlab.data import DatasetMeta
from runlab.registry import MODELS


@MODELS.register("sine_mlp")
class SineMLP(nn.Module):
    """A small regression MLP with a configurable width."""

    def __init__(self, meta: DatasetMeta, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(meta.input_dim, width), nn.Tanh(),
                                 nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
