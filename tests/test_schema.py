"""The typed schema of the framework sections: strict types, ranges, did-you-mean, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runlab.config import DEFAULTS, fill_defaults
from runlab.errors import ConfigError
from runlab.schema import MAX_NAME_BYTES, RunConfig, defaults
from runlab.validate import validate_config
from runlab_testing import run_cli, tiny_config

BAD = [  # (section, key, value, words of the message)
    ("trainer", "compile", "false", "expected true or false, got 'false'"),
    ("trainer", "test", "yes", "expected true or false"),
    ("trainer", "max_epochs", 2.5, "expected a positive integer"),
    ("trainer", "max_epochs", True, "expected a positive integer"),
    ("trainer", "checkpoint_every", -1, "must be >= 0, got -1"),
    ("trainer", "checkpoint_every", "1", "expected an integer >= 0"),
    ("trainer", "grad_clip", 0, "must be > 0"),
    ("trainer", "device", "gpu", "Allowed: auto, cpu, cuda, cuda:N, mps"),
    ("trainer", "precision", "bf61", "Did you mean 'bf16'?"),
    ("trainer", "early_stopping", {"mode": "maxx"}, "trainer.early_stopping.mode"),
    ("trainer", "early_stopping", {"patiense": 3}, "Did you mean 'patience'?"),
    ("data", "eval_batch_size", -5, "must be >= 1, got -5"),
    ("data", "drop_last", "no", "expected true or false"),
    ("data", "val_fraction", 1.5, "must be < 1"),
    ("data", "num_workers", -1, "data.num_workers"),
    ("data", "loader", "mem", "Allowed: auto, memory, dataloader"),
    ("logging", "log_every_steps", 0, "must be >= 1, got 0"),
    ("logging", "console", "true", "expected true or false"),
    ("logging", "wandb", {"enabeld": True}, "logging.wandb.enabeld: unknown key"),
    ("logging", "wandb", {"mode": "offlne"}, "Did you mean 'offline'?"),
    ("logging", "wandb", {"tags": "a"}, "expected a list of strings"),
    ("logging", "wandb", "yes", "logging.wandb: expected a mapping"),
]


@pytest.mark.parametrize(("section", "key", "value", "words"), BAD)
def test_bad_value_is_refused_naming_key_and_value(
    tmp_path: Path, section: str, key: str, value, words: str
) -> None:
    cfg = tiny_config(tmp_path, **{section: {key: value}})
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    assert any(words in p for p in e.value.problems), e.value.problems
    assert any(p.startswith(f"{section}.{key}") for p in e.value.problems), e.value.problems


@pytest.mark.parametrize(("key", "value", "words"), [
    ("seed", 1e23, "seed: expected an integer >= 0, got 1e+23"),
    ("seed", -1, "must be >= 0"),
    ("seed", 2**70, "must be <= 9223372036854775807"),
    ("plugins", "models/", "plugins: expected a list of strings"),
    ("name", "n" * (MAX_NAME_BYTES + 1), f"at most {MAX_NAME_BYTES}"),
    ("logging.wandb", None, None),
])
def test_top_level_keys(tmp_path: Path, key: str, value, words: str | None) -> None:
    cfg = tiny_config(tmp_path)
    if key == "logging.wandb":  # `wandb: null` is allowed nowhere: the section is a mapping
        cfg["logging"]["wandb"] = None
        words = "logging.wandb: expected a mapping, got null"
    else:
        cfg[key] = value
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    assert any(words in p for p in e.value.problems), e.value.problems


def test_defaults_come_from_the_schema_and_validate(tmp_path: Path) -> None:
    assert defaults(RunConfig) == DEFAULTS
    assert DEFAULTS["logging"]["wandb"] == {"enabled": False, "project": "runlab", "entity": None,
                                            "mode": None, "tags": [], "group": None,
                                            "job_type": None}
    validate_config(tiny_config(tmp_path))  # the defaults themselves pass
    cfg = fill_defaults({**tiny_config(tmp_path), "logging": {"wandb": True}})
    validate_config(cfg)  # `wandb: true` shorthand


def test_all_problems_at_once_and_nothing_created(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg["trainer"].update(compile="no", max_epochs=0)
    cfg["data"]["eval_batch_size"] = -5
    cfg["logging"].update(log_every_steps=0, wandb={"enabled": True, "projcet": "x"})
    cfg["seed"] = 1e23
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stderr
    for words in ("trainer.compile", "trainer.max_epochs", "data.eval_batch_size",
                  "logging.log_every_steps", "logging.wandb.projcet", "Did you mean 'project'?",
                  "seed:"):
        assert words in result.stderr, words
    assert result.stderr.count("error: ") == 6, result.stderr
    assert not (tmp_path / "runs").exists()
