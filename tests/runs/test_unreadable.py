"""One broken run folder never breaks a command over the runs root: it is listed `unreadable`
with the reason, and everything else works as if it were not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runlab.runs import store
from runlab.runs.cli import app
from runlab_testing import run_cli

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))  # 10**9 values once expanded
METRICS = "step,epoch,time,metric,value\n1,1,0.1,val/loss,0.5\n2,2,0.2,val/loss,0.25\n"

BAD_RUN_JSON = {
    "a-list": "[1, 2]",
    "wrong-types": json.dumps({"id": "wrong-types", "status": "completed", "summary": [1, 2]}),
    "truncated": '{"id": "truncated", "status": "comp',
    "status-number": json.dumps({"status": 5}),
    "pid-text": json.dumps({"status": "running", "pid": "12", "host": "h"}),
}


@pytest.fixture
def broken_root(runs_root: Path, make_run) -> Path:
    good = make_run("good-20261128-101500-0001", config={"model": {"name": "mlp"}})
    (good / "metrics.csv").write_text(METRICS)
    for name, text in BAD_RUN_JSON.items():
        (make_run(f"{name}-20261128-101500-0002") / "run.json").write_text(text)
    (make_run("bad-yaml-20261128-101500-0003") / "config.yaml").write_text("model: [1, 2\n")
    (make_run("bomb-20261128-101500-0004") / "config.yaml").write_text(BOMB)
    rows = make_run("bad-rows-20261128-101500-0005", config={"model": {"name": "cnn"}})
    (rows / "metrics.csv").write_text(METRICS + "3,3,0.3,val/loss,abc\n4,x,0.4,val/loss,0.1\n")
    make_run("cmd-20261128-101500-0006", command=["runlab", "train", "x[/]y.yaml", "[bold]"])
    return runs_root


def test_read_run_names_the_problem(broken_root: Path) -> None:
    records = {r["id"].rsplit("-20261128", 1)[0]: r for r in store.load_runs(broken_root)}
    for name in BAD_RUN_JSON:
        assert records[name]["status"] == "unreadable", name
        assert records[name]["error"]["message"], name
    assert "field 'summary' must be" in records["wrong-types"]["error"]["message"]
    assert "field 'pid' must be" in records["pid-text"]["error"]["message"]
    assert records["good"]["status"] == "completed"


def test_yaml_alias_bomb_is_refused_without_expanding(broken_root: Path) -> None:
    with pytest.raises(ValueError, match="alias"):
        store.read_config_checked(next(broken_root.glob("manual/bomb-*")))


def test_runs_commands_survive_broken_runs(broken_root: Path) -> None:
    listed = run_cli("runs", "list", str(broken_root), "--json")
    assert listed.returncode == 0, listed.stderr
    statuses = sorted(r["status"] for r in json.loads(listed.stdout))
    assert statuses.count("unreadable") == len(BAD_RUN_JSON) and len(statuses) == 10
    table = run_cli("runs", "list", str(broken_root))
    assert table.returncode == 0 and "unreadable" in table.stdout
    for run_dir in sorted((broken_root / "manual").iterdir()):
        shown = CliRunner().invoke(app, ["show", str(run_dir), "--runs-dir", str(broken_root)])
        assert shown.exit_code == 0 and shown.exception is None, (run_dir, shown.output)
    shown = run_cli("runs", "show", "cmd-20261128", "--runs-dir", str(broken_root))
    assert "x[/]y.yaml" in shown.stdout and "[bold]" in shown.stdout


def test_analyze_skips_broken_runs(broken_root: Path) -> None:
    result = run_cli("analyze", str(broken_root), "-m", "val/loss", "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)  # valid JSON: no NaN / Infinity
    assert sum(row["n"] for row in rows) == 2  # good, and bad-rows from its parsable rows
    assert "skipping unreadable run" in result.stderr and "bad-yaml" in result.stderr
    assert "skipped 2 row(s)" in result.stderr


@pytest.mark.slow
def test_report_skips_broken_runs_and_makes_its_folder(broken_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "not" / "yet" / "report.html"
    report = run_cli("report", str(broken_root), "-o", str(out), timeout=300)
    assert report.returncode == 0, report.stderr
    assert out.stat().st_size > 0


def test_stray_run_json_hides_nothing_and_clean_keeps_the_runs(runs_root: Path, make_run) -> None:
    done = make_run("done-20261128-101500-0001")
    failed = make_run("failed-20261128-101500-0002", status="failed")
    (runs_root / "manual" / "run.json").write_text(json.dumps({"status": "failed"}))
    listed = json.loads(run_cli("runs", "list", str(runs_root), "--json").stdout)
    assert {Path(r["path"]).name for r in listed} >= {done.name, failed.name}
    result = run_cli("runs", "clean", "--yes", "--runs-dir", str(runs_root))
    assert result.returncode == 0, result.stderr
    assert "holds 2 other run(s)" in result.stderr
    assert done.exists() and not failed.exists() and (runs_root / "manual").is_dir()
