"""The CIFAR ResNet of He et al. (2016, section 4.2): a 3x3 stem, three stages of 2-conv
basic blocks (widths w, 2w, 4w; stride 2 between stages), global average pooling and a
linear head. depth = 6n + 2 (20, 32, 44, 56, 110). 1-D signals get the same network with
1-D convolutions."""

from __future__ import annotations

import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.models.blocks import conv_cls
from runlab.models.classifiers import _Head, _out_dim
from runlab.registry import MODELS


class BasicBlock(nn.Module):
    def __init__(self, ndim: int, c_in: int, c_out: int, stride: int):
        super().__init__()
        conv, bn = conv_cls(ndim), {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[ndim]
        self.conv1, self.bn1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False), bn(c_out)
        self.conv2, self.bn2 = conv(c_out, c_out, 3, padding=1, bias=False), bn(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            conv(c_in, c_out, 1, stride=stride, bias=False), bn(c_out))  # projection (option B)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


@MODELS.register("resnet")
class ResNet(_Head):
    """CIFAR ResNet (He et al. 2016): depth 6n+2, stage widths width, 2*width, 4*width."""

    def __init__(self, meta: DatasetMeta, depth: int = 20, width: int = 16):
        super().__init__()
        self.task, self.target_shape = meta.task, meta.target_shape
        if len(meta.input_shape) not in (2, 3):
            raise ValueError(f"resnet needs (C, L) or (C, H, W) inputs; dataset '{meta.name}' has "
                             f"shape {meta.input_shape}. Use model.name=mlp for flat inputs")
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth: expected 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        ndim, n = len(meta.input_shape) - 1, (depth - 2) // 6
        conv, bn = conv_cls(ndim), {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[ndim]
        layers: list[nn.Module] = [conv(meta.input_shape[0], width, 3, padding=1, bias=False),
                                   bn(width), nn.ReLU()]
        c = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                layers.append(BasicBlock(ndim, c, c_out, 2 if stage and i == 0 else 1))
                c = c_out
        pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}[ndim](1)
        self.body = nn.Sequential(*layers, pool, nn.Flatten())  # (B, 4 * width)
        self.head = nn.Linear(c, _out_dim(meta))
