"""`runlab.load_run`, `runlab eval` and `runlab diagnose` on a run trained by the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from runlab_testing import tiny_config


def invoke(*args: str):
    """The real command, in-process: the run and its evaluation share torch's thread count."""
    from typer.testing import CliRunner

    from runlab.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Training and evaluation on one thread, so float reductions happen in one order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread) -> Path:
    root = tmp_path_factory.mktemp("saved")
    cfg = tiny_config(root, data={"test_fraction": 0.25, "n_samples": 128},
                      trainer={"max_epochs": 3},
                      diagnostics=[{"name": "confusion_matrix", "every": 10, "at_end": False}])
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    res = invoke("train", str(root / "tiny.yaml"), "--runs-dir", str(root / "runs"))
    assert res.exit_code == 0, res.output
    (found,) = (root / "runs" / "manual").iterdir()
    return found


def test_eval_reproduces_the_runs_test_metrics_exactly(run_dir):
    summary = json.loads((run_dir / "run.json").read_text())["summary"]
    res = invoke("eval", str(run_dir), "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert set(got) == {"test/loss", "test/acc"}
    assert got["test/acc"] == summary["test/acc"]["final"]  # bit for bit
    assert got["test/loss"] == summary["test/loss"]["final"]
    table = invoke("eval", run_dir.name, "--split", "val", "--checkpoint", "best",
                   "--runs-dir", str(run_dir.parents[1]))
    assert table.exit_code == 0, table.output
    assert "best.pt" in table.stdout and "val/acc" in table.stdout


def test_load_run_gives_model_config_and_metrics(run_dir):
    import torch

    import runlab

    run = runlab.load_run(run_dir, checkpoint="best")
    assert run.config["trainer"]["max_epochs"] == 3 and not run.model.training
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)["model"]
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(tensor, best[name])
    val = run.metrics[run.metrics["metric"] == "val/acc"]
    assert list(val["epoch"]) == [1, 2, 3]
    x = run.splits.test[0][:4]
    assert run.model(x).shape == (4, run.splits.meta.num_classes)


@pytest.mark.parametrize("args,message", [
    (["eval", "--checkpoint", "bset"], "has no checkpoint 'bset'. Did you mean 'best'? "
                                       "Available: best, last"),
    (["eval", "--split", "tst"], "has no 'tst' split. Available: train, val, test"),
    (["diagnose", "--diagnostic", "confusion_matrx"], "Did you mean 'confusion_matrix'?"),
])
def test_bad_input_exits_2(run_dir, args, message):
    res = invoke(args[0], str(run_dir), *args[1:])
    assert res.exit_code == 2 and message in res.stderr, res.output


def test_diagnose_runs_a_diagnostic_on_saved_weights(run_dir):
    res = invoke("diagnose", str(run_dir), "--diagnostic", "confusion_matrix", "n=32")
    assert res.exit_code == 0, res.output
    step = json.loads((run_dir / "run.json").read_text())["step"]
    folder = run_dir / "diagnostics" / "confusion_matrix"
    assert sorted(p.name for p in folder.iterdir()) == [f"step-{step}.npz", f"step-{step}.png"]
    assert (folder / f"step-{step}.png").read_bytes()[:4] == b"\x89PNG"
    assert "accuracy" in res.stdout and f"wrote {folder / f'step-{step}.png'}" in res.stdout
