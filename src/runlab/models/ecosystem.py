"""Models from the ecosystem by name (optional extras, imported only when a config names
them): `model: {name: timm, arch: resnet18}` and `model: {name: torchvision, arch: resnet18}`.
The dataset's metadata reaches the constructor: classes from `meta.num_classes` (or the
target size), input channels from `meta.channels` (timm's `in_chans`; for torchvision the
first convolution is rebuilt for the dataset's channels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.data.ecosystem import require
from runlab.errors import ConfigError, did_you_mean
from runlab.models.classifiers import _out_dim
from runlab.registry import MODELS


def _need_images(meta: DatasetMeta, what: str) -> None:
    if len(meta.input_shape) != 3:
        raise ConfigError(f"model.arch: {what} takes images (C, H, W), but dataset '{meta.name}' "
                          f"has input shape {meta.input_shape}. Use a runlab model (mlp, cnn, gru)")


def _unknown_arch(library: str, arch: str, names: list[str], listing: str) -> ConfigError:
    return ConfigError(f"model.arch: {library} has no architecture {arch!r}."
                       f"{did_you_mean(arch, names, n=3)} List them with {listing}")


def checked(model: nn.Module, meta: DatasetMeta, what: str, hint: str) -> nn.Module:
    """The model, once it has taken two zero inputs of the dataset's shape (eval mode, no
    gradient, so nothing in it changes): an architecture with a fixed or minimum input size
    fails here, before a run folder exists, instead of at the first step."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *meta.input_shape))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise ConfigError(f"model: {what} cannot take inputs of shape {meta.input_shape} (dataset "
                          f"'{meta.name}'): {type(e).__name__}: {str(e).rstrip('.')}. {hint}") from None
    finally:
        model.train(was_training)
    return model


@MODELS.register("timm")
def timm_model(meta: DatasetMeta, arch: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Any timm architecture (`arch`), with in_chans and num_classes from the dataset;
    other keys go to timm.create_model. Needs runlab[timm]."""
    timm = require("timm", "timm", f"model.name=timm (arch {arch})")
    if not timm.is_model(arch):
        raise _unknown_arch("timm", arch, timm.list_models(), "timm.list_models()")
    _need_images(meta, f"timm's {arch}")
    try:
        model = timm.create_model(arch, pretrained=pretrained, in_chans=meta.channels,
                                  num_classes=_out_dim(meta), **kwargs)
    except OSError as e:  # huggingface_hub's offline / not-cached errors are OSErrors
        raise ConfigError(f"model.pretrained: fetching the weights of timm's {arch} failed "
                          f"({type(e).__name__}: {e}). Offline, fill the Hugging Face cache "
                          "(HF_HOME) where there is a network, or set pretrained: false") from None
    return checked(model, meta, f"timm's {arch}", "Architectures built for one image size take "
                   "it as model.img_size (and model.patch_size for ViTs), or pick another arch")


def adapt_input_conv(model: nn.Module, channels: int) -> nn.Module:
    """Rebuild the model's first Conv2d (its stem) for `channels` input channels. Pretrained
    kernels are kept: summed over the RGB channels for one channel, otherwise their mean
    repeated and scaled by 3 / channels (timm's rule), so the stem's response stays the same."""
    found = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if found is None or found[1].in_channels == channels:
        return model
    name, conv = found
    if conv.groups != 1:
        raise ConfigError(f"model.arch: the first convolution ({name}) is grouped; it cannot be "
                          f"rebuilt for {channels} input channels")
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    with torch.no_grad():
        w = conv.weight
        new.weight.copy_(w.sum(1, keepdim=True) if channels == 1 else
                         w.mean(1, keepdim=True).repeat(1, channels, 1, 1) * (3 / channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, new)
    return model


def _replace_head(model: nn.Module, out_dim: int) -> nn.Module:
    """Swap the last Linear layer (the classifier of torchvision's architectures) for a fresh
    one with `out_dim` outputs (pretrained weights come with ImageNet's 1000 classes)."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ConfigError("model.weights: this architecture has no Linear classifier to replace "
                          f"for {out_dim} outputs; train it from scratch (weights: null)")
    name, head = found[-1]
    if head.out_features != out_dim:
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr,
                nn.Linear(head.in_features, out_dim, bias=head.bias is not None))
    return model


def _tv_weights(models: Any, arch: str, weights: str) -> Any:
    """The weights enum member `weights` (a name such as IMAGENET1K_V1, or DEFAULT) of `arch`."""
    enum = models.get_model_weights(arch)
    names = [w.name for w in enum]
    if weights == "DEFAULT":
        return enum.DEFAULT
    if weights not in names:
        raise ConfigError(f"model.weights: torchvision's {arch} has no weights {weights!r}; "
                          f"choose from DEFAULT, {', '.join(names)}, or null (train from scratch)")
    return enum[weights]


@MODELS.register("torchvision")
def torchvision_model(meta: DatasetMeta, arch: str, weights: str | None = None,
                      **kwargs: Any) -> nn.Module:
    """A torchvision.models classification architecture (`arch`, e.g. resnet18): num_classes
    from the dataset, the first convolution rebuilt for its channels; `weights` (DEFAULT,
    IMAGENET1K_V1, ...) loads pretrained weights through torch.hub's cache and replaces the
    classifier. Needs runlab[vision]."""
    models = require("torchvision.models", "vision", f"model.name=torchvision (arch {arch})")
    names = models.list_models(module=models)  # classification only (not detection, video, ...)
    if arch not in names:
        raise _unknown_arch("torchvision.models (classification)", arch, names,
                            "torchvision.models.list_models(module=torchvision.models)")
    _need_images(meta, f"torchvision's {arch}")
    w = None if weights is None else _tv_weights(models, arch, weights)
    try:
        if w is None:
            model = models.get_model(arch, weights=None, num_classes=_out_dim(meta), **kwargs)
        else:
            model = _replace_head(models.get_model(arch, weights=w, **kwargs), _out_dim(meta))
    except ValueError as e:
        raise ConfigError(f"model: building torchvision's {arch} failed: {e}") from None
    except OSError as e:  # urllib's offline errors
        import torch.hub

        target = Path(torch.hub.get_dir()) / "checkpoints" / w.url.rsplit("/", 1)[1]
        raise ConfigError(f"model.weights: fetching {w} for torchvision's {arch} failed "
                          f"({type(e).__name__}: {e}). Offline, download {w.url} elsewhere and "
                          f"put it at {target} (TORCH_HOME moves it), or set weights: null") from None
    return checked(adapt_input_conv(model, meta.channels), meta, f"torchvision's {arch}",
                   "Architectures built for one image size take it as model.image_size, or "
                   "pick another arch")
