"""DiagnosticsCallback: config checks, schedule, failure handling, and no side effects."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import yaml

from runlab.diagnostics import (
    DiagnosticError,
    DiagnosticsCallback,
    build_diagnostics,
    validate_diagnostics,
)
from runlab.diagnostics.base import DiagnosticResult, Drawing
from runlab.diagnostics.reconstructions import Reconstructions
from runlab.errors import ConfigError
from runlab.logging.base import MultiWriter, Writer
from runlab.registry import DIAGNOSTICS
from runlab.train.events import TrainState
from runlab_testing import run_cli, tiny_config

from .conftest import SIGNALS, VAE, AutoEncoder, backward_once, make_data, make_state

ALL_VAE = [{"name": n, "every": 1} for n in DIAGNOSTICS.names() if n != "confusion_matrix"]


def steps_written(run_dir, key):
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / "diagnostics" / key).glob("*.png"))


def test_check_names_the_missing_method(signals_classifier):
    specs = [{"name": "latent_space"}, {"name": "reconstructions", "every": 5, "n": 16}]
    problems = validate_diagnostics(specs, signals_classifier, SIGNALS)
    assert problems == [
        "diagnostic 'reconstructions' at diagnostics[1] needs model method 'encode', "
        "which model 'Classifier' lacks",
        "diagnostic 'reconstructions' at diagnostics[1] needs model method 'decode', "
        "which model 'Classifier' lacks",
    ]


def test_check_task_and_alternatives():
    ae = AutoEncoder(SIGNALS)
    problems = validate_diagnostics([{"name": "confusion_matrix"}], ae, SIGNALS)
    assert len(problems) == 1 and "is an autoencoder" in problems[0]
    regression = type(SIGNALS)("reg", (1, 20), task="regression")
    assert (
        "classification dataset"
        in validate_diagnostics([{"name": "confusion_matrix"}], torch.nn.Linear(20, 1), regression)[
            0
        ]
    )
    bare = validate_diagnostics([{"name": "latent_space"}], torch.nn.Linear(20, 1), SIGNALS)
    assert "'encode' or 'features'" in bare[0]


def test_every_config_problem_reported_at_once():
    specs = [
        {"name": "latent_space", "evry": 5},
        {"name": "latent_spce"},
        {"name": "latent_space", "method": "isomap"},
        "jacobian",
        3,
    ]
    with pytest.raises(ConfigError) as err:
        build_diagnostics(specs)
    problems = err.value.problems
    assert len(problems) == 4
    assert problems[0].startswith(
        "diagnostics[0].evry: unknown parameter of diagnostic "
        "latent_space (value 5). Did you mean 'every'?"
    )
    assert "Allowed: method, n, perplexity, every, every_steps, strict, at_end" in problems[0]
    assert "diagnostics[1].name" in problems[1] and "Did you mean 'latent_space'?" in problems[1]
    assert "diagnostics[2]" in problems[2] and "isomap" in problems[2]
    assert "diagnostics[4]" in problems[3]


def test_repeated_diagnostic_gets_its_own_folder(tmp_path):
    slots = build_diagnostics(
        [{"name": "jacobian", "of": "encoder"}, {"name": "jacobian", "of": "decoder"}]
    )
    assert [s.key for s in slots] == ["jacobian", "jacobian-2"]


def test_schedule_epochs_steps_and_end(tmp_path):
    model = AutoEncoder(SIGNALS)
    state = make_state(model, SIGNALS, tmp_path)
    cb = DiagnosticsCallback(
        [
            {"name": "reconstructions", "every": 2},
            {"name": "latent_space", "every": None, "every_steps": 3, "at_end": False},
        ],
        tmp_path,
        seed=0,
    )
    cb.on_fit_start(state)
    for epoch in range(3):  # 2 steps per epoch
        state.epoch = epoch
        for _ in range(2):
            state.step += 1
            cb.on_train_batch_end(state)
        state.epoch = epoch + 1  # as the Trainer: counted before validation and on_epoch_end
        cb.on_epoch_end(state)
    cb.on_fit_end(state)
    cb.close()  # PNGs are written by a background process: wait for them
    assert steps_written(tmp_path, "reconstructions") == [4, 6]  # epoch 2, then at the end
    assert steps_written(tmp_path, "latent_space") == [3, 6]
    assert [n for _, n in state.writer.figures].count("diag/reconstructions") == 2
    assert cb.state_dict() == {"last_step": {"reconstructions": 6, "latent_space": 6}}


def test_resumed_callback_does_not_repeat_a_step(tmp_path):
    state = make_state(AutoEncoder(SIGNALS), SIGNALS, tmp_path)
    state.step = 10
    cb = DiagnosticsCallback([{"name": "reconstructions"}], None, seed=0)
    cb.load_state_dict({"last_step": {"reconstructions": 10}})
    cb.on_fit_start(state)
    cb.on_fit_end(state)
    assert state.writer.figures == []


def test_fixed_batch_is_seeded_and_from_val(tmp_path):
    state = make_state(AutoEncoder(SIGNALS), SIGNALS, None)
    batches = []
    for seed in (0, 0, 1):
        cb = DiagnosticsCallback(
            [{"name": "reconstructions", "n": 16}, {"name": "jacobian", "n": 8}], None, seed=seed
        )
        cb.on_fit_start(state)
        batches.append(cb.x)
    assert batches[0].shape == (16, 1, 20)
    assert torch.equal(batches[0], batches[1]) and not torch.equal(batches[0], batches[2])
    val_rows = {tuple(r.flatten().tolist()) for r in state.val_data[0]}
    assert all(tuple(r.flatten().tolist()) in val_rows for r in batches[0])
    state.val_data = None
    cb.on_fit_start(state)
    train_rows = {tuple(r.flatten().tolist()) for r in state.train_data[0]}
    assert all(tuple(r.flatten().tolist()) in train_rows for r in cb.x)


def test_failing_diagnostic_warns_and_run_continues(tmp_path, monkeypatch):
    def boom(self, ctx):
        raise ValueError("boom")

    monkeypatch.setattr(Reconstructions, "run", boom)
    model = VAE(SIGNALS).train()
    state = make_state(model, SIGNALS, tmp_path)
    cb = DiagnosticsCallback([{"name": "reconstructions"}, {"name": "latent_space"}], tmp_path, 0)
    cb.on_fit_start(state)
    with pytest.warns(RuntimeWarning, match="diagnostic 'reconstructions' failed.*boom"):
        cb.on_epoch_end(state)
    cb.close()
    assert steps_written(tmp_path, "latent_space") == [0]
    assert all(m.training for m in model.modules())

    strict = DiagnosticsCallback([{"name": "reconstructions", "strict": True}], tmp_path, 0)
    strict.on_fit_start(state)
    with pytest.raises(DiagnosticError, match="'reconstructions' failed at step 0") as err:
        strict.on_epoch_end(state)
    assert isinstance(err.value.__cause__, ValueError)
    assert all(m.training for m in model.modules())


def test_no_side_effects_on_rng_modes_grads_and_figures():
    import matplotlib.pyplot as plt  # only to check that no figure is left registered

    model = VAE(SIGNALS).train()
    model.decoder.eval()  # a mixed mode must come back exactly as it was
    backward_once(model, SIGNALS)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    state = make_state(model, SIGNALS, None)
    cb = DiagnosticsCallback([{**s, "strict": True} for s in ALL_VAE], None, seed=0)
    random.seed(1)
    np.random.seed(1)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    cb.on_fit_start(state)
    cb.on_epoch_end(state)
    assert len(state.writer.figures) == len(ALL_VAE)
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]
    assert [m.training for m in model.modules()] == [
        m is not model.decoder and not any(m is d for d in model.decoder.modules())
        for m in model.modules()
    ]
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert plt.get_fignums() == []


def train_vae(callback: DiagnosticsCallback | None) -> tuple[list[torch.Tensor], TrainState]:
    """Two SGD steps of a VAE (whose forward draws noise), with diagnostics every step."""
    torch.manual_seed(0)
    model = VAE(SIGNALS)
    state = make_state(model, SIGNALS, None)
    x, _ = make_data(SIGNALS, n=16, seed=5)
    if callback:
        callback.on_fit_start(state)
    for _ in range(2):
        out = model(x)
        loss = (out["recon"] - x).pow(2).mean() + 1e-3 * out["mu"].pow(2).mean()
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        state.step += 1
        if callback:
            callback.on_train_batch_end(state)
    return [p.detach().clone() for p in model.parameters()], state


def test_training_with_diagnostics_equals_training_without():
    specs = [{**s, "every": None, "every_steps": 1, "strict": True} for s in ALL_VAE]
    with_diag, state = train_vae(DiagnosticsCallback(specs, None, seed=0))
    without, _ = train_vae(None)
    assert [step for step, name in state.writer.figures if name == "diag/samples"] == [1, 2]
    assert all(torch.equal(a, b) for a, b in zip(with_diag, without, strict=True))


def test_gradients_reach_weights_and_grads_after_zero_grad(tmp_path):
    """Like the Trainer: step, zero_grad(set_to_none=True), then the callbacks."""
    model = AutoEncoder(SIGNALS)
    state = make_state(model, SIGNALS, tmp_path)
    state.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    spec = {"name": "weights_and_grads", "every": None, "every_steps": 1, "strict": True}
    cb = DiagnosticsCallback([spec], tmp_path, seed=0)
    cb.on_fit_start(state)
    backward_once(model, SIGNALS)
    expected = [p.grad.norm().item() for p in model.parameters()]
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.step = 1
    cb.on_train_batch_end(state)
    saved = np.load(tmp_path / "diagnostics/weights_and_grads/step-1.npz")
    assert np.allclose(saved["grad_norms"], expected)
    cb.on_fit_end(state)
    assert cb._hook is None and not state.optimizer._optimizer_step_post_hooks


IMPORT_PROBE = '''
import sys
from pathlib import Path

from runlab.registry import CALLBACKS
from runlab.train.events import Callback


@CALLBACKS.register("import_probe")
class ImportProbe(Callback):
    """Writes, as the run ends, whether the run's process imported matplotlib."""

    def __init__(self, path: str):
        self.path = path

    def close(self):
        Path(self.path).write_text(str("matplotlib" in sys.modules))
'''


def test_run_process_never_imports_matplotlib_without_figure_writers(tmp_path):
    """A real `runlab train` logging to CSV only: the diagnostics' figures are drawn in
    the background process, and their PNGs are all there when the run ends."""
    (tmp_path / "probe.py").write_text(IMPORT_PROBE)
    diagnostics = [{"name": n, "every": 1} for n in ("latent_space", "reconstructions", "samples", "jacobian")]
    cfg = tiny_config(tmp_path, model={"name": "vae", "latent_dim": 2, "hidden": [8]},
                      plugins=[str(tmp_path / "probe.py")], diagnostics=diagnostics,
                      callbacks=[{"name": "import_probe", "path": str(tmp_path / "imported")}])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_cli("train", str(tmp_path / "config.yaml"), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "imported").read_text() == "False"
    (run_dir,) = (tmp_path / "runs" / "manual").iterdir()
    for d in diagnostics:  # epochs 1 and 2 (the end-of-run call is the same step as epoch 2's)
        assert len(list((run_dir / "diagnostics" / d["name"]).glob("step-*.png"))) == 2, d


def _unportable_figure(step: int):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().set_title(f"step {step}")
    return fig


def test_drawing_of_a_function_object_is_drawn_in_the_run_process(tmp_path, monkeypatch):
    """A plugin's own draw function cannot be imported by the drawing process: the
    runner draws it here and still writes the PNG."""
    monkeypatch.setattr(Reconstructions, "run", lambda self, ctx: DiagnosticResult(
        {"x": 1.0}, Drawing(_unportable_figure, {"step": ctx.step})))
    state = make_state(VAE(SIGNALS), SIGNALS, tmp_path)
    state.writer = Writer()
    cb = DiagnosticsCallback([{"name": "reconstructions", "strict": True}], tmp_path, 0)
    cb.on_fit_start(state)
    cb.on_epoch_end(state)
    cb.close()
    assert (tmp_path / "diagnostics" / "reconstructions" / "step-0.png").stat().st_size > 1000


def test_which_writers_want_figures(tmp_path):
    """Only writers that override write_figure make the run's process draw."""
    from runlab.logging.csv import CSVWriter

    csv = CSVWriter(tmp_path / "metrics.csv")
    recording = make_state(VAE(SIGNALS), SIGNALS, None).writer
    assert not Writer().wants_figures and not csv.wants_figures and recording.wants_figures
    assert not MultiWriter([csv, Writer()]).wants_figures
    assert MultiWriter([csv, recording]).wants_figures
    csv.close()
