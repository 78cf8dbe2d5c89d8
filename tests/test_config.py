"""Config loading, composition, overrides and validation (every problem at once)."""

from __future__ import annotations

import textwrap

import pytest

from runlab.config import load_config, parse_value
from runlab.errors import ConfigError
from runlab.validate import validate_config
from runlab_testing import run_cli, tiny_config


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text,value", [
    ("8", 8), ("1e-3", 1e-3), ("1.0e-3", 1e-3), ("[1,2]", [1, 2]), ("null", None),
    ("true", True), ("abc", "abc"), ("{a: 1}", {"a": 1}), ("-2", -2),
])
def test_override_values_are_typed(text, value):
    assert parse_value(text) == value


def test_defaults_composition_interpolation_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", """
        data: {name: moons, batch_size: 32}
        model: {name: mlp, hidden: [4]}
        trainer: {max_epochs: 5}
    """)
    cfg_path = write(tmp_path / "exp.yaml", """
        defaults: [base.yaml]
        name: mlp-h${model.hidden}-lr${optimizer.lr}
        optimizer: {name: adam, lr: 1e-3}
        trainer: {max_epochs: 7}
    """)
    cfg = load_config(cfg_path, ["optimizer.lr=0.01", "model.hidden=[16,8]", "scheduler=null"])
    assert cfg["trainer"]["max_epochs"] == 7  # the file wins over its defaults
    assert cfg["data"]["batch_size"] == 32  # kept from the defaults file
    assert cfg["optimizer"]["lr"] == 0.01 and cfg["model"]["hidden"] == [16, 8]
    assert cfg["name"] == "mlp-h-16-8-lr0.01"  # interpolated after overrides, sanitised
    assert cfg["trainer"]["device"] == "auto"  # framework default filled in


def test_resolved_config_round_trips(tmp_path):
    from runlab.config import save_config

    cfg = load_config(write(tmp_path / "c.yaml", "data: {name: moons}\nmodel: {name: mlp}\n"), ["seed=4"])
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


def test_bad_override_syntax_is_a_config_error(tmp_path):
    path = write(tmp_path / "c.yaml", "data: {name: moons}\nmodel: {name: mlp}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, ["trainer.max_epochs", "=3", "a..b=1"])
    assert len(e.value.problems) == 3


def test_every_problem_is_reported_at_once(tmp_path):
    cfg = tiny_config(tmp_path, model={"name": "mlpp"}, optimizer={"name": "adam", "lrr": 0.1},
                      trainer={"max_epochs": "ten", "precison": 16})
    cfg["modle"] = {}
    cfg["loss"] = {"name": "elbo", "beta": "high"}
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    text = str(e.value)
    assert len(e.value.problems) == 6, text
    assert "model.name: unknown model 'mlpp' at" not in text  # key named once, by the prefix
    assert "unknown model 'mlpp'. Did you mean 'mlp'?" in text
    assert "optimizer.lrr: unknown parameter of adam (value 0.1). Did you mean 'lr'?" in text
    assert "trainer.max_epochs: expected a positive integer, got 'ten'" in text
    assert "trainer.precison: unknown key (value 16). Did you mean 'precision'?" in text
    assert "modle: unknown top-level key. Did you mean 'model'?" in text
    assert "loss.beta: expected float, got 'high' (str)" in text


def test_schedules_are_checked_like_components(tmp_path):
    cfg = tiny_config(tmp_path, loss={"name": "elbo", "beta": {"schedule": "linaer", "start": 0}},
                      model={"name": "vae", "beta": {"schedule": "linear", "start": 0}})
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    text = str(e.value)
    assert "loss.beta.schedule: unknown hparam schedule 'linaer'. Did you mean 'linear'?" in text
    assert "model.beta.end: required parameter of linear is missing" in text


def test_unsupported_optimizer_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="optimizer.name: 'lbfgs' needs a closure"):
        validate_config(tiny_config(tmp_path, optimizer={"name": "LBFGS"}))


def test_bad_configs_exit_2_and_leave_no_run_folder(tmp_path):
    runs = tmp_path / "runs"
    write(tmp_path / "bad.yaml", """
        data: {name: moons, n_smaples: 10}
        model: {name: mlp, hiden: [4]}
        trainer: {max_epochs: 1, devic: cpu}
    """)
    r = run_cli("train", str(tmp_path / "bad.yaml"), "--runs-dir", str(runs), "optimizer.lr=x")
    assert r.returncode == 2, r.stderr
    for expected in ("data.n_smaples", "model.hiden", "trainer.devic", "optimizer.lr: expected float"):
        assert expected in r.stderr
    assert not runs.exists()


def test_missing_data_file_exits_2_naming_the_file(tmp_path):
    write(tmp_path / "c.yaml", f"""
        data: {{name: mnist, root: {tmp_path / 'nowhere'}}}
        model: {{name: mlp}}
    """)
    r = run_cli("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2
    assert "train-images-idx3-ubyte" in r.stderr and str(tmp_path / "nowhere") in r.stderr
    assert not (tmp_path / "runs").exists()


def test_unknown_keys_come_before_an_interpolation_they_break(tmp_path):
    path = write(tmp_path / "c.yaml", """
        name: d${model.depth}
        data: {name: moons}
        model: {name: mlp, detph: 2}
    """)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    first, second = e.value.problems
    assert first.startswith("model.detph: unknown parameter of mlp (value 2)")
    assert second == ("cannot resolve interpolation: Interpolation key 'model.depth' not found."
                      " Did you mean 'model.detph'?")


def test_hydra_add_and_remove_overrides(tmp_path):
    path = write(tmp_path / "c.yaml", """
        data: {name: moons}
        model: {name: mlp, hidden: [8]}
        scheduler: {name: cosine}
    """)
    cfg = load_config(path, ["+model.dropout=0.2", "~scheduler", "++seed=3"])
    assert cfg["model"] == {"name": "mlp", "hidden": [8], "dropout": 0.2}
    assert cfg["scheduler"] is None and cfg["seed"] == 3
    with pytest.raises(ConfigError) as e:
        load_config(path, ["+model.hidden=[4]", "~model.hiden", "~seed=1"])
    text = str(e.value)
    assert "bad override '~seed=1'" in text  # parse problems first, on their own
    with pytest.raises(ConfigError) as e:
        load_config(path, ["+model.hidden=[4]", "~model.hiden"])
    assert e.value.problems == [
        "+model.hidden: model.hidden is already set (to [8]); use model.hidden=VALUE to change it",
        "~model.hiden: no such key to remove. Did you mean 'model.hidden'?"]


def test_hydra_overrides_and_a_short_schedule_on_the_command_line(tmp_path):
    path = write(tmp_path / "c.yaml", """
        data: {name: moons, n_samples: 64, batch_size: 16}
        model: {name: mlp, hidden: [8]}
        scheduler: {name: warmup_cosine}
        loss: {name: cross_entropy}
        trainer: {max_epochs: 2, device: cpu}
        logging: {console: false}
    """)
    runs = tmp_path / "runs"
    r = run_cli("train", str(path), "+model.dropout=0.1", "~loss", "+scheduler.total=1",
                "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr
    [saved] = runs.glob("manual/*/config.yaml")
    cfg = load_config(saved)
    assert cfg["model"]["dropout"] == 0.1 and cfg["loss"] is None
    # a schedule shorter than the run is named before training starts (runlab.schedule_check)
    assert "runlab: warning: scheduler.total: 1 epochs, but the run is 2 epochs long" in r.stderr
