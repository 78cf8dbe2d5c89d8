"""Member k of a vectorised ensemble == a single run with seed k (same config).

Both ways of running the members are checked: stacked kernels (fused.py) and
torch.func.vmap. Randomness inside forward (dropout masks, VAE noise) is drawn per
member from the ensemble's own stream, so for those cases both sides are given one
test-only, deterministic source (a fixed pattern): the masks/noise are then the same
and everything else (init, data order, clipping, schedules) must match.
test_randomness.py checks the real masks and noise statistically.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tests.ensemble.conftest import (
    max_summary_diff,
    max_weight_diff,
    run_info,
    runs_by_seed,
    weights,
)

from runlab.ensemble import stacked
from runlab.ensemble.api import train_seeds
from runlab.train.api import train

SEEDS = [0, 3, 7]
BATCH = 32  # the dropout case's train batches (dropout is off in evaluation)


def _pattern(like: torch.Tensor) -> torch.Tensor:
    """A fixed pseudo-random pattern in [0, 1) of `like`'s shape. It depends only on the
    position within a sample and the sample's row within its batch of 32, so a member
    sees the same pattern alone (B, ...), under vmap (B, ...) and folded with the other
    members (K*B, ...)."""
    n = like[0].numel()
    rows = torch.arange(like.shape[0], device=like.device) % BATCH
    i = (rows[:, None] * n + torch.arange(n, device=like.device)).reshape(like.shape).to(like.dtype)
    return torch.frac(torch.sin(i * 12.9898) * 43758.5453).abs()


def fixed_noise(like: torch.Tensor) -> torch.Tensor:
    """Stands in for `torch.randn_like`: a smooth function of the values of `like` (the
    posterior means), so each sample gets the same noise in every layout, whatever the
    batch sizes (the VAE's splits are not multiples of 32)."""
    cols = torch.arange(like.shape[-1], dtype=like.dtype, device=like.device)
    return torch.sin(3 * like + cols) * 1.7


def fixed_dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Stands in for `F.dropout`: a fixed mask, the same in both paths."""
    if not training or p == 0:
        return x
    return x * (_pattern(x) >= p) / (1 - p)


CASES = {
    # AdamW + weight decay + cosine LR, gradient clipping tight enough to bite
    "mlp": {"trainer": {"grad_clip": 0.05}},
    # 1-D convolutions with BatchNorm (per-member running stats), SGD + momentum, clipping
    "cnn": {"model": {"name": "cnn", "channels": [4, 8], "kernel_size": 3, "hidden": 16,
                      "batchnorm": True},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "trainer": {"grad_clip": 0.5}},
    # the VAE's own ELBO with a scheduled beta; sampling noise from `fixed_noise`
    "vae": {"model": {"name": "vae", "latent_dim": 2, "hidden": [16],
                      "beta": {"schedule": "linear", "start": 0.0, "end": 1.0, "epochs": 2}},
            "trainer": {"grad_clip": 1.0}},
    # dropout everywhere in the MLP, masks from `fixed_dropout` (every train batch 32 rows)
    "dropout": {"model": {"name": "mlp", "hidden": [32, 16], "dropout": 0.3},
                "data": {"drop_last": True}, "trainer": {"grad_clip": 0.05}},
    # data.shuffle: false: every member walks the stored order, as its single run does
    "fixed-order": {"data": {"shuffle": False}},
}


@pytest.mark.parametrize("kernels", [True, False], ids=["stacked-kernels", "vmap"])
@pytest.mark.parametrize("case", list(CASES))
def test_member_equals_single_run(case: str, kernels: bool, make_config, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(torch, "randn_like", fixed_noise)
    monkeypatch.setattr(F, "dropout", fixed_dropout)
    monkeypatch.setattr(stacked, "STACKED_KERNELS", kernels)
    cfg = make_config(**CASES[case])
    # chunk=2: members 0, 3 train together, member 7 in a second chunk
    assert train_seeds(cfg, SEEDS, tmp_path / "ens", chunk=2) == 0
    method = "with stacked kernels" if kernels else "with torch.func.vmap (switched off)"
    assert capsys.readouterr().out.count(method) == 2  # both chunks
    for seed in SEEDS:
        assert train({**cfg, "seed": seed}, tmp_path / "single") == 0
    ens, single = runs_by_seed(tmp_path / "ens"), runs_by_seed(tmp_path / "single")
    assert sorted(ens) == SEEDS
    for seed in SEEDS:
        a, b = ens[seed], single[seed]
        assert max_weight_diff(weights(a), weights(b)) < 1e-5, seed
        assert max_weight_diff(weights(a, "best.pt"), weights(b, "best.pt")) < 1e-5, seed
        assert max_summary_diff(run_info(a)["summary"], run_info(b)["summary"]) < 1e-4, seed
    # members really differ from one another (own init, own data order)
    assert max_weight_diff(weights(ens[0]), weights(ens[3])) > 1e-3


def test_clipping_is_per_member(make_config, tmp_path: Path) -> None:
    """A member's clip scale uses its own norm only: with clipping far below every norm,
    each member's update equals its single run's (a shared norm would shrink them all alike)."""
    cfg = make_config(trainer={"grad_clip": 1e-3, "max_epochs": 1}, scheduler=None)
    assert train_seeds(cfg, [0, 1], tmp_path / "ens") == 0
    for seed in (0, 1):
        assert train({**cfg, "seed": seed}, tmp_path / "single") == 0
    ens, single = runs_by_seed(tmp_path / "ens"), runs_by_seed(tmp_path / "single")
    for seed in (0, 1):
        assert max_weight_diff(weights(ens[seed]), weights(single[seed])) < 1e-5


def test_one_seed_is_exactly_a_single_run(tmp_path: Path, make_config):
    """`--seeds 1` has nothing to stack: it is the plain run, bit for bit (dropout included),
    tagged with its ensemble id."""
    cfg = make_config(model={"name": "mlp", "hidden": [32, 16], "dropout": 0.3}, seed=5)
    assert train_seeds(cfg, [5], tmp_path / "one") == 0
    assert train(cfg, tmp_path / "single") == 0
    (one,), (single,) = runs_by_seed(tmp_path / "one").values(), runs_by_seed(tmp_path / "single").values()
    assert max_weight_diff(weights(one), weights(single)) == 0
    assert run_info(one)["ensemble"] and run_info(one)["summary"] == run_info(single)["summary"]
