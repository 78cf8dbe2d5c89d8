"""End to end: the real `runlab` command in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import textwrap

import yaml

from runlab_testing import run_cli

RUN_FILES = {"config.yaml", "run.json", "metrics.csv", "stdout.log", "environment.txt",
             "checkpoints"}


def write_config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(f"""
        name: tiny
        data: {{name: moons, n_samples: 80, batch_size: 16, root: {tmp_path / 'data'}}}
        model: {{name: mlp, hidden: [8]}}
        optimizer: {{name: adam, lr: 1.0e-2}}
        trainer: {{max_epochs: 2, device: cpu}}
    """) + extra)
    return str(path)


def test_train_writes_a_complete_run_folder_and_reruns_from_it(tmp_path):
    runs = tmp_path / "runs"
    r = run_cli("train", write_config(tmp_path), "trainer.max_epochs=3", "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr
    (run,) = (runs / "manual").iterdir()
    assert {p.name for p in run.iterdir()} >= RUN_FILES
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.pt", "best.pt"}
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["seed"] == 0 and info["id"] == run.name
    assert {"python", "torch", "runlab"} <= set(info["versions"])
    assert "final" in info["summary"]["val/acc"]
    assert "val/acc" in r.stdout and "epoch 3/3" in r.stdout
    assert "epoch 3/3" in (run / "stdout.log").read_text()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,time,metric,value" and any(",val/acc," in x for x in rows)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 3 and saved["seed"] == 0

    again = run_cli("train", str(run / "config.yaml"), "--runs-dir", str(runs), "--name", "again")
    assert again.returncode == 0, again.stderr
    (rerun,) = [p for p in (runs / "manual").iterdir() if p.name.startswith("again-")]
    a = [x.rsplit(",", 1)[1] for x in rows[1:] if ",val/" in x]
    b = [x.rsplit(",", 1)[1] for x in (rerun / "metrics.csv").read_text().splitlines()[1:] if ",val/" in x]
    assert a == b  # the saved config reproduces the run's numbers


def test_list_shows_names_descriptions_and_parameters():
    r = run_cli("list", "models")
    assert r.returncode == 0
    for text in ("mlp", "vae", "latent_dim=8", "Multi-layer perceptron"):
        assert text in r.stdout
    bad = run_cli("list", "modles")
    assert bad.returncode == 2 and "Did you mean 'models'" in bad.stderr


def test_plugin_model_and_dataset_train_without_touching_runlab(tmp_path):
    r = run_cli("init", str(tmp_path / "proj"))
    assert r.returncode == 0, r.stderr
    proj = tmp_path / "proj"
    r = run_cli("train", "configs/example.yaml", "trainer.max_epochs=2", cwd=proj)
    assert r.returncode == 0, r.stderr
    (run,) = (proj / "runs" / "manual").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    listed = run_cli("list", "models")  # outside the project the plugin is not loaded
    assert "sine_mlp" not in listed.stdout
    assert run_cli("init", str(proj)).returncode == 2  # never overwrite a project


def test_help_lists_every_command():
    r = run_cli("--help")
    for cmd in ("train", "sweep", "runs", "analyze", "report", "list", "init"):
        assert cmd in r.stdout


def test_fast_exit_keeps_exit_handlers_and_unclosed_files(tmp_path):
    """`runlab` ends without the interpreter's slow module teardown (os._exit), but only
    after every exit handler ran and every file still open was flushed."""
    plugin = tmp_path / "leaky.py"
    plugin.write_text(textwrap.dedent(f"""
        import atexit
        from pathlib import Path

        LEAK = open({str(tmp_path / 'unclosed.txt')!r}, "w")  # never closed
        LEAK.write("written, never flushed")
        atexit.register(lambda: Path({str(tmp_path / 'atexit.txt')!r}).write_text("ran"))
    """))
    config = write_config(tmp_path, f"plugins: [{plugin}]\n")
    r = run_cli("train", config, "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "unclosed.txt").read_text() == "written, never flushed"
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    failed = run_cli("train", config, "--runs-dir", str(tmp_path / "runs"), "trainer.max_epochs=-1")
    assert failed.returncode == 2, failed.stderr
