"""Pure functions of the distributed path: sharding, rendezvous from the environment,
the torchrun command, the size checks. No processes are started."""

from __future__ import annotations

import pytest
import torch

from runlab.data.base import DatasetMeta, Splits
from runlab.data.loader import MemoryLoader, batch_bounds
from runlab.distributed import rendezvous_for, torchrun_command
from runlab.distributed.env import first_host, rendezvous
from runlab.distributed.trainer import check_sizes, shard_weights
from runlab.errors import ConfigError
from runlab_testing import tiny_config


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_of_every_global_batch_add_up_to_it(world):
    n, bs = 103, 10
    full = batch_bounds(n, bs, drop_last=False)
    shards = [batch_bounds(n, bs, False, r, world) for r in range(world)]
    for i, (lo, hi) in enumerate(full):
        parts = [s[i] for s in shards]
        assert parts[0][0] == lo and parts[-1][1] == hi
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # contiguous, in rank order
        assert max(p[1] - p[0] for p in parts) - min(p[1] - p[0] for p in parts) <= 1
    weights = [shard_weights(n, bs, False, r, world) for r in range(world)]
    assert [sum(w[i] for w in weights) for i in range(len(full))] == pytest.approx([world] * len(full))


def test_sharded_loader_yields_the_same_global_order():
    x = torch.arange(50.0).unsqueeze(1)
    y = torch.zeros(50, dtype=torch.long)
    whole = [b[0] for b in MemoryLoader(x, y, 8, shuffle=True, seed=3).epoch(2)]
    parts = [list(MemoryLoader(x, y, 8, shuffle=True, seed=3, shard=(r, 2)).epoch(2)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) == 7
    for i, batch in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][i][0], parts[1][i][0]]), batch)


def test_rendezvous_from_torchrun_and_from_an_srun_step():
    rv = rendezvous({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "9"})
    assert (rv.rank, rv.world, rv.local_rank, rv.master_addr, rv.master_port) == (3, 4, 1, "h", 9)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1",
             "SLURM_STEP_NODELIST": "gpu[07-08,11]", "SLURM_JOB_ID": "4242"}
    rv = rendezvous(slurm)
    assert (rv.rank, rv.world, rv.local_rank, rv.master_addr) == (5, 8, 1, "gpu07")
    assert rv.master_port == rendezvous(slurm).master_port  # every task derives the same port
    batch_shell = {"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    assert rendezvous(batch_shell) is None  # not inside an srun step
    assert rendezvous({}) is None


@pytest.mark.parametrize("nodes, first", [("n1", "n1"), ("a[3-5],b2", "a3"), ("c[9]", "c9"),
                                          ("x-1,y", "x-1")])
def test_first_host_of_a_nodelist(nodes, first):
    assert first_host(nodes) == first


def test_strategy_single_refuses_to_run_as_one_of_several(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="trainer.strategy"):
        rendezvous_for(tiny_config(tmp_path, trainer={"strategy": "single"}))
    assert rendezvous_for(tiny_config(tmp_path)).world == 2


def test_torchrun_command():
    cmd = torchrun_command(["c.yaml", "seed=1"], 4)
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
                       "-m", "runlab", "train", "c.yaml", "seed=1"]
    multi = torchrun_command(["c.yaml"], 8, nnodes=2, rdzv_endpoint="node1:29400")
    assert "--nnodes=2" in multi and "--rdzv-endpoint=node1:29400" in multi


def test_a_last_batch_smaller_than_the_world_is_a_config_error(tmp_path):
    meta = DatasetMeta("toy", input_shape=(2,), num_classes=2)
    data = (torch.zeros(33, 2), torch.zeros(33, dtype=torch.long))
    cfg = tiny_config(tmp_path, data={"batch_size": 16})
    with pytest.raises(ConfigError, match="drop_last"):
        check_sizes(cfg, Splits(meta, data, None, None), world=2)
    check_sizes(tiny_config(tmp_path, data={"batch_size": 16, "drop_last": True}),
                Splits(meta, data, None, None), world=2)
    with pytest.raises(ConfigError, match="val split holds 1"):
        check_sizes(cfg, Splits(meta, data, (data[0][:1], data[1][:1]), None), world=2)
