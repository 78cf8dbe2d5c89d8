"""WandbWriter in offline mode, read back from W&B's own transaction log (`run-<id>.wandb`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from runlab.errors import ConfigError
from runlab.logging.wandb import WandbWriter, default_mode
from wandb_records import history, records, run_record

pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def log_epoch(writer: WandbWriter, step: int, epoch: int) -> None:
    writer.write_scalars(step, {"train/loss": 1.0 / step, "lr": 0.01}, epoch=epoch)


def test_offline_run_holds_history_and_resume_continues_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = {"model": {"name": "mlp", "hidden": [8]}, "seed": 0}
    writer = WandbWriter(tmp_path, config, run_name="mlp-test", project="runlab-tests")
    run_id = writer.run_id
    log_epoch(writer, 10, 1)
    log_epoch(writer, 20, 2)
    writer.write_image(20, "samples", np.zeros((4, 4, 3), dtype=np.uint8))
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1])
    writer.write_figure(20, "diag/curve", fig)
    assert plt.fignum_exists(fig.number)
    plt.close(fig)
    writer.write_histogram(20, "weights", np.arange(10.0))
    writer.write_text(0, "notes", "a < b")
    writer.write_hparams({"model.name": "mlp"}, {"val/loss": 0.5})
    writer.close()

    resumed = WandbWriter(
        tmp_path, config, "mlp-test", run_id=run_id, project="runlab-tests", resume=True
    )
    assert resumed.run_id == run_id
    log_epoch(resumed, 30, 3)
    resumed.close()

    files = sorted((tmp_path / "wandb").glob(f"offline-run-*-{run_id}*/run-{run_id}.wandb"))
    assert len(files) == 2  # one transaction log per process start; `wandb sync` joins them by id
    first, second = (history(f) for f in files)
    scalars = [r for r in first if "train/loss" in r]
    assert [(r["trainer/step"], r["trainer/epoch"], r["train/loss"]) for r in scalars] == [
        (10, 1, 0.1),
        (20, 2, 0.05),
    ]
    media = {key: row[key]["_type"] for row in first for key in row if isinstance(row[key], dict)}
    assert media == {
        "samples": "image-file",
        "diag/curve": "image-file",
        "weights": "histogram",
        "notes": "html-file",
    }
    assert [(r["trainer/step"], r["train/loss"]) for r in second if "train/loss" in r] == [
        (30, 1 / 30)
    ]

    run = run_record(files[0])
    assert (run.run_id, run.display_name, run.project) == (run_id, "mlp-test", "runlab-tests")
    config_logged = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config_logged["model"] == config["model"]
    assert run_record(files[1]).run_id == run_id
    summary = {
        u.key or "/".join(u.nested_key): json.loads(u.value_json)
        for r in records(files[0])
        if r.WhichOneof("record_type") == "summary"
        for u in r.summary.update
    }
    assert summary["val/loss"] == 0.5
    assert not list(tmp_path.glob("*.wandb"))  # everything stays under <run_dir>/wandb/
    # no banners in stdout.log: only the command that uploads each offline run
    assert capfd.readouterr().out.splitlines() == [
        f"wandb: offline run saved; upload it with: wandb sync {f.parent}" for f in files]


def test_two_runs_at_once_in_one_process(tmp_path: Path) -> None:
    """A seed ensemble trains K runs in one process, each with its own W&B run."""
    a = WandbWriter(tmp_path / "a", {}, run_name="seed0")
    b = WandbWriter(tmp_path / "b", {}, run_name="seed1")
    a.write_scalars(1, {"x": 1.0})
    b.write_scalars(1, {"x": 2.0})
    a.close()
    b.close()
    for run_dir, writer, x in ((tmp_path / "a", a, 1.0), (tmp_path / "b", b, 2.0)):
        (log,) = (run_dir / "wandb").glob(f"offline-run-*/run-{writer.run_id}.wandb")
        assert [row["x"] for row in history(log)] == [x]


def test_disabled_mode_writes_nothing(tmp_path: Path) -> None:
    writer = WandbWriter(tmp_path, {}, run_name="x", mode="disabled")
    writer.write_scalars(1, {"x": 1.0})
    writer.close()
    assert not list(tmp_path.rglob("*.wandb"))


def test_mode_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert default_mode() == "offline"  # no key, no netrc file
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / "netrc").chmod(0o600)
    assert default_mode() == "online"
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert default_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert default_mode() == "disabled"


def test_bad_mode_and_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="logging.wandb.mode: got 'offlien'"):
        WandbWriter(tmp_path, {}, "x", mode="offlien")
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"pip install 'runlab\[wandb\]'"):
        WandbWriter(tmp_path, {}, "x")


def test_group_and_job_type_come_from_the_sweep_setting_or_the_ensemble(tmp_path: Path) -> None:
    from runlab.logging.base import WriterContext
    from runlab.registry import WRITERS

    infos = [{"sweep": {"name": "lr", "setting": "s001", "trial": 1}, "ensemble": "e-1"},
             {"ensemble": "ens-abc"}, {}]
    expected = [("lr-s001", "sweep"), ("ens-abc", "ensemble"), ("", "train")]
    writers = []
    for i, info in enumerate(infos):
        stored: dict = {}
        (tmp_path / str(i)).mkdir()  # the run folder
        context = WriterContext(tmp_path / str(i), {"seed": i}, f"r{i}", f"run{i}", info,
                                record=stored.update)
        writer = WRITERS.get("wandb").obj(context, project="runlab-tests")
        writer.finish("failed", 1)
        writer.close()
        assert stored["wandb"]["id"] == writer.run_id
        writers.append(writer)
    for i, (writer, (group, job_type)) in enumerate(zip(writers, expected, strict=True)):
        (log,) = (tmp_path / str(i) / "wandb").glob(f"offline-run-*/run-{writer.run_id}.wandb")
        kinds = list(records(log))
        record = next(r.run for r in kinds if r.WhichOneof("record_type") == "run")
        assert (record.run_group, record.job_type) == (group, job_type)
        assert [r.exit.exit_code for r in kinds if r.WhichOneof("record_type") == "exit"] == [1]


def test_figures_reach_wandb_without_pyplot(tmp_path: Path) -> None:
    """A Figure made without pyplot (as runlab's diagnostics make them) is sent as pixels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    writer = WandbWriter(tmp_path, {}, run_name="fig")
    writer.write_figure(5, "diag/x", fig)
    writer.close()
    (log,) = (tmp_path / "wandb").glob(f"offline-run-*/run-{writer.run_id}.wandb")
    (row,) = [r for r in history(log) if "diag/x" in r]
    image = row["diag/x"]
    assert (image["_type"], image["width"], image["height"]) == ("image-file", 100, 100)
    assert (log.parent / "files" / image["path"]).read_bytes()[:4] == b"\x89PNG"
