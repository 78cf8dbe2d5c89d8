"""Bad datasets are refused before the run: exit 2 naming the dataset and the mismatch, no
run folder; a crafted CIFAR-10 pickle runs no code."""

from __future__ import annotations

import pickle
import textwrap

import numpy as np
import pytest
import torch

from runlab.data.base import DatasetMeta, RawData, TorchData
from runlab.data.checks import check_dataset
from runlab.errors import ConfigError
from runlab_testing import run_cli

META = DatasetMeta("bad", (1, 4), 3)


def raw(x=None, y=None, **kw):
    x = torch.zeros(6, 1, 4) if x is None else x
    y = torch.arange(6) % 3 if y is None else y
    return RawData(x, y, kw.pop("meta", META), **kw)


class Items(torch.utils.data.Dataset):
    def __init__(self, item):
        self.item = item

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return self.item


@pytest.mark.parametrize("out,expected", [
    (raw(x=np.zeros((6, 1, 4), np.float32)), "x is a numpy array (dtype float32); return torch tensors"),
    (raw(x=torch.zeros(6, 4)), "x has sample shape (4,) but meta.input_shape is (1, 4)"),
    (raw(x=torch.zeros(6, 1, 4, dtype=torch.uint8)), "x has dtype torch.uint8; expected a float"),
    (raw(y=torch.arange(5)), "x holds 6 samples but y holds 5"),
    (raw(y=torch.arange(6)), "y holds labels 0..5, outside 0..2 (meta.num_classes=3)"),
    (raw(y=torch.zeros(6)), "y has dtype torch.float32; classification labels must be integers"),
    (raw(x_test=torch.zeros(2, 1, 4), y_test=torch.tensor([0, -1])), "y_test holds labels -1..0"),
    (raw(meta=DatasetMeta("bad", (1, 4))), "meta.num_classes is None"),
    (TorchData(Items((torch.zeros(1, 5), 0)), META), "train[0] x has sample shape (1, 5)"),
    (TorchData(Items((torch.zeros(1, 4), 7)), META), "train[0] y holds labels 7..7, outside 0..2"),
    (TorchData(Items(torch.zeros(1, 4)), META), "train[0] is a Tensor; each sample must be an (x, y) pair"),
    (TorchData(Items((np.zeros((1, 4)), 1)), META), "train[0] x is a numpy array"),
    ((torch.zeros(6, 1, 4), torch.zeros(6)), "must return runlab.data.RawData or runlab.data.TorchData"),
])
def test_check_names_dataset_and_mismatch(out, expected):
    with pytest.raises(ConfigError) as e:
        check_dataset("bad", out)
    assert expected in str(e.value) and "dataset 'bad'" in str(e.value)


def test_good_datasets_pass():
    check_dataset("ok", raw())
    check_dataset("ok", TorchData(Items((torch.zeros(1, 4), 2)), META, test=Items((torch.ones(1, 4), 0))))


PLUGIN = '''
import numpy as np
import torch
from runlab.data import DatasetMeta, RawData, TorchData
from runlab.registry import DATASETS


@DATASETS.register("numpy_arrays")
def numpy_arrays(root):
    x = np.zeros((40, 2), np.float32)
    return RawData(x, torch.zeros(40, dtype=torch.long), DatasetMeta("numpy_arrays", (2,), 2))


class Labels(torch.utils.data.Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        return torch.zeros(2), i % 5


@DATASETS.register("labels_out_of_range")
def labels_out_of_range(root):
    return TorchData(Labels(), DatasetMeta("labels_out_of_range", (2,), 3))
'''


def config(tmp_path, data: str) -> str:
    plugin = tmp_path / "bad_data.py"
    plugin.write_text(PLUGIN)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent(f"""
        plugins: [{plugin}]
        data: {{{data}, root: {tmp_path / 'data'}}}
        model: {{name: mlp, hidden: [4]}}
        trainer: {{max_epochs: 1, device: cpu}}
        logging: {{console: false}}
    """))
    return str(cfg)


@pytest.mark.parametrize("data,expected", [
    ("name: numpy_arrays", "data: dataset 'numpy_arrays': x is a numpy array (dtype float32)"),
    ("name: labels_out_of_range",
     "data: dataset 'labels_out_of_range': train[13] y holds labels 3..3, outside 0..2"),
])
def test_bad_dataset_exits_2_before_a_run_folder(tmp_path, data, expected):
    r = run_cli("train", config(tmp_path, data), "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


class Exploit:
    """Unpickling this would run `touch <marker>`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_crafted_cifar_pickle_runs_no_code(tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({"data": Exploit(marker), "labels": [0]}, protocol=2))
    r = run_cli("train", config(tmp_path, "name: cifar10, download: false"),
                "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    assert "data_batch_1 is not a valid dataset pickle" in r.stderr
    assert "refusing to load posix.system" in r.stderr
    assert not marker.exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
