"""The newcomer's path (issue 18), driven through the real `runlab` command: plugin drawings,
closing lines of failed and resumed runs, listing, help order and one error prefix."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from runlab_testing import run_cli

DIAGNOSTIC = '''
from runlab.diagnostics import Diagnostic, DiagnosticResult, Drawing
from runlab.registry import DIAGNOSTICS


@DIAGNOSTICS.register("out_stats")
class OutStats(Diagnostic):
    """Mean output, drawn by a function of a package beside this file."""

    def __init__(self, module: str = "mypkg.figures", **schedule):
        super().__init__(**schedule)
        self.module = module

    def run(self, ctx):
        z = ctx.model(ctx.x)
        return DiagnosticResult(scalars={"mean": z.mean().item()},
                                figure=Drawing(f"{self.module}:draw", {"codes": z.numpy()}))
'''
FIGURES = '''
import numpy as np


def draw(codes):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot(np.asarray(codes).ravel())
    return fig
'''
FAILING_MODEL = '''
import os

from torch import nn

from runlab.data import DatasetMeta
from runlab.registry import MODELS


@MODELS.register("boom_mlp")
class Boom(nn.Module):
    """Raises on training forward number BOOM_AT (when set)."""

    def __init__(self, meta: DatasetMeta):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(meta.input_dim, meta.num_classes))
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        if str(self.calls) == os.environ.get("BOOM_AT"):
            raise RuntimeError(f"boom at call {self.calls}")
        return self.net(x)
'''


def _project(tmp_path: Path, config: str, model: str = "{name: mlp, hidden: [8]}") -> Path:
    (tmp_path / "plugins" / "mypkg").mkdir(parents=True)
    (tmp_path / "plugins" / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "plugins" / "mypkg" / "figures.py").write_text(FIGURES)
    (tmp_path / "plugins" / "out_stats.py").write_text(DIAGNOSTIC)
    (tmp_path / "plugins" / "boom.py").write_text(FAILING_MODEL)
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent("""
        plugins: [plugins/]
        data: {name: moons, n_samples: 64, batch_size: 16}
        trainer: {max_epochs: 2, device: cpu}
        logging: {console: false}
    """) + f"model: {model}\n" + textwrap.dedent(config))
    return path


def test_a_plugin_drawing_imports_a_package_from_the_plugin_folder(tmp_path):
    """README's `Drawing("mypkg.figures:draw", ...)` with mypkg/ in the plugin folder."""
    config = _project(tmp_path, """
        diagnostics: [{name: out_stats, every: 1}, {name: out_stats, every: 1, module: nopkg.x}]
    """)
    r = run_cli("train", str(config), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [run] = (tmp_path / "runs" / "manual").iterdir()
    assert sorted(p.name for p in (run / "diagnostics" / "out_stats").glob("*.png")) == \
        ["step-4.png", "step-8.png"]
    assert not list((run / "diagnostics" / "out_stats-2").glob("*.png"))
    failed = [line for line in r.stderr.splitlines() if "could not be written" in line]
    assert len(failed) == 2 and all(line.startswith("runlab: warning: diagnostic figure ")
                                    and "ModuleNotFoundError: No module named 'nopkg'" in line
                                    for line in failed)
    assert "sink.close()" not in r.stderr  # no stray source line from `warnings`


def test_a_failed_run_ends_with_its_closing_lines_and_a_resume_announces_itself(tmp_path):
    config = _project(tmp_path, "", model="{name: boom_mlp}")
    runs = tmp_path / "runs"
    r = run_cli("train", str(config), "--runs-dir", str(runs), cwd=tmp_path,
                env={"BOOM_AT": "6"})
    assert r.returncode == 1
    [run] = (runs / "manual").iterdir()
    assert r.stdout.splitlines()[-2:] == [
        f"runlab: run {run.name} failed at epoch 1 step 5: RuntimeError: boom at call 6",
        f"runlab: run folder {run}"]
    resumed = run_cli("runs", "resume", run.name, "--runs-dir", str(runs), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"runlab: resuming run {run.name} at epoch 1 step 4" in resumed.stdout
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_list_shows_markup_text_and_the_defaults_runlab_fills_in():
    schedules = run_cli("list", "hparam-schedules", env={"COLUMNS": "300"})
    assert "clipped to `[min, max]` when given" in schedules.stdout
    schedulers = run_cli("list", "schedulers", env={"COLUMNS": "300"})
    assert "warmup=1, total=run length, min_ratio=0.0" in schedulers.stdout
    assert "T_max=run length" in schedulers.stdout and "T_max," not in schedulers.stdout


def test_help_lists_commands_in_a_projects_order_and_errors_share_one_prefix(tmp_path):
    help_text = run_cli("--help").stdout
    lines = help_text[help_text.index("Commands:"):].splitlines()[1:]
    order = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in ("train", "sweep", "runs", "analyze", "report", "list",
                                          "init")]
    assert order == ["train", "sweep", "runs", "analyze", "report", "list", "init"]
    for args in (("runs", "clean", "--bogus"), ("list", "modles"), ("nosuch",),
                 ("train", str(tmp_path / "missing.yaml")),
                 ("analyze", str(tmp_path), "--metric", "val/acc")):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        errors = [line for line in r.stderr.splitlines() if "rror" in line]
        assert errors and all(line.startswith("runlab: error: ") for line in errors), r.stderr


def test_ensemble_epoch_lines_say_what_the_spread_is(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data: {name: moons, n_samples: 64, batch_size: 16}\n"
                      "model: {name: mlp, hidden: [8]}\ntrainer: {max_epochs: 1, device: cpu}\n")
    r = run_cli("train", str(config), "--seeds", "2", "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "training seeds 0,1" in line)
    assert lines[start].endswith("epoch lines show mean ± std over the seeds")
    assert any(line.startswith("epoch 1/1") and " ± " in line for line in lines[start + 1:])
