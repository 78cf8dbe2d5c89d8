"""data.transforms against the dataset's sample shape (what the model is built for): a
pipeline that fails on it or changes it is reported before the run, naming the key."""

from __future__ import annotations

import pytest

from runlab.data.transforms import shape_problems
from runlab_testing import importable


def test_shape_keeping_transforms_pass():
    t = {"train": [{"name": "random_crop", "padding": 2}, {"name": "horizontal_flip"},
                   {"name": "normalize", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}],
         "eval": [{"name": "normalize", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}]}
    assert shape_problems(t, (3, 8, 8)) == []
    assert shape_problems(None, (3, 8, 8)) == []


def test_per_channel_normalize_for_other_channels_is_named():
    t = {"eval": [{"name": "normalize", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}]}
    (problem,) = shape_problems(t, (1, 28, 28))
    assert problem == ("data.transforms.eval: applying it to samples of shape (1, 28, 28) failed: "
                       "ValueError: normalize: mean has 3 values but the samples have 1 channels")


@pytest.mark.skipif(not importable("torchvision"),
                    reason="torchvision does not import here (not installed, or built for another torch)")
def test_resizing_transform_is_named():
    t = {"train": [{"name": "torchvision.RandomResizedCrop", "size": [24, 24]}],
         "eval": [{"name": "torchvision.CenterCrop", "size": [28, 28]}]}
    (problem,) = shape_problems(t, (1, 28, 28))
    assert "data.transforms.train: turns samples of shape (1, 28, 28) into (1, 24, 24)" in problem
    assert "data.image_size" in problem


def test_runlab_train_refuses_such_a_pipeline_before_any_run_folder(tmp_path):
    import yaml

    from runlab_testing import run_cli, tiny_config

    cfg = tiny_config(tmp_path, data={"name": "digits", "transforms": {
        "eval": [{"name": "normalize", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}]}})
    del cfg["data"]["n_samples"]  # a moons key
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "data.transforms.eval" in out.stderr and "3 values but the samples have 1 channels" in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("run.json"))
