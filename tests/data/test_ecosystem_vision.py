"""torchvision and timm for real: datasets by name read from files in their real formats
(MNIST IDX, an ImageFolder of PNGs, CIFAR-10 batches), models by name with the dataset's
channels and classes, transforms.v2 by name, and `runlab train` runs with them (one killed
with SIGKILL and resumed bit-identical).

Skipped where torchvision does not import (the development venv's torch 2.13 has no matching
torchvision wheel); they run in a venv with torch, torchvision and timm installed together:
    python3 -m venv /work/venv-tv && /work/venv-tv/bin/pip install torch==2.14.1 \\
        torchvision==0.29.1 timm -e '.[dev]'
    /work/venv-tv/bin/python -m pytest tests/data/test_ecosystem_vision.py
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data_formats import write_idx
from runlab.config import fill_defaults
from runlab.data.base import DatasetMeta
from runlab.data.loader import make_loader
from runlab.data.transforms import Pipeline
from runlab.errors import ConfigError
from runlab.train.build import build_model_and_loss, build_splits
from runlab_testing import importable

pytestmark = pytest.mark.skipif(
    not importable("torchvision"),
    reason="torchvision does not import here (not installed, or built for another torch)")
needs_timm = pytest.mark.skipif(
    not importable("timm"),
    reason="timm does not import here (not installed, or its torchvision does not import)")
PLUGIN = Path(__file__).parents[1] / "train" / "plugins" / "resume_hooks.py"


def write_mnist(root: Path, n_train: int = 30, n_test: int = 10, name: str = "MNIST") -> dict[str, tuple]:
    """Uncompressed IDX files where torchvision's MNIST (FashionMNIST, KMNIST: same format)
    looks for them: root/<name>/raw."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    g = np.random.default_rng(0)
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = g.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        written[prefix] = (images, labels)
    return written


def write_image_folder(root: Path, per_class: dict[str, int], size=(10, 12)) -> dict[str, list]:
    """root/<split>/<class>/<i>.png, RGB; returns the arrays per split in ImageFolder's order."""
    from PIL import Image

    g = np.random.default_rng(1)
    written: dict[str, list] = {}
    for split, n in per_class.items():
        for cls in ("cat", "dog", "eel"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = g.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / cls / f"{i}.png")
                written.setdefault(split, []).append((img, ["cat", "dog", "eel"].index(cls)))
    return written


def data_cfg(tmp_path: Path, **data) -> dict:
    return fill_defaults({"data": {"root": str(tmp_path), **data}, "model": {"name": "mlp"}})["data"]


@pytest.mark.parametrize("dataset,class_3", [("MNIST", "3 - three"), ("FashionMNIST", "Dress"),
                                             ("KMNIST", "tsu")])
def test_mnist_family_by_name_reads_idx_files(tmp_path, dataset, class_3):
    written = write_mnist(tmp_path, name=dataset)
    splits = build_splits(data_cfg(tmp_path, name="torchvision", dataset=dataset, download=False,
                                   val_fraction=0.2, test_fraction=0.0))
    meta = splits.meta
    assert meta.input_shape == (1, 28, 28) and meta.num_classes == 10
    assert meta.class_names[3] == class_3  # torchvision's own class names
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 6, 10)
    images, labels = written["t10k"]
    x, y = next(iter(make_loader(splits.test, 4, kind="auto", shuffle=False, seed=0,
                                 device=torch.device("cpu")).epoch()))
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], torch.tensor(images[:4] / 255.0, dtype=torch.float32))
    assert y.tolist() == labels[:4].tolist()


def test_image_folder_by_name_reads_pngs(tmp_path):
    written = write_image_folder(tmp_path / "pets", {"train": 4, "test": 1})
    splits = build_splits(data_cfg(tmp_path, name="torchvision", dataset="ImageFolder", path="pets"))
    meta = splits.meta
    assert meta.input_shape == (3, 10, 12) and meta.num_classes == 3
    assert meta.class_names == ("cat", "dog", "eel")
    assert len(splits.train) + len(splits.val) == 12 and len(splits.test) == 3
    for (img, label), (x, y) in zip(written["test"], (splits.test[i] for i in range(3))):
        assert torch.equal(x, torch.tensor(img.transpose(2, 0, 1) / 255.0, dtype=torch.float32))
        assert y == label
    with pytest.raises(ConfigError, match=r"no folder .*pets/val .*test_split: null"):
        build_splits(data_cfg(tmp_path, name="torchvision", dataset="ImageFolder", path="pets",
                              test_split="val"))
    no_test = build_splits(data_cfg(tmp_path, name="torchvision", dataset="ImageFolder",
                                    path="pets", test_split=None, test_fraction=0.25))
    assert len(no_test.test) == 3  # carved out of train instead


def test_split_dataset_of_mixed_sizes_by_name(tmp_path):
    """GTSRB (takes split=; no classes attribute; real images differ in size) in its layout:
    gtsrb/GTSRB/Training/<class>/*.ppm and Final_Test/Images/*.ppm labelled by a CSV."""
    from PIL import Image

    g = np.random.default_rng(2)
    base = tmp_path / "gtsrb"
    for c in range(3):
        (base / "GTSRB" / "Training" / f"{c:05d}").mkdir(parents=True)
        for i in range(4):
            size = (8 + i, 9 + 2 * i, 3)  # every image a different size
            Image.fromarray(g.integers(0, 256, size, dtype=np.uint8)).save(
                base / "GTSRB" / "Training" / f"{c:05d}" / f"{i}.ppm")
    test_dir = base / "GTSRB" / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    test_images = [g.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(2)]
    for i, img in enumerate(test_images):
        Image.fromarray(img).save(test_dir / f"{i:05d}.ppm")
    (base / "GT-final_test.csv").write_text("Filename;Width;Height;ClassId\n00000.ppm;8;8;2\n"
                                            "00001.ppm;8;8;0\n")
    cfg = {"name": "torchvision", "dataset": "GTSRB", "download": False}
    with pytest.raises(ConfigError, match="GTSRB lists neither classes nor targets: set data.num_classes"):
        build_splits(data_cfg(tmp_path, **cfg))
    with pytest.raises(ConfigError, match=r"train\[\d+\] x has sample shape"):  # sizes differ
        build_splits(data_cfg(tmp_path, **cfg, num_classes=3))
    splits = build_splits(data_cfg(tmp_path, **cfg, num_classes=3, image_size=[8, 8]))
    assert splits.meta.input_shape == (3, 8, 8) and splits.meta.num_classes == 3
    assert len(splits.train) + len(splits.val) == 12 and len(splits.test) == 2
    x, y = splits.test[0]
    assert y == 2 and torch.allclose(x, torch.tensor(test_images[0].transpose(2, 0, 1) / 255.0,
                                                     dtype=torch.float32), atol=1 / 255)
    assert all(splits.train[i][0].shape == (3, 8, 8) for i in range(len(splits.train)))
    with pytest.raises(ConfigError, match=r"data.image_size: expected a positive integer or \[height, width\]"):
        build_splits(data_cfg(tmp_path, **cfg, image_size=[8, 0]))


class Pwn:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_crafted_cifar10_batches_are_never_unpickled(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(Pwn(marker)))
    with pytest.raises(ConfigError) as e:  # torchvision checks every file's MD5 first
        build_splits(data_cfg(tmp_path, name="torchvision", dataset="CIFAR10", download=False))
    assert "torchvision CIFAR10 (train split) did not load from" in str(e.value)
    assert "data.download: true" in str(e.value)
    assert not marker.exists()


def test_dataset_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match=r"has no dataset 'Cifar10'\. Did you mean 'CIFAR10'\?"):
        build_splits(data_cfg(tmp_path, name="torchvision", dataset="Cifar10"))
    with pytest.raises(ConfigError, match=r"MNIST takes train=True/False: data.split must be 'train' \(got 'val'\)"):
        build_splits(data_cfg(tmp_path, name="torchvision", dataset="MNIST", split="val"))
    with pytest.raises(ConfigError, match="FakeData takes neither train= nor split="):
        build_splits(data_cfg(tmp_path, name="torchvision", dataset="FakeData"))


def model(meta: DatasetMeta, **model_cfg) -> torch.nn.Module:
    return build_model_and_loss(fill_defaults({"data": {"name": "x"}, "model": model_cfg}), meta).model


def test_torchvision_model_gets_channels_and_classes():
    net = model(DatasetMeta("m", (1, 28, 28), 7), name="torchvision", arch="resnet18")
    assert net.conv1.in_channels == 1 and net.fc.out_features == 7
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 7)
    reg = model(DatasetMeta("r", (4, 16, 16), None, "regression", (3,)), name="torchvision",
                arch="mobilenet_v3_small")
    assert reg(torch.rand(2, 4, 16, 16)).shape == (2, 3)


@pytest.mark.parametrize("channels", [1, 4])
def test_adapted_stem_keeps_the_pretrained_response(channels):
    from torchvision.models import resnet18

    from runlab.models.ecosystem import adapt_input_conv

    torch.manual_seed(0)
    net = resnet18()
    rgb_stem = net.conv1
    adapt_input_conv(net, channels)
    assert net.conv1.in_channels == channels and net.conv1.stride == rgb_stem.stride
    gray = torch.rand(2, 1, 20, 20)  # the same image in every channel
    expected = rgb_stem(gray.expand(2, 3, 20, 20))
    assert torch.allclose(net.conv1(gray.expand(2, channels, 20, 20)), expected, atol=1e-5)


def test_torchvision_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights, resnet18

    torch.manual_seed(0)
    planted = resnet18().state_dict()  # ImageNet-shaped: 1000 classes, RGB
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(planted, cache / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = model(DatasetMeta("m", (1, 16, 16), 4), name="torchvision", arch="resnet18",
                weights="IMAGENET1K_V1")
    assert torch.equal(net.layer1[0].conv1.weight, planted["layer1.0.conv1.weight"])
    assert torch.allclose(net.conv1.weight, planted["conv1.weight"].sum(1, keepdim=True))
    assert net.fc.out_features == 4 and net(torch.rand(2, 1, 16, 16)).shape == (2, 4)


def test_model_config_errors_exit_before_the_run():
    meta = DatasetMeta("m", (1, 28, 28), 10)
    with pytest.raises(ConfigError, match=r"\(classification\) has no architecture 'resnt18'\. Did you mean 'resnet18'"):
        model(meta, name="torchvision", arch="resnt18")
    with pytest.raises(ConfigError, match=r"has no architecture 'fasterrcnn_resnet50_fpn'"):
        model(meta, name="torchvision", arch="fasterrcnn_resnet50_fpn")  # a detection model
    with pytest.raises(ConfigError, match=r"resnet18 has no weights 'IMAGENET1K_V9'; choose from DEFAULT, IMAGENET1K_V1"):
        model(meta, name="torchvision", arch="resnet18", weights="IMAGENET1K_V9")
    with pytest.raises(ConfigError, match=r"takes images \(C, H, W\), but dataset 'sig' has input shape \(1, 40\)"):
        model(DatasetMeta("sig", (1, 40), 10), name="torchvision", arch="resnet18")
    with pytest.raises(ConfigError, match=r"torchvision's vit_b_16 cannot take inputs of shape \(1, 28, 28\).*image_size"):
        model(meta, name="torchvision", arch="vit_b_16")


@needs_timm
def test_timm_model_gets_channels_and_classes():
    net = model(DatasetMeta("m", (1, 16, 16), 5), name="timm", arch="test_resnet")
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 5)
    meta = DatasetMeta("m", (1, 28, 28), 10)
    with pytest.raises(ConfigError, match=r"timm's test_vit cannot take inputs of shape \(1, 28, 28\).*img_size"):
        model(meta, name="timm", arch="test_vit")
    assert model(meta, name="timm", arch="test_vit", img_size=28, patch_size=7)(
        torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match=r"timm has no architecture 'test_resnett'\. Did you mean 'test_resnet'"):
        model(meta, name="timm", arch="test_resnett")


def test_transforms_v2_by_name():
    specs = [{"name": "torchvision.RandomResizedCrop", "size": [8, 8], "scale": [0.5, 1.0]},
             {"name": "torchvision.Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}]
    tf = Pipeline(specs, seed=3)
    x = torch.rand(4, 3, 12, 12)
    out = tf(x, 0, 1)
    assert out.shape == (4, 3, 8, 8) and torch.equal(out, Pipeline(specs, seed=3)(x, 0, 1))
    assert not torch.equal(out, tf(x, 0, 2)) and not torch.equal(out, tf(x, 1, 1))
    norm = Pipeline(specs[1:], seed=0)(x, 0, 0)
    assert torch.allclose(norm, (x - 0.5) / 0.25)
    with pytest.raises(ConfigError) as e:
        Pipeline([{"name": "torchvision.RandomRotaton", "degrees": 5},
                  {"name": "torchvision.RandomRotation"}], seed=0, key="data.transforms.train")
    msg = str(e.value)
    assert "data.transforms.train[0]: building 'torchvision.RandomRotaton' failed" in msg
    assert "Did you mean 'RandomRotation'" in msg
    assert "data.transforms.train[1]: building 'torchvision.RandomRotation' failed" in msg


# ------------------------------------------------------------------ real runs of `runlab train`

def train(tmp: Path, cfg: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`runlab train` (or `runlab <args>`) in a subprocess, one thread, no RUNLAB_ settings."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAB_")}
    full_env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    tmp.mkdir(exist_ok=True)
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = args or ("train", str(tmp / "config.yaml"), "--runs-dir", str(tmp / "runs"))
    return subprocess.run([sys.executable, "-m", "runlab", *cmd], env=full_env,
                          capture_output=True, text=True, timeout=600)


def the_run(tmp: Path) -> Path:
    (found,) = (tmp / "runs" / "manual").iterdir()
    return found


def last(tmp: Path) -> dict:
    return torch.load(the_run(tmp) / "checkpoints" / "last.pt", weights_only=True)


def assert_resumes_bit_identical(tmp: Path, cfg: dict, kill_at: int, at: tuple) -> dict:
    """An uninterrupted run of `cfg`, and one with 2 DataLoader workers killed with SIGKILL
    after step `kill_at` (its last checkpoint at (epoch, step, batch_in_epoch) `at`), then
    resumed: same final weights and summary. Returns the reference's last checkpoint."""
    ref, cut = tmp / "ref", tmp / "cut"
    r = train(ref, cfg)
    assert r.returncode == 0, r.stderr
    workers = {**cfg, "data": {**cfg["data"], "num_workers": 2}}
    r = train(cut, workers, env={"RUNLAB_TEST_SIGNAL": f"SIGKILL@{kill_at}"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert (last(cut)["epoch"], last(cut)["step"], last(cut)["batch_in_epoch"]) == at
    r = train(cut, workers, "runs", "resume", str(the_run(cut)))
    assert r.returncode == 0, r.stderr
    a, b = last(ref)["model"], last(cut)["model"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    summary = json.loads((the_run(ref) / "run.json").read_text())["summary"]
    assert json.loads((the_run(cut) / "run.json").read_text())["summary"] == summary
    assert "val/acc" in summary and "test/acc" in summary
    return last(ref)


@pytest.mark.slow  # three runs of resnet18 through the CLI: ~1-2 min on 2 shared cores
def test_torchvision_run_resumes_bit_identical_after_sigkill(tmp_path):
    write_mnist(tmp_path / "data", n_train=30, n_test=8)
    normalize = {"name": "torchvision.Normalize", "mean": [0.13], "std": [0.3]}
    cfg = {"name": "tv", "seed": 0, "plugins": [str(PLUGIN)],
           "data": {"name": "torchvision", "dataset": "MNIST", "download": False,
                    "root": str(tmp_path / "data"), "batch_size": 8, "val_fraction": 0.2,
                    "test_fraction": 0.0,
                    "transforms": {"train": [{"name": "torchvision.RandomRotation", "degrees": 20},
                                             normalize],
                                   "eval": [normalize]}},
           "model": {"name": "torchvision", "arch": "resnet18"},
           "optimizer": {"name": "adam", "lr": 0.01},
           "trainer": {"max_epochs": 2, "device": "cpu", "checkpoint_every": 0,
                       "checkpoint_every_steps": 2},
           "callbacks": [{"name": "signal_at_step"}], "logging": {"console": False}}
    # 24 train samples in batches of 8: 3 steps per epoch; killed after step 5, resumes from 4
    state = assert_resumes_bit_identical(tmp_path, cfg, kill_at=5, at=(1, 4, 1))
    model = state["model"]  # the dataset's 1 channel and 10 classes reached the constructor
    assert model["conv1.weight"].shape == (64, 1, 7, 7) and model["fc.weight"].shape == (10, 512)


@needs_timm
@pytest.mark.slow  # three CLI runs that import timm: ~1 min on 2 shared cores
def test_timm_run_on_a_builtin_dataset_resumes_bit_identical(tmp_path):
    cfg = {"name": "timm", "seed": 0, "plugins": [str(PLUGIN)],
           "data": {"name": "synthetic_images", "n_samples": 40, "n_test": 8, "shape": [1, 16, 16],
                    "num_classes": 5, "batch_size": 8, "val_fraction": 0.2, "lazy": True,
                    "root": str(tmp_path / "data"),
                    "transforms": {"train": [{"name": "torchvision.RandomHorizontalFlip"}]}},
           "model": {"name": "timm", "arch": "test_resnet"},
           "optimizer": {"name": "adam", "lr": 0.01},
           "trainer": {"max_epochs": 2, "device": "cpu", "checkpoint_every": 0,
                       "checkpoint_every_steps": 3},
           "callbacks": [{"name": "signal_at_step"}], "logging": {"console": False}}
    # 32 train samples in batches of 8: 4 steps per epoch; killed after step 7, resumes from 6
    state = assert_resumes_bit_identical(tmp_path, cfg, kill_at=7, at=(1, 6, 2))
    assert state["step"] == 8
    weights = [v for v in state["model"].values() if v.dim() in (2, 4)]
    assert weights[0].shape[1] == 1 and weights[-1].shape[0] == 5  # in_chans, num_classes
