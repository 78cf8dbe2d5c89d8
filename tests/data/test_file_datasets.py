"""File-based datasets read real formats: small fake IDX files and CIFAR pickles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from data_formats import write_idx
from runlab.data.loader import MemoryLoader, TorchLoader, epoch_permutation
from runlab.errors import ConfigError
from runlab.registry import DATASETS


@pytest.mark.parametrize("name,folder", [("mnist", "mnist"), ("fashion_mnist", "fashion_mnist"),
                                         ("mnist", "MNIST/raw")])
def test_idx_datasets_read_train_and_test(tmp_path, name, folder):
    d = tmp_path / folder
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (20, 28, 28))
    write_idx(d / "train-images-idx3-ubyte", imgs, gz=True)
    write_idx(d / "train-labels-idx1-ubyte", np.arange(20) % 10)
    write_idx(d / "t10k-images-idx3-ubyte", imgs[:5])
    write_idx(d / "t10k-labels-idx1-ubyte", np.arange(5))
    raw = DATASETS.get(name).obj(root=tmp_path)
    assert raw.x.shape == (20, 1, 28, 28) and raw.x_test.shape == (5, 1, 28, 28)
    assert torch.allclose(raw.x[3, 0], torch.tensor(imgs[3] / 255.0, dtype=torch.float32))
    assert raw.y.tolist() == [i % 10 for i in range(20)]
    assert raw.meta.num_classes == 10 and raw.meta.input_shape == (1, 28, 28)


def test_missing_idx_file_names_file_place_and_source(tmp_path):
    with pytest.raises(ConfigError) as e:
        DATASETS.get("mnist").obj(root=tmp_path, download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "mnist") in msg
    assert "download: true" in msg and "https://ossci-datasets.s3.amazonaws.com/mnist/" in msg


def test_cifar10_reads_pickle_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    raw = DATASETS.get("cifar10").obj(root=tmp_path, download=False)
    assert raw.x.shape == (20, 3, 32, 32) and raw.x_test.shape == (4, 3, 32, 32)
    assert raw.meta.class_names[0] == "airplane"


def test_tensors_dataset_from_npz_and_pt(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3)
    raw = DATASETS.get("tensors").obj(root=tmp_path, path="d.npz")
    assert raw.meta.task == "classification" and raw.meta.num_classes == 3
    torch.save({"x": torch.tensor(x), "y": torch.randn(30, 2)}, tmp_path / "d.pt")
    raw = DATASETS.get("tensors").obj(root=tmp_path, path="d.pt")
    assert raw.meta.task == "regression" and raw.meta.target_shape == (2,)
    with pytest.raises(ConfigError, match="does not exist"):
        DATASETS.get("tensors").obj(root=tmp_path, path="nope.npz")


def test_memory_and_dataloader_paths_yield_the_same_batches():
    x, y = torch.randn(50, 3), torch.arange(50)
    mem = MemoryLoader(x, y, 8, shuffle=True, seed=5)
    tl = TorchLoader(torch.utils.data.TensorDataset(x, y), 8, shuffle=True, seed=5, num_workers=0)
    for epoch in (0, 3):
        a, b = list(mem.epoch(epoch)), list(tl.epoch(epoch))
        assert len(a) == len(b) == 7
        assert all(torch.equal(p[1], q[1]) for p, q in zip(a, b))
    first = torch.cat([yb for _, yb in mem.epoch(2)])
    assert torch.equal(first, epoch_permutation(50, 5, 2))
    resumed = torch.cat([yb for _, yb in mem.epoch(2, start=3)])
    assert torch.equal(resumed, first[24:])
