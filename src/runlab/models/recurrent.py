"""Recurrent models for signals (C, L): the sequence runs along L, C features per step."""

from __future__ import annotations

import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.models.classifiers import _Head, _out_dim
from runlab.registry import MODELS


class _GRUBody(nn.Module):
    def __init__(self, channels: int, hidden: int, layers: int, bidirectional: bool):
        super().__init__()
        self.gru = nn.GRU(channels, hidden, num_layers=layers, batch_first=True,
                          bidirectional=bidirectional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.transpose(1, 2))  # (B, C, L) -> (B, L, C) -> (B, L, dirs * hidden)
        return out.flatten(1)  # every step's state feeds the head, as in the MNIST-1D paper


@MODELS.register("gru")
class GRU(_Head):
    """GRU over a signal's length (bidirectional by default); a linear head reads the
    states of all steps (the MNIST-1D paper's GRU: hidden 6, bidirectional)."""

    def __init__(self, meta: DatasetMeta, hidden: int = 6, layers: int = 1, bidirectional: bool = True):
        super().__init__()
        self.task, self.target_shape = meta.task, meta.target_shape
        if len(meta.input_shape) != 2:
            raise ValueError(f"gru needs (C, L) signals; dataset '{meta.name}' has shape "
                             f"{meta.input_shape}. Use model.name=mlp or cnn")
        channels, length = meta.input_shape
        self.body = _GRUBody(channels, hidden, layers, bidirectional)
        self.head = nn.Linear(length * hidden * (2 if bidirectional else 1), _out_dim(meta))
