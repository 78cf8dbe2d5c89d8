"""TensorBoardWriter, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from runlab.errors import ConfigError
from runlab.logging.tensorboard import TensorBoardWriter

EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator"
).EventAccumulator
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")


def read_back(log_dir: Path):
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_images_figures_histograms_text_hparams(tmp_path: Path) -> None:
    writer = TensorBoardWriter(tmp_path / "tb")
    for step in (0, 10, 20):
        writer.write_scalars(step, {"train/loss": 1.0 / (step + 1), "lr": 1e-3}, epoch=step // 10)
    image = np.zeros((8, 12, 3), dtype=np.uint8)
    image[..., 0] = 255
    writer.write_image(20, "samples", image)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    writer.write_figure(20, "diag/curve", fig)
    assert plt.fignum_exists(fig.number)  # the caller owns the figure
    plt.close(fig)
    writer.write_histogram(20, "weights", np.random.default_rng(0).normal(size=100))
    writer.write_text(0, "config", "model: mlp")
    writer.write_hparams({"optimizer.lr": 1e-3, "model.hidden": [8, 8]}, {"train/loss": 0.05})
    writer.close()

    acc = read_back(tmp_path / "tb")
    tags = acc.Tags()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [0, 10, 20]
    assert [e.value for e in loss] == pytest.approx([1.0, 1 / 11, 1 / 21])
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([1e-3] * 3)
    assert set(tags["images"]) == {"samples", "diag/curve"}
    (img,) = acc.Images("samples")
    assert (img.step, img.width, img.height) == (20, 12, 8)
    assert img.encoded_image_string.startswith(b"\x89PNG")
    assert acc.Images("diag/curve")[0].step == 20
    assert "weights" in tags["histograms"]
    assert "config/text_summary" in tags["tensors"]

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["optimizer.lr"].number_value == pytest.approx(1e-3)
    assert hp["model.hidden"].string_value == "[8, 8]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert [m.name.tag for m in experiment.experiment.metric_infos] == ["train/loss"]


def test_missing_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"pip install 'runlab\[tensorboard\]'"):
        TensorBoardWriter(tmp_path)
