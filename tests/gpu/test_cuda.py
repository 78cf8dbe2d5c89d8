"""The CUDA paths: device placement, bf16 / fp16 autocast with GradScaler, torch.compile,
and seed ensembles (stacked kernels against vmap) on a GPU.

Skipped where no GPU is visible (CI, the development machines); `scripts/gpu_check.sh`
runs them on a machine that has one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from runlab.train.api import train
from runlab_testing import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(tmp_path: Path, name: str, **sections) -> tuple[dict, dict]:
    """Train a tiny config on CUDA; returns (run.json, last checkpoint)."""
    cfg = tiny_config(tmp_path, trainer={"device": "cuda", **sections.pop("trainer", {})}, **sections)
    runs = tmp_path / name
    assert train(cfg, runs) == 0
    (info_path,) = runs.rglob("run.json")
    state = torch.load(info_path.parent / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    return json.loads(info_path.read_text()), state


def test_training_on_cuda_matches_cpu(tmp_path: Path) -> None:
    info, state = _run(tmp_path, "cuda")
    assert info["status"] == "completed"
    cpu_cfg = tiny_config(tmp_path)
    assert train(cpu_cfg, tmp_path / "cpu") == 0
    (cpu_info,) = (tmp_path / "cpu").rglob("run.json")
    cpu_state = torch.load(cpu_info.parent / "checkpoints" / "last.pt", weights_only=True)
    for name, value in state["model"].items():  # same init, same batches: float rounding apart
        torch.testing.assert_close(value, cpu_state["model"][name], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_mixed_precision(tmp_path: Path, precision: str) -> None:
    info, state = _run(tmp_path, precision, trainer={"precision": precision})
    assert info["status"] == "completed"
    final = info["summary"]["train/loss"]["final"]
    assert final == final and final < 10  # finite and trained
    if precision == "16":
        assert state["scaler"] and state["scaler"]["scale"] > 0  # GradScaler on CUDA


def test_compile(tmp_path: Path) -> None:
    info, _ = _run(tmp_path, "compiled", trainer={"compile": True})
    assert info["status"] == "completed"


def test_seed_ensemble_on_cuda(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from runlab.ensemble.api import train_seeds

    cfg = tiny_config(tmp_path, trainer={"device": "cuda"}, model={"name": "mlp", "hidden": [8], "dropout": 0.1})
    assert train_seeds(cfg, [0, 1, 2, 3], tmp_path / "ens") == 0
    assert "with stacked kernels" in capsys.readouterr().out
    assert len(list((tmp_path / "ens").rglob("run.json"))) == 4


def test_stacked_kernels_match_vmap_on_cuda() -> None:
    from runlab.data.base import DatasetMeta
    from runlab.ensemble.stacked import Stack, StepModule, vectorization_problem
    from runlab.losses import CrossEntropy
    from runlab.registry import MODELS

    meta = DatasetMeta("signal", (1, 40), 10, "classification", ())
    steps = []
    for seed in range(4):
        torch.manual_seed(seed)
        model = MODELS.get("cnn").obj(meta, channels=[8, 16], hidden=32, batchnorm=True).cuda()
        steps.append(StepModule(model, CrossEntropy(), True))
    stack = Stack(steps)
    x = torch.randn(4 * 16, 1, 40, device="cuda")
    y = torch.randint(0, 10, (4 * 16,), device="cuda")
    assert vectorization_problem(stack, x, y, 16) is None
    assert stack.method == "stacked kernels"
