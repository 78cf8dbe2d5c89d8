"""Models from the ecosystem by name (optional extras, imported only when a config names
them): `model: {name: timm, arch: resnet18}` and `model: {name: torchvision, arch: resnet18}`.
The dataset's metadata reaches the constructor: classes from `meta.num_classes`, input
channels from `meta.channels`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from runlab.data.base import DatasetMeta
from runlab.data.ecosystem import require
from runlab.errors import ConfigError
from runlab.models.classifiers import _out_dim
from runlab.registry import MODELS


@MODELS.register("timm")
def timm_model(meta: DatasetMeta, arch: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Any timm architecture (`arch`), with in_chans and num_classes from the dataset;
    other keys go to timm.create_model. Needs runlab[timm]."""
    timm = require("timm", "timm", f"model.name=timm (arch {arch})")
    if not timm.is_model(arch):
        raise ConfigError(f"model.arch: timm has no architecture {arch!r}. "
                          "List them with timm.list_models()")
    return timm.create_model(arch, pretrained=pretrained, in_chans=meta.channels,
                             num_classes=_out_dim(meta), **kwargs)


@MODELS.register("torchvision")
def torchvision_model(meta: DatasetMeta, arch: str, weights: str | None = None,
                      **kwargs: Any) -> nn.Module:
    """A torchvision.models architecture (`arch`, e.g. resnet18) with num_classes from the
    dataset; needs 3-channel input. Needs runlab[vision]."""
    models = require("torchvision.models", "vision", f"model.name=torchvision (arch {arch})")
    if meta.channels != 3:
        raise ConfigError(f"model.arch: torchvision's {arch} takes 3-channel images, but dataset "
                          f"'{meta.name}' has input shape {meta.input_shape}. Use model.name=timm "
                          "(it adapts in_chans) or a runlab model")
    try:
        return models.get_model(arch, weights=weights, num_classes=_out_dim(meta), **kwargs)
    except ValueError as e:
        raise ConfigError(f"model.arch: {e}") from None
