"""plot_metrics: one png per metric family from metrics.csv, fast."""

from __future__ import annotations

import time

from runlab.diagnostics.plots import metric_family, plot_metrics, read_metrics

HEADER = "step,epoch,time,metric,value\n"


def write_metrics(run_dir, steps: int = 500) -> None:
    rows = [HEADER]
    for s in range(1, steps + 1):
        rows.append(f"{s},{s // 50},{s * 0.01},train/loss,{1 / s}\n")
        rows.append(f"{s},{s // 50},{s * 0.01},lr,{1e-3}\n")
        if s % 50 == 0:
            rows += [
                f"{s},{s // 50},{s * 0.01},val/loss,{2 / s}\n",
                f"{s},{s // 50},{s * 0.01},hparam/beta,{s / steps}\n",
                f"{s},{s // 50},{s * 0.01},diag/jacobian/encoder/frobenius,1.5\n",
            ]
    rows.append(f"{steps},9,5.0,test/loss,0.1\n")
    rows.append(f"{steps},9,5.0,val/acc")  # a half-written last line of a live run
    (run_dir / "metrics.csv").write_text("".join(rows))


def test_metric_family():
    assert metric_family("train/loss") == metric_family("val/loss") == "loss"
    assert metric_family("hparam/beta") == "hparam-beta"
    assert metric_family("lr") == "lr"
    assert metric_family("train/loss_epoch") == "loss"  # the epoch mean beside the window means
    assert metric_family("val/../x") == "metric"  # nothing usable as a file name
    assert metric_family("diag/jacobian/encoder/spectral") == "diag-jacobian-encoder"
    # a diagnostic's scalars (per layer, per map) are one family: one plot with a legend
    assert metric_family("diag/latent_space/explained_var_2d") == "diag-latent_space"
    assert metric_family("val/acc_class/3") == metric_family("val/acc_class/7") == "acc_class"


def test_plot_metrics_one_file_per_family(tmp_path):
    write_metrics(tmp_path)
    start = time.perf_counter()
    paths = plot_metrics(tmp_path)
    elapsed = time.perf_counter() - start
    names = sorted(p.name for p in paths)
    assert names == ["diag-jacobian-encoder.png", "hparam-beta.png", "loss.png", "lr.png"]
    assert all(p.parent == tmp_path / "plots" and p.stat().st_size > 1000 for p in paths)
    assert elapsed < 5  # a few hundred ms on an idle core; generous for a shared CI box


def test_read_metrics_groups_series(tmp_path):
    write_metrics(tmp_path, steps=100)
    series = read_metrics(tmp_path / "metrics.csv")
    steps, values = series["val/loss"]
    assert list(steps) == [50, 100] and list(values) == [2 / 50, 2 / 100]
    assert "val/acc" not in series  # the incomplete line is skipped


def test_no_metrics_no_plots(tmp_path):
    assert plot_metrics(tmp_path) == []
    assert not (tmp_path / "plots").exists()
