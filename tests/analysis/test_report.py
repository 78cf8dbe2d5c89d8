"""The HTML report: self-contained content, and a real headless Chromium rendering it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from runlab.analysis import load_runs, write_report
from runlab.analysis.report import default_metric
from runlab.analysis.synthetic import make_run

from .conftest import build_sweep

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
]

# Appended to a copy of the report: waits for load, checks images and clicks a header twice.
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var table = document.querySelector("table.sortable");
  var heads = Array.prototype.slice.call(table.querySelectorAll("thead th"));
  var col = heads.findIndex(function (h) { return h.textContent === "mean"; });
  function column() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return parseFloat(r.cells[col].getAttribute("data-sort")); });
  }
  heads[col].click(); var asc = column();
  heads[col].click(); var desc = column();
  var out = document.createElement("pre"); out.id = "probe";
  out.textContent = JSON.stringify({
    ready: document.body.getAttribute("data-ready"), images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
    tables: document.querySelectorAll("table").length, asc: asc, desc: desc,
    errors: document.getElementById("js-errors").textContent });
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """Built once: writing the report (about ten figures) is the slow part."""
    base = tmp_path_factory.mktemp("report")
    return write_report(build_sweep(base), base / "report.html")


def test_report_is_self_contained(report):
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script src" not in page and "<link" not in page
    for section in ("Summary: val/loss", "Runs: val/loss", "Learning curves", "Parameter effects",
                    "Best runs: latest diagnostics", "Config differences between groups"):
        assert section in page
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) >= 3 + 2 + 2 + 3  # curves, metric-vs-param, parallel+importance, diags
    assert "not distinguishable at 95%" in page and "<th class=\"\">welch_p_holm</th>" in page
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert page.count("reconstructions step 20") == 3 and "step 10" not in page  # latest only
    assert "<td class=\"text\">[32, 32]</td>" in page  # model.hidden differs between groups


def test_default_metric_prefers_validation(sweep_dir):
    assert default_metric(load_runs(sweep_dir)) == "val/loss"


def _chromium() -> str:
    found = next((p for p in (shutil.which(n) for n in
                              ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        reason = "chromium is not installed (apt-get install -y chromium)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    return found


def _run_chromium(args: list[str], tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / f'profile-{name}'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report, tmp_path):
    _chromium()
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    res = _run_chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                        tmp_path, "dom")
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == [], console
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["ready"] == "1" and result["errors"] == ""
    assert result["images"] >= 10 and result["broken"] == 0 and result["tables"] >= 3
    assert result["asc"] == sorted(result["asc"]) and result["desc"] == result["asc"][::-1]

    shot = tmp_path / "shot.png"
    res = _run_chromium([f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()],
                        tmp_path, "shot")
    assert shot.exists(), res.stderr[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]  # (H, W, 3) floats in [0, 1]
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert pixels.std() > 0.05 and not_white > 0.05, (pixels.std(), not_white)
    assert np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 100  # plots, not flat fills


def build_ab_sweep(base: Path) -> Path:
    """A 2 settings x 3 seeds sweep folder whose sweep.yaml optimises val/acc; test/acc is
    logged once per run; the runs differ in their diagnostics list and logging too."""
    root = base / "sweeps" / "ab"
    root.mkdir(parents=True)
    spec = {"name": "ab", "metric": {"name": "val/acc", "goal": "maximize", "stat": "final"},
            "parameters": {"optimizer.lr": {"values": [0.01, 0.05]}}}
    (root / "sweep.yaml").write_text(json.dumps(spec))
    accs = {0.01: [0.81, 0.80, 0.84], 0.05: [0.83, 0.86, 0.82]}
    for lr, finals in accs.items():
        for seed, acc in enumerate(finals):
            diags = [{"name": "weights_and_grads", "every": 1 + seed}] * (seed + 1)
            cfg = {"seed": seed, "optimizer": {"name": "adam", "lr": lr}, "diagnostics": diags,
                   "logging": {"tensorboard": bool(seed % 2)}}
            loss = np.linspace(1.0, 1 - acc, 10)
            make_run(root, f"ab-lr{lr}-s{seed}", cfg,
                     {"val/loss": loss, "val/acc": 1 - loss, "train/loss": loss - 0.05,
                      "test/acc": ([10], [acc - 0.01])}, sweep={"name": "ab"})
    return root


@pytest.fixture(scope="module")
def ab_report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ab")
    return write_report(build_ab_sweep(base), base / "ab.html")


def test_report_leads_with_the_sweeps_metric_and_says_when_settings_tie(ab_report):
    page = ab_report.read_text(encoding="utf-8")
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings[0] == "Summary: val/acc"
    assert "Parameter effects" in headings and "Best runs: latest diagnostics" not in headings
    first = page[page.index("<h2>Summary: val/acc"):page.index("<h2>", page.index("Summary") + 5)]
    assert "best mean: optimizer.lr=0.05; not distinguishable at 95% from: optimizer.lr=0.01" \
        in first
    for column in ("diff", "diff_ci_low", "diff_ci_high", "hedges_g", "welch_p_holm",
                   "mw_p_holm", "verdict"):
        assert f">{column}</th>" in first
    assert first.count("<tr class=best>") == 1 and first.count("<tr class=tie>") == 1
    assert "grouped by optimizer.lr;" in page  # not by the diagnostics list or logging keys
    assert "parameter importance" not in page.lower() and "parallel coordinates" not in page
    assert 'alt="learning curve test/acc"' in page


@pytest.mark.browser
def test_ab_report_renders_in_headless_chromium(ab_report, tmp_path):
    shot = tmp_path / "ab.png"
    res = _run_chromium([f"--screenshot={shot}", "--window-size=1280,1600", ab_report.as_uri()],
                        tmp_path, "ab")
    assert shot.exists(), res.stderr[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]
    green = (np.abs(pixels - np.array([0xcf, 0xec, 0xcf]) / 255).max(axis=-1) < 0.02).mean()
    assert green > 0.001  # the best row's shading is on screen, near the top


# Picks the second metric, hovers the chart, drags across part of it, then double-clicks.
CHART_PROBE = """<script>
window.addEventListener("load", function () {
  var box = document.getElementById("chart"), svg = box.querySelector("svg");
  var select = box.querySelector("select"), out = {metrics: [].map.call(select.options, function (o) { return o.value; })};
  function mouse(type, frac) {
    var r = svg.getBoundingClientRect();
    svg.dispatchEvent(new MouseEvent(type, {bubbles: true, clientX: r.left + frac * r.width,
                                            clientY: r.top + r.height / 2}));
  }
  out.first = [svg.querySelectorAll("polyline.curve").length, svg.querySelectorAll("polygon.band").length];
  select.value = select.options[1].value; select.dispatchEvent(new Event("change"));
  out.picked = select.value;
  mouse("mousemove", 0.5); out.tip = box.querySelector(".tip").textContent;
  out.full = [+svg.getAttribute("data-x0"), +svg.getAttribute("data-x1")];
  mouse("mousedown", 0.3); mouse("mouseup", 0.6);
  out.zoomed = [+svg.getAttribute("data-x0"), +svg.getAttribute("data-x1")];
  svg.dispatchEvent(new MouseEvent("dblclick", {bubbles: true}));
  out.reset = [+svg.getAttribute("data-x0"), +svg.getAttribute("data-x1")];
  out.errors = document.getElementById("js-errors").textContent;
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.browser
def test_interactive_chart_picks_metrics_hovers_and_zooms(ab_report, tmp_path):
    _chromium()
    page = ab_report.read_text(encoding="utf-8")
    assert "<svg" in page and 'id="curves"' in page
    probe = tmp_path / "chart.html"
    probe.write_text(page.replace("</body>", CHART_PROBE + "</body>"))
    res = _run_chromium(["--virtual-time-budget=10000", "--window-size=1280,2000", "--dump-dom",
                         probe.as_uri()], tmp_path, "chart")
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    out = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert out["errors"] == ""
    assert out["metrics"][0] == "val/acc" and "test/acc" not in out["metrics"]  # logged once
    assert out["first"] == [2, 2]  # a mean line and a CI band per setting
    assert out["picked"] == out["metrics"][1]
    assert "optimizer.lr=0.01  step " in out["tip"] and "optimizer.lr=0.05  step " in out["tip"]
    assert out["full"] == [1, 10]
    assert out["full"][0] < out["zoomed"][0] < out["zoomed"][1] < out["full"][1]
    assert out["reset"] == out["full"]
