"""`runlab runs list/show/delete/clean` and RUN resolution, driven as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runlab.errors import ConfigError
from runlab.runs.cli import app
from runlab.runs.store import resolve_run

runner = CliRunner()
ENTRY = [sys.executable, "-c", "from runlab.runs.cli import app; app()"]


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def listed(root: Path, *args: str) -> list[dict]:
    result = invoke("list", root, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---- list ----------------------------------------------------------------------------------


def test_list_table_shows_runs_from_manual_and_sweeps(runs_root: Path, make_run) -> None:
    make_run("mlp-20261128-101500-aaaa", metrics={"val/acc": 0.91, "train/loss": 0.2})
    make_run("vae-20261128-101600-bbbb", sweep="vae-beta", status="failed", seed=2)
    result = invoke("list", runs_root)
    assert result.exit_code == 0, result.output
    for text in ("mlp-20261128-101500-aaaa", "vae-20261128-101600-bbbb", "failed", "vae-beta"):
        assert text in result.stdout
    assert "val/acc" in result.stdout and "0.91" in result.stdout
    sweep_dir = runs_root / "sweeps" / "vae-beta"
    assert [r["id"] for r in listed(sweep_dir)] == ["vae-20261128-101600-bbbb"]
    assert [r["id"] for r in listed(sweep_dir / "vae-20261128-101600-bbbb")] == [
        "vae-20261128-101600-bbbb"
    ]


def test_dead_running_run_lists_as_crashed(runs_root: Path, make_run, running, dead_pid) -> None:
    make_run("mlp-20261128-101500-aaaa", **running(dead_pid))
    [record] = listed(runs_root)
    assert record["status"] == "crashed"
    assert record["recorded_status"] == "running"
    assert [r["id"] for r in listed(runs_root, "--status", "crashed")] == [record["id"]]
    assert listed(runs_root, "--status", "running") == []


def test_dead_running_run_lists_as_crashed_in_a_real_process(
    runs_root: Path, make_run, running
) -> None:
    """A real training-like process killed with -9: the next `runs list` sees a crash."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    make_run("mlp-20261128-101500-aaaa", **running(proc.pid))
    before = subprocess.run([*ENTRY, "list", runs_root, "--json"], capture_output=True, text=True)
    proc.kill()
    proc.wait()
    after = subprocess.run([*ENTRY, "list", runs_root], capture_output=True, text=True)
    assert json.loads(before.stdout)[0]["status"] == "running"
    assert after.returncode == 0, after.stderr
    assert "crashed" in after.stdout and "running" not in after.stdout


def test_where_matches_yaml_typed_values(runs_root: Path, make_run) -> None:
    make_run(
        "a-20261128-101500-0001", config={"model": {"latent_dim": 8}, "optimizer": {"lr": 0.001}}
    )
    make_run(
        "b-20261128-101500-0002", config={"model": {"latent_dim": 16}, "optimizer": {"lr": 0.01}}
    )
    ids = lambda *args: [r["id"][0] for r in listed(runs_root, *args)]  # noqa: E731
    assert ids("--where", "model.latent_dim=8") == ["a"]
    assert ids("--where", "optimizer.lr=1e-3") == ["a"]
    assert ids("--where", "model.latent_dim=16", "--where", "optimizer.lr=0.001") == []


@pytest.mark.parametrize(
    ("where", "message"),
    [("model.latent_dim", "expected KEY=VALUE"), ("model.latnt_dim=8", "'model.latent_dim'")],
)
def test_bad_where_is_usage_error(runs_root: Path, make_run, where: str, message: str) -> None:
    make_run("a-20261128-101500-0001", config={"model": {"latent_dim": 8}})
    result = invoke("list", runs_root, "--where", where)
    assert result.exit_code == 2
    assert message in result.stderr


def test_sort_by_metric_direction(runs_root: Path, make_run) -> None:
    make_run("a-20261128-101500-0001", metrics={"val/acc": 0.7, "val/loss": 0.3})
    make_run("b-20261128-101500-0002", metrics={"val/acc": 0.9, "val/loss": 0.5})
    make_run("c-20261128-101500-0003", metrics={"val/acc": 0.8, "val/loss": 0.1})
    make_run("d-20261128-101500-0004")  # never logged: always last
    order = lambda spec: "".join(r["id"][0] for r in listed(runs_root, f"--sort={spec}"))  # noqa: E731
    assert order("val/acc") == "bcad"
    assert order("val/loss") == "cabd"
    assert order("-val/loss") == "bacd"
    assert order("+val/acc") == "acbd"


def test_default_order_is_most_recent_first_and_limit_notes_the_rest(
    runs_root: Path, make_run
) -> None:
    for i in range(5):
        make_run(f"r{i}-20261128-101500-000{i}", started=f"2026-11-28T10:1{i}:00+00:00")
    assert [r["id"][:2] for r in listed(runs_root)] == ["r4", "r3", "r2", "r1", "r0"]
    result = invoke("list", runs_root, "--limit", "2")
    assert "r4-" in result.stdout and "r3-" in result.stdout and "r2-" not in result.stdout
    assert "showing 2 of 5 runs" in result.stderr


def test_list_defaults_to_env_runs_dir(runs_root: Path, make_run, monkeypatch) -> None:
    make_run("mlp-20261128-101500-aaaa")
    monkeypatch.setenv("RUNLAB_RUNS_DIR", str(runs_root))
    assert "mlp-20261128-101500-aaaa" in invoke("list").stdout


def test_list_missing_folder_and_bad_status_exit_2(runs_root: Path) -> None:
    assert invoke("list", runs_root / "nope").exit_code == 2
    result = invoke("list", runs_root, "--status", "crashd")
    assert result.exit_code == 2 and "did you mean 'crashed'" in result.stderr.lower()


# ---- RUN resolution ------------------------------------------------------------------------


def test_resolve_by_id_prefix_and_path(runs_root: Path, make_run) -> None:
    a = make_run("mlp-20261128-101500-aaaa")
    b = make_run("mlp-20261128-101500-abcd", sweep="s")
    assert resolve_run("mlp-20261128-101500-aaaa", runs_root) == a
    assert resolve_run("mlp-20261128-101500-ab", runs_root) == b
    assert resolve_run(str(a), runs_root) == a


def test_ambiguous_prefix_lists_candidates(runs_root: Path, make_run) -> None:
    make_run("mlp-20261128-101500-aaaa")
    make_run("mlp-20261128-101500-abcd", sweep="s")
    with pytest.raises(ConfigError, match="ambiguous") as err:
        resolve_run("mlp-2026", runs_root)
    assert "mlp-20261128-101500-aaaa" in str(err.value)
    assert "mlp-20261128-101500-abcd" in str(err.value)


def test_unknown_id_suggests_close_matches(runs_root: Path, make_run) -> None:
    make_run("mlp-20261128-101500-aaaa")
    with pytest.raises(ConfigError, match="Did you mean 'mlp-20261128-101500-aaaa'"):
        resolve_run("mpl-20261128-101500-aaaa", runs_root)
    with pytest.raises(ConfigError, match="not a run folder"):
        resolve_run(str(runs_root / "manual"), runs_root)


def test_show_unknown_run_exits_2(runs_root: Path, make_run) -> None:
    make_run("mlp-20261128-101500-aaaa")
    result = invoke("show", "mlp-2026112-x", "--runs-dir", runs_root)
    assert result.exit_code == 2 and "no run 'mlp-2026112-x'" in result.stderr


# ---- show ----------------------------------------------------------------------------------


def test_show_prints_config_provenance_summary_error_and_files(runs_root: Path, make_run) -> None:
    run_dir = make_run(
        "vae-20261128-101500-aaaa",
        status="failed",
        config={"model": {"name": "vae", "latent_dim": 8}},
        metrics={"val/loss": 0.3125},
        git={"commit": "0123456789abcdef", "branch": "main", "dirty": True},
        versions={"python": "3.11.7", "torch": "2.5.0"},
        command=["runlab", "train", "configs/vae.yaml"],
        error={"type": "ValueError", "message": "loss is nan", "traceback": "Traceback ...\n"},
    )
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"x" * 2048)
    result = invoke("show", "vae-2026", "--runs-dir", runs_root)
    assert result.exit_code == 0, result.output
    for text in (
        "latent_dim",
        "0123456789ab",
        "(dirty)",
        "torch=2.5.0",
        "runlab train configs/vae.yaml",
        "val/loss",
        "0.3125",
        "ValueError",
        "loss is nan",
        "checkpoints/",
        "2.0 KB",
    ):
        assert text in result.stdout, text


# ---- delete and clean ----------------------------------------------------------------------


def test_delete_asks_and_no_answer_deletes_nothing(runs_root: Path, make_run) -> None:
    run_dir = make_run("mlp-20261128-101500-aaaa")
    for answer in (None, "n\n"):  # no stdin at all, then an explicit no
        result = invoke("delete", "mlp-2026", "--runs-dir", runs_root, input=answer)
        assert result.exit_code == 1 and "nothing deleted" in result.stderr
        assert run_dir.exists()
    result = invoke("delete", "mlp-2026", "--runs-dir", runs_root, input="y\n")
    assert result.exit_code == 0 and not run_dir.exists()


def test_delete_without_stdin_in_a_real_process(runs_root: Path, make_run) -> None:
    run_dir = make_run("mlp-20261128-101500-aaaa")
    done = subprocess.run(
        [*ENTRY, "delete", "mlp-20261128-101500-aaaa", "--runs-dir", runs_root],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "nothing deleted" in done.stderr
    assert run_dir.exists()


def test_delete_several_with_yes(runs_root: Path, make_run) -> None:
    a = make_run("a-20261128-101500-0001")
    b = make_run("b-20261128-101500-0002", sweep="s", status="failed")
    keep = make_run("c-20261128-101500-0003")
    result = invoke("delete", "a-", str(b), "--yes", "--runs-dir", runs_root)
    assert result.exit_code == 0, result.output
    assert not a.exists() and not b.exists() and keep.exists()


def test_running_run_cannot_be_deleted(runs_root: Path, make_run, running, live_pid) -> None:
    live = make_run("live-20261128-101500-0001", **running(live_pid))
    other = make_run("done-20261128-101500-0002")
    result = invoke("delete", "live-", "done-", "--yes", "--runs-dir", runs_root)
    assert result.exit_code == 2
    assert "refusing to delete running run" in result.stderr
    assert live.exists() and other.exists()  # all or nothing


def test_invalid_ref_deletes_nothing(runs_root: Path, make_run) -> None:
    run_dir = make_run("a-20261128-101500-0001")
    result = invoke("delete", "a-", "zzz", "--yes", "--runs-dir", runs_root)
    assert result.exit_code == 2 and "no run 'zzz'" in result.stderr
    assert run_dir.exists()


def test_paths_outside_the_runs_root_are_refused(
    runs_root: Path, tmp_path: Path, make_run_at
) -> None:
    outside = make_run_at(tmp_path / "elsewhere", "x-20261128-101500-0001")
    link = runs_root / "manual" / "y-20261128-101500-0002"
    link.parent.mkdir(parents=True)
    os.symlink(make_run_at(tmp_path / "other", "y-20261128-101500-0002"), link)
    for ref in (str(outside), "y-20261128"):
        result = invoke("delete", ref, "--yes", "--runs-dir", runs_root)
        assert result.exit_code == 2 and "not inside the runs root" in result.stderr, ref
    assert outside.exists() and link.resolve().exists()


def test_clean_removes_only_the_given_statuses(
    runs_root: Path, make_run, running, dead_pid, live_pid
) -> None:
    failed = make_run("f-20261128-101500-0001", status="failed")
    crashed = make_run("c-20261128-101500-0002", **running(dead_pid))
    live = make_run("l-20261128-101500-0003", **running(live_pid))
    done = make_run("d-20261128-101500-0004")
    assert invoke("clean", "--runs-dir", runs_root).exit_code == 1  # no stdin: asks, no
    assert failed.exists()
    assert invoke("clean", "--yes", "--runs-dir", runs_root).exit_code == 0  # default: failed
    assert not failed.exists() and crashed.exists()
    result = invoke("clean", "--status", "crashed,running", "--yes", "--runs-dir", runs_root)
    assert result.exit_code == 2 and "unknown status 'running'" in result.stderr
    assert invoke("clean", "-s", "crashed", "--yes", "--runs-dir", runs_root).exit_code == 0
    assert not crashed.exists() and live.exists() and done.exists()


def test_clean_takes_statuses_as_arguments(runs_root: Path, make_run, running, dead_pid) -> None:
    failed = make_run("f-20261128-101500-0001", status="failed")
    crashed = make_run("c-20261128-101500-0002", **running(dead_pid))
    interrupted = make_run("i-20261128-101500-0003", status="interrupted")
    assert invoke("clean", "failed", "crashed", "--yes", "--runs-dir", runs_root).exit_code == 0
    assert not failed.exists() and not crashed.exists() and interrupted.exists()
    result = invoke("clean", "interupted", "--yes", "--runs-dir", runs_root)
    assert result.exit_code == 2 and "Did you mean 'interrupted'?" in result.stderr


def test_every_runs_command_takes_runs_dir(runs_root: Path, make_run) -> None:
    make_run("mlp-20261128-101500-aaaa")
    assert [r["id"] for r in json.loads(invoke("list", "--runs-dir", runs_root, "--json").stdout)] \
        == ["mlp-20261128-101500-aaaa"]
    assert listed(runs_root)[0]["id"] == "mlp-20261128-101500-aaaa"  # PATH still works
    both = invoke("list", runs_root / "manual", "--runs-dir", runs_root)
    assert both.exit_code == 2 and "not both" in both.stderr
    for command in ("show", "resume", "delete", "clean"):  # resume is added by runlab.cli
        helped = subprocess.run([sys.executable, "-m", "runlab", "runs", command, "--help"],
                                capture_output=True, text=True)
        assert "--runs-dir" in helped.stdout


def test_show_lines_are_not_padded_and_errors_share_one_prefix(runs_root: Path, make_run) -> None:
    make_run("mlp-20261128-101500-aaaa", metrics={"val/acc": 0.91})
    shown = subprocess.run([*ENTRY, "show", "mlp-2026", "--runs-dir", runs_root],
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    overview = shown.stdout.split("\n\n")[0].splitlines()
    assert overview[0].startswith("id") and all(line == line.rstrip() for line in overview)
    missing = invoke("show", "nope", "--runs-dir", runs_root)
    assert missing.exit_code == 2 and missing.stderr.startswith("runlab: error: ")
