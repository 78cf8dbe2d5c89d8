"""The sweep file: defaults, every problem reported at once, did-you-mean."""

from __future__ import annotations

import pytest

from runlab.errors import ConfigError
from runlab.sweep.settings import apply_params, build_config, grid, grid_size
from runlab.sweep.spec import load_sweep


def test_defaults_and_resolution(make_sweep):
    spec = load_sweep(make_sweep(seeds=[3, 5], overrides={"trainer.max_epochs": 1},
                                 launcher={"name": "slurm", "time": "01:30:00"}))
    assert spec.method == "grid" and spec.stat == "final" and spec.goal == "minimize"
    assert spec.seeds == [3, 5] and spec.max_retries == 1 and spec.seed == 0
    assert spec.base_config["trainer"]["max_epochs"] == 1
    assert spec.launcher.name == "slurm" and spec.launcher.timeout_min == 90
    assert spec.resolved()["parameters"] == {"optimizer.lr": {"values": [0.001, 0.01]}}


def test_every_problem_at_once_with_did_you_mean(make_sweep):
    path = make_sweep(methd="grid", method="tpe", seeds=0, metric={"name": "val/loss",
                      "stat": "last"}, parameters={"optimizer.lrr": [1, 2],
                      "model.hidden": {"distribution": "normal", "min": 1, "max": 2}},
                      launcher={"name": "local", "worker": 2})
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    text = str(err.value)
    for expected in ("unknown key 'methd'", "Did you mean 'method'?",
                     "parameters.optimizer.lrr: no such key", "Did you mean 'lr'?",
                     "needs trials", "seeds: 0", "metric.stat: 'last'",
                     "distribution: 'normal'", "unknown key 'worker'", "Did you mean 'workers'?"):
        assert expected in text
    assert len(err.value.problems) == 7


def test_grid_refuses_distributions_and_ranges_are_checked(make_sweep):
    path = make_sweep(parameters={"optimizer.lr": {"distribution": "log_uniform", "min": 0,
                                                   "max": 1}})
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert "log_uniform needs min > 0" in str(err.value)
    assert "cannot be enumerated by method grid" in str(err.value)


def test_overrides_make_new_keys_sweepable(make_sweep):
    spec = load_sweep(make_sweep(overrides={"model.dropout": 0.0},
                                 parameters={"model.dropout": [0.0, 0.5]}))
    assert [p.key for p in spec.parameters] == ["model.dropout"]


def test_keys_the_config_check_accepts_are_sweepable_without_overrides(make_sweep):
    """A component parameter the base leaves out is swept as `runlab train key=value` takes it;
    a misspelt one is refused with the config check's own did-you-mean."""
    spec = load_sweep(make_sweep(parameters={"model.dropout": [0.0, 0.5]}))
    assert [p.key for p in spec.parameters] == ["model.dropout"]
    with pytest.raises(ConfigError) as err:
        load_sweep(make_sweep(parameters={"model.dropot": [0.0, 0.5]}))
    assert "parameters.model.dropot: no such key in the base config" in str(err.value)
    assert "Did you mean 'dropout'?" in str(err.value)


def test_grid_order_nested_values_and_configs(make_sweep):
    spec = load_sweep(make_sweep(parameters={"model.hidden": [[8], [16, 16]],
                                             "optimizer.lr": [0.1, 0.2, 0.3]}))
    combos = list(grid(spec.parameters))
    assert grid_size(spec.parameters) == len(combos) == 6
    assert combos[1] == {"model.hidden": [8], "optimizer.lr": 0.2}
    cfg = build_config(spec.raw_base, combos[4], "sw")
    assert cfg["model"]["hidden"] == [16, 16] and cfg["optimizer"]["lr"] == 0.2
    assert cfg["name"] == "sw" and cfg["trainer"]["val_every"] == 1  # defaults filled


def test_apply_params_indexes_lists():
    raw = {"diagnostics": [{"name": "a", "every": 1}]}
    assert apply_params(raw, {"diagnostics.0.every": 5})["diagnostics"][0]["every"] == 5
    assert raw["diagnostics"][0]["every"] == 1


def test_interpolation_follows_the_swept_value(make_sweep, base_config):
    base_config.write_text(base_config.read_text().replace("name: tiny",
                                                           "name: lr${optimizer.lr}"))
    spec = load_sweep(make_sweep(overrides={"data.batch_size": "${trainer.max_epochs}"}))
    cfg = build_config(spec.raw_base, {"trainer.max_epochs": 7}, "sw")
    assert cfg["data"]["batch_size"] == 7


def test_gpus_per_run_defaults_to_one_and_is_checked(make_sweep):
    assert load_sweep(make_sweep()).launcher.gpus_per_run == 1
    spec = load_sweep(make_sweep(launcher={"name": "slurm", "gpus_per_run": 4}))
    assert spec.launcher.gpus_per_run == 4 and spec.resolved()["launcher"]["gpus_per_run"] == 4
    path = make_sweep(vectorize=True, launcher={"name": "local", "gpus_per_rum": 2,
                                                "gpus_per_run": 2})
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    text = str(err.value)
    assert "unknown key 'gpus_per_rum'" in text and "Did you mean 'gpus_per_run'?" in text
    assert "vectorize: true" in text and "launcher.gpus_per_run: 2" in text
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match=r"launcher.gpus_per_run: .*positive integer"):
            load_sweep(make_sweep(launcher={"name": "local", "gpus_per_run": bad}))
    with pytest.raises(ConfigError, match="gpus_per_job: 1 differs from launcher.gpus_per_run"):
        load_sweep(make_sweep(launcher={"name": "slurm", "gpus_per_run": 2, "gpus_per_job": 1}))
