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


class Residual(nn.Module):
    """`x + block(x)`: a skip connection around a block that keeps the width."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def mlp(sizes: list[int], act: str = "relu", dropout: float = 0.0, batchnorm: bool = False,
        final_act: bool = False, residual: bool = False) -> nn.Sequential:
    """Linear layers between consecutive `sizes`, activations between them. `residual`:
    a layer that keeps the width and ends in an activation becomes `h + layer(h)`
    (the MNIST-1D paper's MLP: `h + relu(W h)`)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        block: list[nn.Module] = [nn.Linear(a, b)]
        activated = i < len(sizes) - 2 or final_act
        if activated:
            if batchnorm:
                block.append(nn.BatchNorm1d(b))
            block.append(activation(act))
            if dropout > 0:
                block.append(nn.Dropout(dropout))
        if residual and activated and a == b:
            layers.append(Residual(nn.Sequential(*block)))
        else:
            layers += block
    return nn.Sequential(*layers)


def conv_cls(ndim: int, transpose: bool = False) -> type[nn.Module]:
    if ndim not in (1, 2):
        raise ValueError(f"conv models take 1-D (C, L) or 2-D (C, H, W) inputs, got {ndim}-D")
    return {1: nn.Conv1d, 2: nn.Conv2d}[ndim]


def per_layer(name: str, value: int | list[int], n: int) -> list[int]:
    """One value for every layer, or a list with one per layer."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{name}: got {len(values)} values for {n} conv layers")
    return values


class ConvEncoder(nn.Module):
    """Stride-2 convolutions; records the feature-map shapes for a mirrored decoder.
    `padding` (one for all layers or one per layer; None: `kernel_size // 2` each)."""

    def __init__(self, input_shape: tuple[int, ...], channels: list[int],
                 kernel_size: int | list[int] = 3, act: str = "relu", batchnorm: bool = False,
                 padding: int | list[int] | None = None):
        super().__init__()
        ndim = len(input_shape) - 1
        conv = conv_cls(ndim)
        bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[ndim]
        kernels = per_layer("kernel_size", kernel_size, len(channels))
        pads = [k // 2 for k in kernels] if padding is None else per_layer("padding", padding, len(channels))
        if any(p < 0 for p in pads):
            raise ValueError(f"padding: got {padding!r}; each must be >= 0")
        layers: list[nn.Module] = []
        c_in = input_shape[0]
        for c, k, pad in zip(channels, kernels, pads):
            layers.append(conv(c_in, c, k, stride=2, padding=pad))
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
