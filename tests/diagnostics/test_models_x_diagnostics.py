"""Smoke test over the registries: every built-in model x every diagnostic it supports."""

from __future__ import annotations

import math

import pytest
import torch

from runlab.data.base import DatasetMeta
from runlab.diagnostics import DiagnosticsCallback
from runlab.registry import DIAGNOSTICS, MODELS

from .conftest import backward_once, make_state

MNIST1D = DatasetMeta("mnist1d-like", (1, 40), num_classes=10)
DIGITS = DatasetMeta("digits-like", (1, 8, 8), num_classes=10)
ECOSYSTEM = {"timm", "torchvision"}  # optional extras: tests/data/test_ecosystem_vision.py
METAS = [MNIST1D, pytest.param(DIGITS, marks=pytest.mark.slow)]


@pytest.mark.parametrize("meta", METAS, ids=lambda m: m.name)
@pytest.mark.parametrize("diag_name", DIAGNOSTICS.names())
@pytest.mark.parametrize("model_name", [n for n in MODELS.names() if n not in ECOSYSTEM])
def test_model_supports_diagnostic(model_name, diag_name, meta):
    torch.manual_seed(0)
    try:
        model = MODELS.get(model_name).obj(meta=meta)
    except ValueError as e:  # a model for other input shapes (gru: signals only) says so
        assert model_name in str(e)
        pytest.skip(str(e))
    problems = DIAGNOSTICS.get(diag_name).obj().check(model, meta)
    if problems:
        assert all(f"'{model_name}'" in p for p in problems)  # a refusal names the model
        return
    backward_once(model, meta)
    state = make_state(model, meta, None)
    state.val_data = (state.val_data[0], state.val_data[1] % 10)
    cb = DiagnosticsCallback([{"name": diag_name, "strict": True}], None, seed=0)
    cb.on_fit_start(state)
    cb.on_epoch_end(state)
    assert state.writer.figures == [(0, f"diag/{diag_name}")]
    scalars = [v for k, v in state.pending.items() if k.startswith(f"diag/{diag_name}/")]
    assert scalars and all(math.isfinite(v) for v in scalars)
