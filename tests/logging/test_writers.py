"""The WRITERS registry: config validation, `runlab list writers`, and a plugin's own writer
receiving a real run's scalars, final metrics and end status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runlab.config import fill_defaults
from runlab.errors import ConfigError
from runlab.validate import validate_config
from runlab_testing import run_cli, tiny_config

PLUGIN = Path(__file__).parent / "plugins" / "jsonl_writer.py"


@pytest.mark.parametrize("logging,message", [
    ({"writers": [{"name": "mlflw"}]}, "logging.writers[0].name: unknown writer 'mlflw'. "
                                       "Did you mean 'mlflow'?"),
    ({"writers": [{"name": "mlflow", "experimnt": "x"}]},
     "logging.writers[0].experimnt: unknown parameter of mlflow (value 'x'). Did you mean "
     "'experiment'?"),
    ({"wandb": {"enabled": True, "projcet": "x"}}, "logging.wandb.projcet: unknown key "
                                                   "(value 'x'). Did you mean 'project'?"),
    ({"wandb": {"enabled": True, "mode": "offlien"}}, "logging.wandb.mode: got 'offlien'. Did "
                                                      "you mean 'offline'?"),
    ({"tensorboard": "yes"}, "logging.tensorboard: expected true or false, got 'yes'"),
])
def test_bad_writer_config_is_refused_before_anything_runs(tmp_path, logging, message):
    cfg = tiny_config(tmp_path)
    cfg["logging"] = {**cfg["logging"], **logging}
    with pytest.raises(ConfigError) as err:
        validate_config(fill_defaults(cfg))
    assert any(message in p for p in err.value.problems), err.value.problems


def test_list_writers():
    res = run_cli("list", "writers")
    assert res.returncode == 0, res.stderr
    assert all(name in res.stdout for name in ("tensorboard", "wandb", "mlflow"))


def test_a_plugin_writer_gets_the_run(tmp_path):
    from runlab.train.api import train

    cfg = tiny_config(tmp_path, plugins=[str(PLUGIN)])
    cfg["logging"]["writers"] = [{"name": "jsonl", "filename": "out.jsonl"}]
    assert train(fill_defaults(cfg), tmp_path / "runs") == 0
    (run_dir,) = (tmp_path / "runs" / "manual").iterdir()
    lines = [json.loads(line) for line in (run_dir / "out.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "run.json").read_text())["summary"]
    assert [line["step"] for line in lines if "train/loss" in line][:2] == [1, 2]
    assert lines[-2]["final"] == {k: v["final"] for k, v in summary.items()}
    assert lines[-1] == {"status": "completed", "exit_code": 0}
