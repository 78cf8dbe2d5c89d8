"""examples/compare_settings.ipynb executed headlessly (nbconvert): the comparison table and
the figures come out as cell outputs, the figures as image/png without `%matplotlib`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[2] / "examples" / "compare_settings.ipynb"

pytestmark = pytest.mark.slow  # starts a Jupyter kernel


def test_figures_have_a_png_representation():
    """What Jupyter calls to show a cell's value, with no pyplot backend set up."""
    from runlab.analysis.plots import AnalysisFigure

    fig = AnalysisFigure()
    fig.add_subplot().plot([0, 1])
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_notebook_runs_headlessly_with_inline_figures(tmp_path):
    pytest.importorskip("nbconvert")
    pytest.importorskip("ipykernel")
    out = tmp_path / "executed.ipynb"
    env = {**os.environ, "MPLBACKEND": "agg",  # as a plain kernel without matplotlib-inline
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    jupyter = [sys.executable, "-m", "jupyter"] if shutil.which("jupyter") is None else ["jupyter"]
    res = subprocess.run([*jupyter, "nbconvert", "--to", "notebook", "--execute",
                          "--ExecutePreprocessor.timeout=300", f"--output={out}", str(NOTEBOOK)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert errors == []
    pngs = [o["data"]["image/png"] for c in cells for o in c["outputs"]
            if "image/png" in o.get("data", {})]
    assert len(pngs) == 2  # the learning curves and the metric against the parameter
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    text = "".join("".join(o.get("text", "")) for c in cells for o in c["outputs"])
    assert "best mean: optimizer.lr=0.05; not distinguishable at 95% from: optimizer.lr=0.01" \
        in text
    table = cells[1]["outputs"][-1]["data"]["text/html"]
    assert "welch_p_holm" in "".join(table) and "not distinguishable at 95%" in "".join(table)
