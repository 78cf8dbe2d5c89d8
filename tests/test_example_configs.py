"""The example configs of custom steps train from `runlab train` (shortened)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from runlab_testing import run_cli

CONFIGS = Path(__file__).parents[1] / "configs"


def runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("run.json"))


def metric_names(run: Path) -> set[str]:
    with open(run / "metrics.csv") as f:
        return {row["metric"] for row in csv.DictReader(f)}


def test_gan_trains_two_optimizers_and_draws_samples_under_seeds(tmp_path):
    r = run_cli("train", str(CONFIGS / "gan_mixture2d.yaml"), "trainer.max_epochs=2",
                "data.n_samples=512", "--seeds", "2", "--runs-dir", str(tmp_path / "runs"),
                cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cannot be trained vectorised (several optimizers" in r.stdout
    members = runs(tmp_path / "runs")
    assert len(members) == 2
    for run in members:
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "completed" and info["ensemble"]
        assert {"train/d_loss", "train/g_loss", "val/mmd", "lr/gen", "lr/disc",
                "diag/gan_samples/mmd"} <= metric_names(run)
        assert list((run / "diagnostics" / "gan_samples").glob("step-*.png"))


def test_layerwise_lr_with_ema_trains(tmp_path):
    r = run_cli("train", str(CONFIGS / "mlp_layerwise_ema.yaml"), "trainer.max_epochs=2",
                "data.num_samples=600", f"data.root={tmp_path / 'data'}",
                "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (run,) = runs(tmp_path / "runs")
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
    import torch

    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    groups = state["optimizers"]["main"]["optimizer"]["param_groups"]
    assert sorted({(g["initial_lr"], g["weight_decay"]) for g in groups}) == [
        (5.0e-4, 0.0), (5.0e-4, 0.05), (2.0e-3, 0.0), (2.0e-3, 0.05), (4.0e-3, 0.0), (4.0e-3, 0.05)]
    (ema,) = [v for k, v in state["callbacks"].items() if k.endswith(":EMA")]
    assert ema["shadow"].keys() == state["model"].keys()
