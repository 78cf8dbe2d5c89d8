"""`runlab analyze` / `runlab report` commands, registered on a typer app as cli.py will."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from runlab.analysis.cli import analyze, report

app = typer.Typer()
app.command("analyze")(analyze)
app.command("report")(report)


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_analyze_formats(sweep_dir):
    res = invoke("analyze", sweep_dir, "--metric", "val/loss", "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["n"] for r in rows] == [4, 3, 3, 3] and {"ci_low", "sem"} <= set(rows[0])
    res = invoke("analyze", sweep_dir, "-m", "val/acc", "-g", "optimizer.lr", "--stat", "best",
                 "--format", "csv")
    header = res.stdout.splitlines()[0]
    assert header.startswith("metric,optimizer.lr,n,mean,std,sem,ci_low,ci_high")
    assert header.endswith("diff,diff_ci_low,diff_ci_high,hedges_g,welch_p_holm,mw_p_holm,verdict")
    assert len(res.stdout.splitlines()) == 3
    res = invoke("analyze", sweep_dir, "-m", "val/loss", "--format", "markdown")
    assert res.stdout.startswith("### val/loss (final, minimize)\n\n| model.width | optimizer.lr |")
    res = invoke("analyze", sweep_dir, "-m", "val/loss")
    assert "val/loss (final, minimize) over 13 runs" in res.stdout and "…" not in res.stdout
    assert "best mean: model.width=32, optimizer.lr=0.1; not distinguishable" in res.stdout


@pytest.mark.parametrize("args,message", [
    (["-m", "val/los"], "Did you mean 'val/loss'? Available: train/loss, val/acc, val/loss"),
    (["-m", "val/loss", "-g", "model.widht"], "Did you mean 'model.width'?"),
])
def test_analyze_bad_input_exits_2(sweep_dir, args, message):
    res = invoke("analyze", sweep_dir, *args)
    assert res.exit_code == 2 and message in res.stderr and res.stdout == ""


def _sweep_yaml(folder, metric, goal, stat="final", parameters=("optimizer.lr",)):
    spec = {"name": folder.name, "metric": {"name": metric, "goal": goal, "stat": stat},
            "parameters": {k: [] for k in parameters}}
    (folder / "sweep.yaml").write_text(json.dumps(spec))


def test_analyze_defaults_to_the_sweeps_metric_goal_and_parameters(sweep_dir):
    _sweep_yaml(sweep_dir, "val/acc", "maximize", "best")
    res = invoke("analyze", sweep_dir, "--format", "json")
    rows = json.loads(res.stdout)
    assert {r["metric"] for r in rows} == {"val/acc"}
    assert [r["optimizer.lr"] for r in rows] == [0.01, 0.1] and "model.width" not in rows[0]
    assert [r["verdict"] for r in rows] == ["worse at 95%", "best"]
    table = invoke("analyze", sweep_dir).stdout
    assert "val/acc (best, maximize) over 13 runs" in table
    # a goal that contradicts the name is taken from the sweep, not guessed
    _sweep_yaml(sweep_dir, "val/acc", "minimize")
    rows = json.loads(invoke("analyze", sweep_dir, "--format", "json").stdout)
    assert [r["verdict"] for r in rows] == ["best", "worse at 95%"]


def test_analyze_metric_globs_and_by(sweep_dir):
    _sweep_yaml(sweep_dir, "val/acc", "maximize")
    res = invoke("analyze", sweep_dir, "-m", "val/*", "--by", "model.width", "-f", "json")
    rows = json.loads(res.stdout)
    assert [(r["metric"], r["model.width"]) for r in rows] == [
        ("val/acc", 32), ("val/acc", 64), ("val/loss", 32), ("val/loss", 64)]  # sweep's first
    res = invoke("analyze", sweep_dir, "-m", "test/*")
    assert res.exit_code == 2 and "unknown metric 'test/*'" in res.stderr


def test_no_runs_exits_2(tmp_path):
    res = invoke("analyze", tmp_path, "-m", "val/loss")
    assert res.exit_code == 2 and "no runs found" in res.stderr
    assert invoke("report", tmp_path / "missing").exit_code == 2


def test_report_command(tmp_path, make_run):
    for seed in range(2):  # a small set keeps this fast; test_report.py covers the content
        make_run(tmp_path / "runs", "r", {"seed": seed}, {"val/acc": [0.5, 0.6 + seed / 10]})
    out = tmp_path / "r.html"
    res = invoke("report", tmp_path / "runs", "-o", out)
    assert res.exit_code == 0 and "2 runs" in res.stdout
    assert "Summary: val/acc" in out.read_text(encoding="utf-8")


def test_cli_module_imports_no_heavy_libraries():
    code = ("import sys, runlab.analysis.cli; "
            "print(sorted(m for m in ('pandas', 'scipy', 'matplotlib', 'numpy', 'optuna') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_real_cli_end_to_end(sweep_dir):
    """As a user would: `python -m runlab analyze ...` in a subprocess."""
    run = [sys.executable, "-m", "runlab", "analyze", str(sweep_dir)]
    ok = subprocess.run([*run, "-m", "val/acc", "-g", "model.width", "--format", "json"],
                        capture_output=True, text=True, timeout=120)
    if "No such command" in ok.stderr:
        pytest.skip("runlab.cli does not register `analyze` yet")
    assert ok.returncode == 0, ok.stderr
    assert [r["model.width"] for r in json.loads(ok.stdout)] == [32, 64]
    bad = subprocess.run([*run, "-m", "val/ac"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Did you mean 'val/acc'?" in bad.stderr


def test_report_takes_metric_and_by(sweep_dir, tmp_path):
    out = tmp_path / "r.html"
    res = invoke("report", sweep_dir, "-o", out, "-m", "val/acc", "-m", "train/*",
                 "--by", "model.width")
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert page.index("Summary: val/acc") < page.index("Summary: train/loss")
    assert "grouped by model.width;" in page and "main metric <b>val/acc</b>\n(maximize" in page
    bad = invoke("report", sweep_dir, "-o", out, "--by", "model.widht")
    assert bad.exit_code == 2 and "Did you mean 'model.width'?" in bad.stderr
