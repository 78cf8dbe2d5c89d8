"""Building blocks shared by the built-in models."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU,
               "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; available: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: list[int], act: str = "relu", dropout: float = 0.0, batchnorm: bool = False,
        final_act: bool = False) -> nn.Sequential:
    """Linear layers between consecutive `sizes`, activations between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_act:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(activation(act))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def conv_cls(ndim: int, transpose: bool = False) -> type[nn.Module]:
    if ndim not in (1, 2):
        raise ValueError(f"conv models take 1-D (C, L) or 2-D (C, H, W) inputs, got {ndim}-D")
    return {1: nn.Conv1d, 2: nn.Conv2d}[ndim]


class ConvEncoder(nn.Module):
    """Stride-2 convolutions; records the feature-map shapes for a mirrored decoder."""

    def __init__(self, input_shape: tuple[int, ...], channels: list[int],
                 kernel_size: int | list[int] = 3, act: str = "relu", batchnorm: bool = False):
        super().__init__()
        ndim = len(input_shape) - 1
        conv = conv_cls(ndim)
        bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[ndim]
        kernels = list(kernel_size) if isinstance(kernel_size, (list, tuple)) else [kernel_size] * len(channels)
        if len(kernels) != len(channels):
            raise ValueError(f"kernel_size: got {len(kernels)} sizes for {len(channels)} conv layers")
        layers: list[nn.Module] = []
        c_in = input_shape[0]
        for c, k in zip(channels, kernels):
            layers.append(conv(c_in, c, k, stride=2, padding=k // 2))
            if batchnorm:
                layers.append(bn(c))
            layers.append(activation(act))
            c_in = c
        self.net = nn.Sequential(*layers)
        shapes = [tuple(input_shape)]
        self.net.eval()  # shape inference only: BatchNorm must not count this batch
        with torch.no_grad():  # consumes no randomness
            h = torch.zeros(1, *input_shape)
            for layer in self.net:
                h = layer(h)
                if isinstance(layer, conv):
                    shapes.append(tuple(h.shape[1:]))
        self.net.train()
        self.shapes = shapes  # input shape, then each conv output (C, *spatial)
        self.out_dim = int(torch.tensor(shapes[-1]).prod())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)  # (B, C*L) or (B, C*H*W)


class ConvDecoder(nn.Module):
    """Mirror of a ConvEncoder: linear -> feature map -> (upsample, conv) per level."""

    def __init__(self, in_dim: int, shapes: list[tuple[int, ...]], kernel_size: int = 3,
                 act: str = "relu"):
        super().__init__()
        ndim = len(shapes[0]) - 1
        conv = conv_cls(ndim)
        self.top = tuple(shapes[-1])
        self.fc = nn.Linear(in_dim, int(torch.tensor(self.top).prod()))
        layers: list[nn.Module] = []
        for i in range(len(shapes) - 1, 0, -1):
            target = shapes[i - 1]
            layers.append(nn.Upsample(size=tuple(target[1:]), mode="nearest"))
            layers.append(conv(shapes[i][0], target[0], kernel_size, padding=kernel_size // 2))
            if i > 1:
                layers.append(activation(act))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(len(z), *self.top))
