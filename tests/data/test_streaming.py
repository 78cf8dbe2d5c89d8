"""Torch datasets and transforms: every batch, augmentation included, is a function of
(seed, epoch, batch index) alone, so any number of workers and any resume point give the
same batches."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from runlab.data.base import DatasetMeta, TorchData
from runlab.data.loader import MemoryLoader, TorchLoader, make_loader, split
from runlab.data.synthetic import GeneratedImages
from runlab.data.transforms import Pipeline, build_transforms, pipelines
from runlab.errors import ConfigError
from runlab.registry import TRANSFORMS
from runlab_testing import run_cli

AUGMENT = [{"name": "random_crop", "padding": 2}, {"name": "horizontal_flip"},
           {"name": "gaussian_noise", "std": 0.05}]


def images(n=40):
    return GeneratedImages(n, (3, 8, 8), 4, 0.3, random_state=1)


class Stream(torch.utils.data.IterableDataset):
    """An iterable dataset: the samples of `images()` in an epoch-seeded order."""

    def __init__(self, n=40):
        self.inner, self.epoch = images(n), 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        order = torch.randperm(len(self.inner), generator=torch.Generator().manual_seed(self.epoch))
        return (self.inner[int(i)] for i in order)


def batches(loader, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch, start=start)]


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("dataset", [images, Stream])
def test_batches_do_not_depend_on_workers_or_resume_point(dataset):
    tf = Pipeline(AUGMENT, seed=3)

    def loader(workers):
        return TorchLoader(dataset(), 8, shuffle=True, seed=3, num_workers=workers, transform=tf)

    ref = batches(loader(0), epoch=1)
    assert len(ref) == 5 and ref[0][0].shape == (8, 3, 8, 8)
    assert_same(batches(loader(2), epoch=1), ref)
    assert_same(batches(loader(1), epoch=1, start=2), ref[2:])
    assert not torch.equal(batches(loader(0), epoch=2)[0][0], ref[0][0])  # a new epoch differs


def test_augmentation_is_applied_and_seeded_per_batch():
    x = torch.rand(16, 3, 8, 8)
    y = torch.arange(16)
    tf = Pipeline(AUGMENT, seed=0)
    plain = batches(MemoryLoader(x, y, 4, shuffle=False), 0)
    aug = batches(MemoryLoader(x, y, 4, shuffle=False, transform=tf), 0)
    assert all(not torch.equal(a[0], p[0]) for a, p in zip(aug, plain))
    assert_same(batches(MemoryLoader(x, y, 4, shuffle=False, transform=tf), 0, start=1), aug[1:])
    # the in-memory path and the DataLoader path apply the same augmentation on CPU
    through_workers = make_loader((x, y), 4, kind="dataloader", shuffle=False, seed=0,
                                  device=torch.device("cpu"), num_workers=0, transform=tf)
    assert_same(batches(through_workers, 0), aug)


def test_random_crop_takes_a_shifted_window_of_the_padded_input():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    (crop,) = build_transforms([{"name": "random_crop", "padding": 1}], "t")
    g = torch.Generator().manual_seed(0)
    out = crop(x, g)
    offsets = torch.randint(0, 3, (2, 2), generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 5])
    signal = torch.arange(6, dtype=torch.float32).view(1, 1, 6)  # (B, C, L) signals too
    assert crop(signal, g).shape == (1, 1, 6)


def test_flip_and_normalize():
    x = torch.rand(3, 2, 4, 4)
    flip, norm = build_transforms([{"name": "horizontal_flip", "p": 1.0},
                                   {"name": "normalize", "mean": [0.5, 0.0], "std": [0.5, 2.0]}], "t")
    g = torch.Generator()
    assert torch.equal(flip(x, g), x.flip(-1))
    out = norm(x, g)
    assert torch.allclose(out[:, 0], (x[:, 0] - 0.5) / 0.5) and torch.allclose(out[:, 1], x[:, 1] / 2)


def test_transform_config_errors_name_key_and_choices():
    with pytest.raises(ConfigError) as e:
        pipelines({"train": [{"name": "random_flip"}, {"name": "random_crop", "padding": -1}]}, 0)
    msg = str(e.value)
    assert "data.transforms.train[0].name: unknown transform 'random_flip'" in msg
    assert "horizontal_flip" in msg and "data.transforms.train[1]: building 'random_crop' failed" in msg


def test_torchvision_transform_by_name():
    pytest.importorskip("torchvision.transforms.v2",
                        reason="torchvision does not import beside this torch build")
    tf = Pipeline([{"name": "torchvision.RandomRotation", "degrees": 30}], 0)
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(tf(x, 0, 1), tf(x, 0, 1)) and not torch.equal(tf(x, 0, 1), tf(x, 0, 2))


def test_torch_datasets_are_split_and_iterables_refuse_fractions():
    meta = DatasetMeta("g", (3, 8, 8), 4)
    s = split(TorchData(images(40), meta), 0.25, 0.1, split_seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (26, 10, 4)
    taken = sorted(s.train.indices + s.val.indices + s.test.indices)
    assert taken == list(range(40))
    with pytest.raises(ConfigError, match="iterable dataset, which cannot be split"):
        split(TorchData(Stream(), meta), 0.1, 0.0, split_seed=0)
    assert split(TorchData(Stream(), meta), 0.0, 0.0, split_seed=0).val is None


def test_auto_loader_follows_the_memory_limit():
    data = (torch.zeros(64, 3, 8, 8), torch.zeros(64, dtype=torch.long))  # 48 KiB + 512 B
    cpu = torch.device("cpu")
    assert isinstance(make_loader(data, 8, kind="auto", shuffle=True, seed=0, device=cpu,
                                  memory_limit=1 << 20), MemoryLoader)
    assert isinstance(make_loader(data, 8, kind="auto", shuffle=True, seed=0, device=cpu,
                                  memory_limit=1 << 10), TorchLoader)
    with pytest.raises(ConfigError, match="data.loader: got 'memory'"):
        make_loader(images(), 8, kind="memory", shuffle=True, seed=0, device=cpu)


def test_lazy_dataset_trains_through_the_cli(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"name": "synthetic_images", "lazy": True, "n_samples": 64, "n_test": 16,
                 "shape": [3, 8, 8], "batch_size": 16, "root": str(tmp_path / "data"),
                 "transforms": {"train": AUGMENT}},
        "model": {"name": "cnn", "channels": [4], "kernel_size": 3},
        "trainer": {"max_epochs": 1, "device": "cpu"}, "logging": {"console": False},
        "diagnostics": [{"name": "confusion_matrix", "n": 16}]}))
    r = run_cli("train", str(cfg), "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    (run,) = (tmp_path / "runs" / "manual").iterdir()
    summary = json.loads((run / "run.json").read_text())["summary"]
    assert {"train/loss", "val/acc", "test/acc"} <= set(summary)


@pytest.mark.parametrize("name", TRANSFORMS.names())
@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (4, 1, 16)], ids=["image", "signal"])
def test_every_transform_keeps_shape_and_replays_from_its_seed(name, shape):
    (t,) = build_transforms([{"name": name}], "t")
    x = torch.rand(shape)
    a = t(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, t(x, torch.Generator().manual_seed(5)))


def test_list_transforms_shows_the_registry():
    r = run_cli("list", "transforms")
    assert r.returncode == 0, r.stderr
    for name in ("random_crop", "horizontal_flip", "normalize", "gaussian_noise", "padding=4"):
        assert name in r.stdout


def test_pipeline_pickles_as_its_specs_for_spawned_workers():
    import pickle

    tf = Pipeline(AUGMENT, seed=4)
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(pickle.loads(pickle.dumps(tf))(x, 1, 2), tf(x, 1, 2))
