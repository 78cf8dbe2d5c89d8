"""From a validated config to the objects a run trains: data, model, loss, optimizer,
scheduler and scheduled hyperparameters. Errors here are config errors (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runlab.config import DATA_COMMON
from runlab.data.base import DatasetMeta, Splits
from runlab.errors import ConfigError
from runlab.hparams import ScheduledParam, split_schedules
from runlab.losses import ModelLoss, default_loss_name
from runlab.registry import DATASETS, LOSSES, MODELS

PRECISION_DTYPES = {"32": None, "16": torch.float16, "16-mixed": torch.float16,
                    "bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda > mps > cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device: got {name!r} but CUDA is not available here. Use auto or cpu")
    return dev


def build_splits(data_cfg: dict[str, Any]) -> Splits:
    from runlab.data.checks import check_dataset
    from runlab.data.loader import split

    params = {k: v for k, v in data_cfg.items() if k not in DATA_COMMON}
    entry = DATASETS.get(data_cfg["name"])
    try:
        raw = entry.obj(root=Path(data_cfg["root"]), **params)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"data: building dataset '{entry.name}' failed: {e}") from None
    check_dataset(entry.name, raw)  # shapes, dtypes, lengths, labels: exit 2 before a run folder
    return split(raw, data_cfg["val_fraction"], data_cfg["test_fraction"], data_cfg["split_seed"])


def _construct(entry_obj, key: str, name: str, **kwargs: Any) -> Any:
    try:
        return entry_obj(**kwargs)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ConfigError(f"{key}: building '{name}' failed: {e}") from None


@dataclass
class ModelAndLoss:
    model: nn.Module
    loss: nn.Module
    scheduled: list[ScheduledParam] = field(default_factory=list)


def build_model_and_loss(cfg: dict[str, Any], meta: DatasetMeta) -> ModelAndLoss:
    """Model (shapes from `meta`) and loss; schedule specs start at their step-0 value."""
    mcfg = {k: v for k, v in cfg["model"].items() if k != "name"}
    mparams, mscheds = split_schedules(mcfg)
    model = _construct(MODELS.get(cfg["model"]["name"]).obj, "model", cfg["model"]["name"],
                       meta=meta, **mparams)
    scheduled = [ScheduledParam(f"model.{k}", model, k, s) for k, s in mscheds.items()]
    lcfg = cfg.get("loss")
    if lcfg is None and callable(getattr(model, "loss", None)):
        loss: nn.Module = ModelLoss(model)
    else:
        lcfg = lcfg or {"name": default_loss_name(meta.task)}
        lparams, lscheds = split_schedules({k: v for k, v in lcfg.items() if k != "name"})
        loss = _construct(LOSSES.get(lcfg["name"]).obj, "loss", lcfg["name"], **lparams)
        scheduled += [ScheduledParam(f"loss.{k}", loss, k, s) for k, s in lscheds.items()]
    return ModelAndLoss(model, loss, scheduled)
