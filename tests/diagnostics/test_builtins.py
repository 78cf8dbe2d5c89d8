"""Every built-in diagnostic writes its png and npz for every model that supports it.

Here no writer takes figures, so every figure is drawn from its `Drawing` in the
background drawing process (the path of a run that logs to CSV only); the runner tests
send figures to a writer, which makes the run's process draw them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from runlab.diagnostics import DiagnosticContext, DiagnosticsCallback, Drawing, run_diagnostic
from runlab.diagnostics.jacobian import effective_rank
from runlab.logging.base import Writer
from runlab.registry import DIAGNOSTICS

from .conftest import IMAGES, MODELS, SIGNALS, backward_once, make_data, make_state

# What each test model must support (the rest must be refused by `check`).
SUPPORTED = {
    "classifier": {
        "latent_space",
        "jacobian",
        "weights_and_grads",
        "confusion_matrix",
        "activation_stats",
    },
    "autoencoder": {
        "latent_space",
        "reconstructions",
        "samples",
        "latent_traversal",
        "jacobian",
        "weights_and_grads",
        "activation_stats",
    },
    "vae": {
        "latent_space",
        "reconstructions",
        "samples",
        "latent_traversal",
        "jacobian",
        "weights_and_grads",
        "activation_stats",
    },
}


def run_once(model_name, diag_spec, meta, tmp_path):
    torch.manual_seed(0)
    model = MODELS[model_name](meta)
    backward_once(model, meta)
    state = make_state(model, meta, tmp_path)
    state.writer = Writer()  # takes no figures: drawings go to the drawing process as they are
    cb = DiagnosticsCallback([{**diag_spec, "strict": True}], tmp_path, seed=0)
    cb.on_fit_start(state)
    state.step = 7
    cb.on_epoch_end(state)
    cb.close()  # PNGs are written by a background process: wait for them
    return state


# Every diagnostic x model on 1-D signals; on images, the ones that draw images.
CASES = [(d, m, SIGNALS) for d in DIAGNOSTICS.names() for m in sorted(MODELS)] + [
    (d, "vae", IMAGES) for d in ("reconstructions", "samples", "latent_traversal", "jacobian")
]


@pytest.mark.parametrize(
    ("diag_name", "model_name", "meta"), CASES, ids=[f"{d}-{m}-{t.name}" for d, m, t in CASES]
)
def test_builtin_writes_png_and_npz(diag_name, model_name, meta, tmp_path):
    model = MODELS[model_name](meta)
    diag = DIAGNOSTICS.get(diag_name).obj()
    problems = diag.check(model, meta)
    if diag_name not in SUPPORTED[model_name]:
        assert problems, f"{diag_name} should refuse {model_name}"
        return
    assert problems == []
    state = run_once(model_name, {"name": diag_name}, meta, tmp_path)
    folder = tmp_path / "diagnostics" / diag_name
    assert (folder / "step-7.png").stat().st_size > 1000
    arrays = np.load(folder / "step-7.npz")
    assert len(arrays.files) > 0
    logged = {k: v for k, v in state.pending.items() if k.startswith(f"diag/{diag_name}/")}
    assert logged and all(np.isfinite(v) for v in logged.values())


@pytest.mark.slow  # sklearn's t-SNE takes seconds on a busy CPU
def test_latent_space_tsne(tmp_path):
    state = run_once(
        "autoencoder", {"name": "latent_space", "method": "tsne", "n": 40}, SIGNALS, tmp_path
    )
    arrays = np.load(tmp_path / "diagnostics/latent_space/step-7.npz")
    assert arrays["embedding"].shape == (40, 2)
    assert arrays["labels"].shape == (40,)
    assert "diag/latent_space/participation_ratio" in state.pending


def test_weights_and_grads_records_gradients(tmp_path):
    run_once("classifier", {"name": "weights_and_grads"}, SIGNALS, tmp_path)
    arrays = np.load(tmp_path / "diagnostics/weights_and_grads/step-7.npz")
    assert list(arrays["names"])[0] == "body.1.weight"
    assert np.all(arrays["grad_norms"] > 0)


def test_confusion_matrix_counts_match_accuracy(tmp_path):
    state = run_once("classifier", {"name": "confusion_matrix"}, SIGNALS, tmp_path)
    counts = np.load(tmp_path / "diagnostics/confusion_matrix/step-7.npz")["counts"]
    assert counts.shape == (3, 3) and counts.sum() == 64  # the whole (64-sample) val set
    acc = state.pending["diag/confusion_matrix/accuracy"]
    assert acc == pytest.approx(np.trace(counts) / 64)


def test_jacobian_matches_autograd(tmp_path):
    """The encoder Jacobian's Frobenius norm equals one computed with torch.autograd."""
    state = run_once(
        "autoencoder", {"name": "jacobian", "of": "encoder", "n": 2}, SIGNALS, tmp_path
    )
    torch.manual_seed(0)
    model = MODELS["autoencoder"](SIGNALS).eval()
    x = DiagnosticsCallback([{"name": "jacobian", "n": 2}], None, seed=0)
    x.on_fit_start(make_state(model, SIGNALS, None))
    norms = [torch.autograd.functional.jacobian(model.encode, xi[None]).norm() for xi in x.x]
    assert state.pending["diag/jacobian/encoder/frobenius"] == pytest.approx(
        torch.stack(norms).mean().item(), rel=1e-5
    )


def test_effective_rank():
    assert effective_rank(torch.ones(4)).item() == pytest.approx(4.0)
    assert effective_rank(torch.tensor([2.0, 0.0, 0.0])).item() == pytest.approx(1.0)
    assert 1 < effective_rank(torch.tensor([3.0, 1.0])).item() < 2


@pytest.mark.parametrize("diag_name", sorted(SUPPORTED["vae"]))
def test_builtin_figures_are_portable_drawings(diag_name):
    """Built-ins return a Drawing of plain arrays that another process can import and
    draw, so the run's process needs neither matplotlib nor a drawing step."""
    model = MODELS["vae"](SIGNALS)
    backward_once(model, SIGNALS)
    x, y = make_data(SIGNALS)
    ctx = DiagnosticContext(
        model=model, x=x, y=y, meta=SIGNALS, step=3, epoch=1, device=torch.device("cpu"),
        grads={n: p.grad for n, p in model.named_parameters()},
        generator=torch.Generator().manual_seed(0))
    result = run_diagnostic(DIAGNOSTICS.get(diag_name).obj(), ctx)
    assert isinstance(result.figure, Drawing) and result.figure.portable
    assert not any(isinstance(v, torch.Tensor) for v in result.figure.kwargs.values())
    assert pickle.loads(pickle.dumps(result.figure)).draw().axes  # drawn from the arrays alone
