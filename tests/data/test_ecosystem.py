"""Ecosystem sources: Hugging Face datasets from local files and folders (real `datasets`),
and clear exit-2 messages for extras that are not installed or do not import. torchvision and
timm themselves: tests/data/test_ecosystem_vision.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from runlab.config import fill_defaults
from runlab.data.loader import make_loader
from runlab.errors import ConfigError
from runlab.train.build import build_model_and_loss, build_splits
from runlab_testing import importable, run_cli


def data_cfg(tmp_path, **data):
    return fill_defaults({"data": {"root": str(tmp_path), **data}, "model": {"name": "mlp"}})["data"]


@pytest.mark.slow  # imports `datasets` in a CLI subprocess: ~10-25 s on the shared machine
def test_hf_csv_file_trains_through_the_cli(tmp_path):
    pytest.importorskip("datasets")
    g = np.random.default_rng(0)
    x = g.normal(size=(60, 2))
    rows = "\n".join(f"{a:.5f},{b:.5f},{int(a + b > 0)}" for a, b in x)
    (tmp_path / "table.csv").write_text("f0,f1,label\n" + rows + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"name": "hf", "path": "table.csv", "x_key": ["f0", "f1"], "root": str(tmp_path),
                 "batch_size": 16},
        "model": {"name": "mlp", "hidden": [8]}, "trainer": {"max_epochs": 2, "device": "cpu"},
        "logging": {"console": False}}))
    r = run_cli("train", str(cfg), "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    (run,) = (tmp_path / "runs" / "manual").iterdir()
    assert "test/acc" in json.loads((run / "run.json").read_text())["summary"]


def test_hf_saved_image_dataset_gives_chw_images_and_class_names(tmp_path):
    ds = pytest.importorskip("datasets")
    g = np.random.default_rng(0)
    features = ds.Features({"img": ds.Image(), "label": ds.ClassLabel(names=["a", "b", "c"])})
    records = {"img": [g.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(30)],
               "label": [i % 3 for i in range(30)]}
    ds.DatasetDict({"train": ds.Dataset.from_dict(records, features=features),
                    "test": ds.Dataset.from_dict({k: v[:6] for k, v in records.items()}, features=features),
                    }).save_to_disk(str(tmp_path / "imgs"))
    splits = build_splits(data_cfg(tmp_path, name="hf", path="imgs", x_key="img", test_split="test"))
    meta = splits.meta
    assert meta.input_shape == (3, 6, 5) and meta.num_classes == 3 and meta.class_names == ("a", "b", "c")
    assert len(splits.train) + len(splits.val) == 30 and len(splits.test) == 6
    x, y = next(iter(make_loader(splits.test, 4, kind="auto", shuffle=False, seed=0,
                                 device=torch.device("cpu")).epoch()))
    expected = torch.tensor(records["img"][1].transpose(2, 0, 1) / 255.0, dtype=torch.float32)
    assert x.shape == (4, 3, 6, 5) and torch.allclose(x[1], expected) and y.tolist() == [0, 1, 2, 0]
    model = build_model_and_loss(fill_defaults({"data": {"name": "hf"}, "model": {"name": "cnn", "channels": [4]}}),
                                 meta).model
    assert model(x).shape == (4, 3)  # channels and classes reached the constructor


def test_hf_missing_column_names_the_columns(tmp_path):
    pytest.importorskip("datasets")
    (tmp_path / "t.csv").write_text("a,label\n1,0\n2,1\n")
    with pytest.raises(ConfigError, match=r"has no column\(s\) \['image'\].*Columns: a, label"):
        build_splits(data_cfg(tmp_path, name="hf", path="t.csv"))


def test_missing_extra_exits_2_before_a_run_folder(tmp_path):
    if importable("timm"):
        pytest.skip("timm imports here; the message is for machines without it")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"name": "synthetic_images", "n_samples": 40, "n_test": 0, "root": str(tmp_path)},
        "model": {"name": "timm", "arch": "resnet18"}, "trainer": {"device": "cpu"},
        "logging": {"console": False}}))
    r = run_cli("train", str(cfg), "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    assert "model.name=timm (arch resnet18) needs the optional package 'timm'" in r.stderr
    assert "pip install 'runlab[timm]'" in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("section,value,module,extra", [
    ("model", {"name": "torchvision", "arch": "resnet18"}, "torchvision.models", "vision"),
    ("data", {"name": "torchvision", "dataset": "CIFAR100"}, "torchvision.datasets", "vision"),
])
def test_missing_extras_name_the_extra(tmp_path, section, value, module, extra):
    if importable(module):
        pytest.skip(f"{module} imports here; the message is for machines without it")
    with pytest.raises(ConfigError) as e:
        if section == "data":
            build_splits(data_cfg(tmp_path, **value))
        else:
            from runlab.data.base import DatasetMeta

            build_model_and_loss(fill_defaults({"data": {"name": "x"}, "model": value}),
                                 DatasetMeta("m", (3, 8, 8), 4))
    assert f"pip install 'runlab[{extra}]'" in str(e.value) and "'torchvision'" in str(e.value)
