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


def test_figures_carry_the_run_id_an_epoch_axis_and_the_lr_as_held(tmp_path):
    from runlab.diagnostics.plots import _read, epoch_mapping, family_figure

    run = tmp_path / "mlp-20261201-101500-abcd"
    run.mkdir()
    write_metrics(run, steps=200)
    (run / "config.yaml").write_text("scheduler: {name: cosine, interval: epoch}\n")
    series, ends = _read(run / "metrics.csv", ("step",))
    series = series["step"]
    assert ends[1] == 50 and ends[4] == 200  # epoch e ends at the first step logged with e done
    fig = family_figure(run, "lr", {"lr": series["lr"]}, "step", ends)
    ax = fig.axes[0]
    assert ax.get_title() == run.name
    [line] = ax.get_lines()
    assert line.get_drawstyle() == "steps-pre"  # the lr logged at s held since the last point
    assert line.get_label() == "lr (cosine, stepped every epoch)"
    [top] = ax.child_axes
    assert top.get_xlabel() == "epoch"
    to_epoch, to_step = epoch_mapping(ends)
    assert list(to_epoch([-25, 0, 75, 200, 300])) == [-0.5, 0, 1.5, 4, 6]  # 50 steps an epoch
    assert list(to_step([-0.5, 1.5, 6])) == [-25, 75, 300]
    assert epoch_mapping({0: 1.0}) is None  # no epoch ended yet: no epoch axis
    loss = family_figure(run, "loss", {"train/loss": series["train/loss"]}, "step", ends)
    assert loss.axes[0].get_lines()[0].get_drawstyle() == "default"
    (run / "config.yaml").write_text("scheduler: {name: cosine, interval: step}\n")
    [per_step] = family_figure(run, "lr", {"lr": series["lr"]}, "step", ends).axes[0].get_lines()
    assert per_step.get_drawstyle() == "default"  # changes every step: a line, no staircase
    assert per_step.get_label() == "lr (cosine, stepped every step)"
