"""Writers and diagnostics through real `runlab` processes, read back with each tool's own
reader: TensorBoard's EventAccumulator and W&B's offline transaction log.

A small VAE on 8x8 images logs to metrics.csv, TensorBoard and an offline W&B run, with two
built-in diagnostics and a broken plugin one (plugins/failing_diagnostic.py). TensorBoard
and W&B must hold exactly what metrics.csv holds, step for step, plus the diagnostics'
figures. A second run makes the broken diagnostic `strict: true` and must fail. The slow
test stops the VAE run with SIGTERM (the signal-at-step hook of
tests/train/plugins/resume_hooks.py) and resumes it: one W&B run, nothing logged twice.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from wandb_records import history, records, run_record

pytest.importorskip("wandb")
pytest.importorskip("mlflow")
EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator"
).EventAccumulator
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

FAILING = Path(__file__).parent / "plugins" / "failing_diagnostic.py"
RESUME_HOOKS = Path(__file__).parents[1] / "train" / "plugins" / "resume_hooks.py"
TIMEOUT_S = 180

# 250 images, 20% for validation: 200 train = 10 batches of 20 per epoch, 2 epochs.
EPOCH_ENDS = [10, 20]
# logging.log_every_steps 3, and the partial window at each epoch end
LOG_STEPS = [3, 6, 9, 10, 12, 15, 18, 20]
STOP_AT = 13  # SIGTERM after this step: epoch 1, after epoch 0's diagnostics ran
# The built-in diagnostics that should work, and the steps they run at: `every: 2` runs
# after the second epoch only (and not again at the end: that is the same step).
DIAGNOSTICS = {"latent_space": EPOCH_ENDS, "reconstructions": EPOCH_ENDS[1:]}

DATA = {"name": "tensors", "path": "bars.npz", "batch_size": 20, "val_fraction": 0.2}
VAE: dict[str, Any] = {
    "name": "vae-logged",
    "seed": 0,
    "plugins": [str(FAILING)],
    "data": DATA,
    "model": {"name": "vae", "latent_dim": 2, "hidden": [32]},
    "loss": {"name": "elbo", "beta": {"schedule": "linear", "start": 0.0, "end": 1.0, "epochs": 2}},
    "optimizer": {"name": "adam", "lr": 1.0e-3},
    "trainer": {"max_epochs": 2, "device": "cpu"},
    "diagnostics": [
        {"name": "latent_space", "every": 1},
        {"name": "reconstructions", "every": 2, "n": 8},
        {"name": "always_fails", "every": 1},
    ],
    "logging": {
        "log_every_steps": 3,
        "tensorboard": True,
        "wandb": {"enabled": True, "mode": "offline", "project": "runlab-tests"},
        "writers": [{"name": "mlflow", "experiment": "runlab-tests"}],  # ./mlruns in the root
    },
}
# The same run, stoppable at a step by $RUNLAB_TEST_SIGNAL.
STOPPABLE = {**VAE, "plugins": [str(RESUME_HOOKS), str(FAILING)],
             "callbacks": [{"name": "signal_at_step"}]}
# wandb alone (no TensorBoard): the confusion matrix's figure must reach it all the same.
STRICT: dict[str, Any] = {
    "name": "strict",
    "seed": 0,
    "plugins": [str(FAILING)],
    "data": DATA,
    "model": {"name": "mlp", "hidden": [8]},
    "trainer": {"max_epochs": 2, "device": "cpu"},
    "diagnostics": [{"name": "confusion_matrix", "every": 1},
                    {"name": "always_fails", "every": 1, "strict": True}],
    "logging": {"wandb": {"enabled": True, "mode": "offline", "project": "runlab-tests"}},
}


@dataclass
class Finished:
    """A finished `runlab` process and the run folder it wrote."""

    run_dir: Path
    code: int
    out: str


def write_data(root: Path) -> None:
    """`bars.npz`: 8x8 images of one horizontal or vertical bar (16 classes) plus noise,
    and a fixed test split."""
    g = np.random.default_rng(0)
    y = g.integers(0, 16, size=300)
    x = g.normal(0.0, 0.1, size=(300, 1, 8, 8)).astype(np.float32)
    for i, label in enumerate(y):
        if label < 8:
            x[i, 0, label, :] += 1.0
        else:
            x[i, 0, :, label - 8] += 1.0
    np.savez(root / "bars.npz", x=x[:250], y=y[:250], x_test=x[250:], y_test=y[250:])


def cli(root: Path, *args: str, **extra_env: str) -> subprocess.Popen:
    """The real `runlab` in `root`, single-threaded, W&B's own folders kept in `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLAB_", "WANDB_"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(root / "wandb-config"),
               WANDB_CACHE_DIR=str(root / "wandb-cache"),
               WANDB_DATA_DIR=str(root / "wandb-data"), **extra_env)
    return subprocess.Popen([sys.executable, "-m", "runlab", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def train(root: Path, config: dict[str, Any], name: str, **extra_env: str) -> subprocess.Popen:
    """`runlab train` of `config`, data in `root`, runs under `root/name`."""
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**config, "data": {**config["data"], "root": str(root)}}))
    return cli(root, "train", str(path), "--runs-dir", str(root / name), **extra_env)


def finish(proc: subprocess.Popen, runs: Path) -> Finished:
    out, _ = proc.communicate(timeout=TIMEOUT_S)
    (run_dir,) = (runs / "manual").iterdir()
    return Finished(run_dir, proc.returncode, out)


def run_json(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def csv_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as metric -> [(step, value), ...] in file order."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            series[row["metric"]].append((int(row["step"]), float(row["value"])))
    return dict(series)


def steps(points: list[tuple[int, Any]]) -> list[int]:
    return [step for step, _ in points]


def assert_tensorboard_mirrors_csv(run_dir: Path, processes: int) -> None:
    """Every metrics.csv row as a TensorBoard scalar at its step, the diagnostics' figures
    as images at the epoch ends; one event file per process of the run."""
    tb = run_dir / "tensorboard"
    assert len(list(tb.glob("events.out.tfevents.*"))) == processes
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    expected = csv_series(run_dir)
    assert set(acc.Tags()["scalars"]) == set(expected) | {"epoch"}
    epochs = {e.step: e.value for e in acc.Scalars("epoch")}
    assert {step: epochs[step] for step in LOG_STEPS} == {
        step: float(next(i for i, end in enumerate(EPOCH_ENDS) if step <= end) + (step in EPOCH_ENDS))
        for step in LOG_STEPS}
    assert "config/text_summary" in acc.Tags()["tensors"]
    for tag, points in expected.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == steps(points), tag
        assert [e.value for e in events] == pytest.approx([v for _, v in points], rel=1e-6), tag

    assert steps(expected["train/loss"]) == LOG_STEPS
    assert steps(expected["val/loss"]) == EPOCH_ENDS
    assert steps(expected["hparam/beta"]) == LOG_STEPS
    beta = [v for _, v in expected["hparam/beta"]]
    assert beta == sorted(beta) and 0 < beta[0] < beta[-1] <= 1  # the linear KL warm-up
    diag_scalars = [tag for tag in expected if tag.startswith("diag/")]
    assert {tag.split("/")[1] for tag in diag_scalars} == set(DIAGNOSTICS)
    for tag in diag_scalars:
        assert steps(expected[tag]) == DIAGNOSTICS[tag.split("/")[1]], tag

    assert set(acc.Tags()["images"]) == {f"diag/{name}" for name in DIAGNOSTICS}
    for name, at in DIAGNOSTICS.items():
        images = acc.Images(f"diag/{name}")
        assert [i.step for i in images] == at
        assert all(i.encoded_image_string.startswith(b"\x89PNG") and i.width > 100
                   for i in images)
        saved = sorted(p.name for p in (run_dir / "diagnostics" / name).glob("*.png"))
        assert saved == sorted(f"step-{s}.png" for s in at)


def assert_tensorboard_hparams(run_dir: Path) -> None:
    """TensorBoard's HPARAMS tab: the run's config keys and its metrics, whose final values
    are the last scalars under the same tags."""
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["model.latent_dim"].number_value == 2
    assert hparams["optimizer.name"].string_value == "adam"
    assert hparams["loss.beta.end"].number_value == 1.0
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metrics = {m.name.tag for m in experiment.experiment.metric_infos}
    assert metrics == set(run_json(run_dir)["summary"]) and {"val/loss", "test/loss"} <= metrics


def exit_code(log: Path) -> int:
    (code,) = [r.exit.exit_code for r in records(log) if r.WhichOneof("record_type") == "exit"]
    return code


def assert_mlflow_holds_the_run(root: Path, run_dir: Path) -> None:
    """The MLflow file store in the working folder: params, metric histories, artifacts."""
    from mlflow.tracking import MlflowClient

    stored = run_json(run_dir)["mlflow"]
    assert stored["tracking_uri"] == (root / "mlruns").as_uri()
    client = MlflowClient(stored["tracking_uri"])
    run = client.get_run(stored["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "vae-logged"
    assert run.data.params["model.latent_dim"] == "2" and run.data.params["seed"] == "0"
    assert run.data.tags["runlab.run_id"] == run_dir.name
    for tag, points in csv_series(run_dir).items():
        history = client.get_metric_history(run.info.run_id, tag)
        assert [m.step for m in history] == steps(points), tag
        assert [m.value for m in history] == pytest.approx([v for _, v in points]), tag
    def files(path: str | None = None) -> set[str]:
        out = set()
        for a in client.list_artifacts(run.info.run_id, path):
            out |= files(a.path) if a.is_dir else {a.path}
        return out
    found = files()
    assert {"config.yaml", "metrics.csv", "stdout.log", "run.json"} <= found
    assert {f"diagnostics/{n}/step-{s}.png" for n, at in DIAGNOSTICS.items() for s in at} <= found
    assert {f"diag/{n}/step-{s}.png" for n, at in DIAGNOSTICS.items() for s in at} <= found


def assert_wandb_mirrors_csv(run_dir: Path, processes: int) -> list[list[dict]]:
    """The W&B run named in run.json holds every metrics.csv row once and the diagnostics'
    figures at the epoch ends; one transaction log per process. Returns each log's history."""
    run_id = run_json(run_dir)["wandb"]["id"]
    assert run_json(run_dir)["wandb"] == {"id": run_id, "mode": "offline"}
    logs = sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(logs) == processes  # `wandb sync` joins them by id
    assert [run_record(p).run_id for p in logs] == [run_id] * processes
    assert run_record(logs[0]).display_name == run_json(run_dir)["name"]

    histories = [history(log) for log in logs]
    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    media: set[tuple[str, int]] = set()
    for row in (row for rows in histories for row in rows):
        for key, value in row.items():
            if isinstance(value, dict):
                assert value["_type"] == "image-file", key
                media.add((key, row["trainer/step"]))
            elif not key.startswith(("_", "trainer/")):
                scalars[key].append((row["trainer/step"], value))
    assert dict(scalars) == csv_series(run_dir)
    assert media == {(f"diag/{name}", step) for name, at in DIAGNOSTICS.items() for step in at}
    return histories


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run-logging")
    write_data(root)
    return root


@pytest.fixture(scope="module")
def runs(root: Path) -> dict[str, Finished]:
    """The VAE run and the strict run, side by side (one core each)."""
    procs = {name: train(root, config, name) for name, config in (("vae", VAE), ("strict", STRICT))}
    return {name: finish(proc, root / name) for name, proc in procs.items()}


def test_tensorboard_and_wandb_hold_what_metrics_csv_holds(runs: dict[str, Finished]) -> None:
    run = runs["vae"]
    assert run.code == 0, run.out
    assert run_json(run.run_dir)["status"] == "completed"
    assert_tensorboard_mirrors_csv(run.run_dir, processes=1)
    assert_tensorboard_hparams(run.run_dir)
    assert_wandb_mirrors_csv(run.run_dir, processes=1)


def test_wandb_run_is_complete(runs: dict[str, Finished]) -> None:
    """Job type, exit code, the console (stdout.log) and the sync command of an offline run."""
    run = runs["vae"]
    run_id = run_json(run.run_dir)["wandb"]["id"]
    (log,) = (run.run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    record = run_record(log)
    assert (record.job_type, record.run_group) == ("train", "")  # no sweep, no ensemble
    assert exit_code(log) == 0
    uploaded = log.parent / "files" / "stdout.log"
    assert "epoch 2/2" in uploaded.read_text()
    assert f"wandb: offline run saved; upload it with: wandb sync {log.parent}" in \
        (run.run_dir / "stdout.log").read_text()


def test_mlflow_file_store_holds_params_metrics_and_artifacts(
        root: Path, runs: dict[str, Finished], monkeypatch: pytest.MonkeyPatch) -> None:
    assert runs["vae"].code == 0, runs["vae"].out
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # reading it back, as the writer did
    assert_mlflow_holds_the_run(root, runs["vae"].run_dir)


def test_wandb_alone_gets_the_diagnostics_figures_and_a_failed_run_exits_1(
        runs: dict[str, Finished]) -> None:
    run = runs["strict"]
    assert not (run.run_dir / "tensorboard").exists()
    run_id = run_json(run.run_dir)["wandb"]["id"]
    (log,) = (run.run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    images = [(row["trainer/step"], row["diag/confusion_matrix"]) for row in history(log)
              if "diag/confusion_matrix" in row]
    assert [(step, image["_type"]) for step, image in images] == [(EPOCH_ENDS[0], "image-file")]
    png = log.parent / "files" / images[0][1]["path"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert exit_code(log) == 1  # W&B shows the run as failed
    assert "pyplot" not in (run.run_dir / "stdout.log").read_text()


def test_broken_diagnostic_warns_and_the_run_goes_on(runs: dict[str, Finished]) -> None:
    run = runs["vae"]
    assert run.code == 0, run.out
    log = (run.run_dir / "stdout.log").read_text()
    for step in EPOCH_ENDS:
        assert (f"diagnostic 'always_fails' failed at step {step}: ValueError: always_fails "
                f"broke on purpose at step {step} (the run continues; set strict: true to stop)"
                ) in log
    assert not (run.run_dir / "diagnostics" / "always_fails").exists()
    assert not any("always_fails" in metric for metric in csv_series(run.run_dir))


def test_strict_broken_diagnostic_fails_the_run(runs: dict[str, Finished]) -> None:
    run = runs["strict"]
    assert run.code == 1, run.out
    info = run_json(run.run_dir)
    assert (info["status"], info["step"]) == ("failed", EPOCH_ENDS[0])
    message = info["error"]["message"]
    assert f"diagnostic 'always_fails' failed at step {EPOCH_ENDS[0]}" in message
    assert "always_fails broke on purpose" in message
    assert "always_fails broke on purpose" in (run.run_dir / "stdout.log").read_text()


@pytest.mark.slow
def test_resumed_run_continues_the_same_wandb_run(root: Path) -> None:
    stopped = finish(train(root, STOPPABLE, "stopped", RUNLAB_TEST_SIGNAL=f"SIGTERM@{STOP_AT}"),
                     root / "stopped")
    assert stopped.code == 128 + signal.SIGTERM, stopped.out
    info = run_json(stopped.run_dir)
    assert (info["status"], info["step"]) == ("interrupted", STOP_AT)
    run_id = info["wandb"]["id"]

    (first_log,) = (stopped.run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    assert exit_code(first_log) == 128 + signal.SIGTERM  # not 0: W&B must not call it finished

    resumed = finish(cli(root, "runs", "resume", str(stopped.run_dir)), root / "stopped")
    assert resumed.code == 0, resumed.out
    info = run_json(resumed.run_dir)
    assert (info["status"], info["step"], info["wandb"]["id"]) == ("completed", 20, run_id)
    log = (resumed.run_dir / "stdout.log").read_text()
    assert f"===== runlab: resumed at epoch 1 step {STOP_AT} =====" in log

    assert_tensorboard_mirrors_csv(resumed.run_dir, processes=2)
    first, second = assert_wandb_mirrors_csv(resumed.run_dir, processes=2)
    logged_steps = [sorted({row["trainer/step"] for row in rows}) for rows in (first, second)]
    assert max(logged_steps[0]) <= STOP_AT < min(logged_steps[1])
