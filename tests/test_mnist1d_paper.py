"""The MNIST-1D paper configs (configs/mnist1d_paper) build the paper's models
(greydanus/mnist1d notebooks/models.py), and the model options they need (`cnn.padding`,
`mlp.residual`) do what they say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from runlab.config import ConfigError, load_config, validate_config
from runlab.data.base import DatasetMeta
from runlab.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "mnist1d_paper"
MNIST1D = DatasetMeta("mnist1d", (1, 40), 10, "classification")


def build(config: str, *overrides: str) -> torch.nn.Module:
    cfg = load_config(CONFIGS / config, list(overrides))
    validate_config(cfg)
    params = {k: v for k, v in cfg["model"].items() if k != "name"}
    return MODELS.get(cfg["model"]["name"]).obj(meta=MNIST1D, **params)


@pytest.mark.parametrize("config, params", [("logistic.yaml", 410), ("mlp.yaml", 15_210),
                                            ("cnn.yaml", 5_210), ("gru.yaml", 5_134)])
def test_paper_configs_have_the_papers_parameter_counts(config, params):
    model = build(config)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model(torch.randn(3, 1, 40)).shape == (3, 10)


def test_paper_training_setup():
    """base.yaml: 4,000 train / 1,000 test (mnist1d's own split, no validation split),
    Adam lr 1e-2 without weight decay, batch 100, 8,000 steps."""
    cfg = load_config(CONFIGS / "cnn.yaml")
    data = cfg["data"]
    assert (data["num_samples"], data["random_state"]) == (5000, 42)
    assert data["val_fraction"] == data["test_fraction"] == 0.0
    assert cfg["optimizer"] == {"name": "adam", "lr": 1.0e-2, "weight_decay": 0.0}
    assert cfg["scheduler"] is None
    assert cfg["trainer"]["max_epochs"] * 4000 // data["batch_size"] == 8000


def test_paper_cnn_pads_like_the_paper():
    """The paper's ConvBase pads every convolution by 1: 40 -> 19 -> 10 -> 5."""
    model = build("cnn.yaml")
    assert model.body.shapes == [(1, 40), (25, 19), (25, 10), (25, 5)]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [(5, 2, 1), (3, 2, 1),
                                                                            (3, 2, 1)]


def test_cnn_padding_defaults_to_half_the_kernel_and_takes_one_per_layer():
    def shapes(**params):
        return MODELS.get("cnn").obj(MNIST1D, channels=[4, 4], hidden=0, **params).body.shapes[1:]

    assert shapes(kernel_size=[5, 3]) == [(4, 20), (4, 10)]
    assert shapes(kernel_size=[5, 3], padding=[0, 2]) == [(4, 18), (4, 10)]
    assert shapes(kernel_size=3, padding=0) == [(4, 19), (4, 9)]
    with pytest.raises(ValueError, match="padding: got 3 values for 2 conv layers"):
        shapes(padding=[1, 1, 1])
    with pytest.raises(ValueError, match="padding: got -1; each must be >= 0"):
        shapes(padding=-1)


def test_cnn_padding_of_the_wrong_type_is_a_config_error():
    with pytest.raises(ConfigError, match="model.padding: expected"):
        build("cnn.yaml", "model.padding=same")


def test_residual_mlp_computes_the_papers_forward():
    """The paper's MLPBase: h = relu(W1 x); h = h + relu(W2 h); out = W3 h."""
    model = build("mlp.yaml")
    (l1, l2), head = [m for m in model.body.modules() if isinstance(m, torch.nn.Linear)], model.head
    x = torch.randn(5, 1, 40)
    h = torch.relu(l1(x.flatten(1)))
    expected = head(h + torch.relu(l2(h)))
    torch.testing.assert_close(model(x), expected)


def test_residual_wraps_only_layers_that_keep_the_width():
    mlp = MODELS.get("mlp").obj
    model = mlp(MNIST1D, hidden=[8, 8, 6, 6], residual=True)
    wrapped = [m for m in model.modules() if type(m).__name__ == "Residual"]
    widths = [[lin.in_features for lin in r.modules() if isinstance(lin, torch.nn.Linear)]
              for r in wrapped]
    assert widths == [[8], [6]]  # 40->8 and 8->6 change the width: plain
    plain = mlp(MNIST1D, hidden=[8, 8, 6, 6])
    assert not [m for m in plain.modules() if type(m).__name__ == "Residual"]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
