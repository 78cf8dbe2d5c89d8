"""Supervised models: linear, mlp, cnn. Output: logits (classification) or values (regression)."""

from __future__ import annotations

import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.models.blocks import ConvEncoder, mlp
from runlab.registry import MODELS


def _out_dim(meta: DatasetMeta) -> int:
    if meta.task == "classification":
        if not meta.num_classes:
            raise ValueError(f"dataset '{meta.name}' is a classification task without num_classes")
        return meta.num_classes
    n = 1
    for s in meta.target_shape:
        n *= s
    return n


class _Head(nn.Module):
    """Shared `forward`/`features` for models that are a body plus a linear head."""

    body: nn.Module
    head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, D) penultimate features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return out if self.task == "classification" else out.view(len(x), *self.target_shape)


@MODELS.register("linear")
class Linear(_Head):
    """Logistic (or linear) regression on the flattened input."""

    def __init__(self, meta: DatasetMeta):
        super().__init__()
        self.task, self.target_shape = meta.task, meta.target_shape
        self.body = nn.Flatten()
        self.head = nn.Linear(meta.input_dim, _out_dim(meta))


@MODELS.register("mlp")
class MLP(_Head):
    """Multi-layer perceptron on the flattened input. `residual`: each hidden layer as wide
    as the one before adds its input, `h + act(W h)` (the MNIST-1D paper's MLP)."""

    def __init__(self, meta: DatasetMeta, hidden: list[int] = (256, 128), activation: str = "relu",
                 dropout: float = 0.0, batchnorm: bool = False, residual: bool = False):
        super().__init__()
        self.task, self.target_shape = meta.task, meta.target_shape
        hidden = list(hidden)
        self.body = nn.Sequential(
            nn.Flatten(), mlp([meta.input_dim, *hidden], activation, dropout, batchnorm,
                              final_act=True, residual=residual)
        )
        self.head = nn.Linear(hidden[-1] if hidden else meta.input_dim, _out_dim(meta))


@MODELS.register("cnn")
class CNN(_Head):
    """Stride-2 convolutions (1-D for signals, 2-D for images; `kernel_size` and `padding`
    one for all or one per layer, padding null: `kernel_size // 2`), then an MLP head
    (`hidden` units; 0: a linear head on the conv features)."""

    def __init__(self, meta: DatasetMeta, channels: list[int] = (32, 64), kernel_size: int | list[int] = 5,
                 hidden: int = 128, activation: str = "relu", dropout: float = 0.0,
                 batchnorm: bool = False, padding: int | list[int] | None = None):
        super().__init__()
        self.task, self.target_shape = meta.task, meta.target_shape
        if len(meta.input_shape) not in (2, 3):
            raise ValueError(
                f"cnn needs (C, L) or (C, H, W) inputs; dataset '{meta.name}' has shape "
                f"{meta.input_shape}. Use model.name=mlp for flat inputs"
            )
        enc = ConvEncoder(meta.input_shape, list(channels), kernel_size, activation, batchnorm, padding)
        if hidden:
            self.body = nn.Sequential(enc, mlp([enc.out_dim, hidden], activation, dropout, final_act=True))
        else:  # hidden: 0 puts the linear head right on the conv features (the MNIST-1D paper's CNN)
            self.body = enc
        self.head = nn.Linear(hidden or enc.out_dim, _out_dim(meta))
