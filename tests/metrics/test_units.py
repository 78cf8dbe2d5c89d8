"""The metric model's parts: dynamic-name accumulators (and their checkpoint state), the
one goal rule, the summary, the CSV writer's quoting, the monitor check."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from runlab.analysis.summary import metric_goal
from runlab.errors import ConfigError
from runlab.logging.csv import CSVWriter
from runlab.metric_rules import MetricRules, check_section, default_family
from runlab.train.metrics import (
    Accumulator,
    MonitorCheck,
    Summary,
    UnknownMonitor,
    console_metrics,
    merge_states,
)
from runlab.validate import validate_config
from runlab_testing import tiny_config


def t(v: float) -> torch.Tensor:
    return torch.tensor(v)


def test_terms_may_appear_disappear_and_vary_per_batch():
    acc = Accumulator()
    acc.add({"loss": t(1.0), "part/0": t(5.0)}, 2)
    acc.add({"part/1": t(3.0), "loss": t(4.0)}, 1)  # other order, a new name, one gone
    acc.add({"loss": t(1.0), "late": t(9.0)}, 1)
    assert acc.means() == {"loss": (2 + 4 + 1) / 4, "part/0": 5.0, "part/1": 3.0, "late": 9.0}
    acc.reset()
    assert acc.means() == {}
    acc.add({"x": t(2.0)}, 3)
    assert acc.means() == {"x": 2.0}


def test_stacked_terms_of_an_ensemble_keep_their_member_axis():
    acc = Accumulator()
    acc.add({"loss": torch.tensor([1.0, 2.0])}, 2)
    acc.add({"kl": torch.tensor([4.0, 6.0]), "loss": torch.tensor([3.0, 4.0])}, 2)
    assert acc.means() == {"loss": [2.0, 3.0], "kl": [4.0, 6.0]}


def test_shared_stack_feeds_a_second_accumulator_in_the_batch_order():
    window, epoch = Accumulator(), Accumulator()
    for terms in ({"a": t(1.0), "b": t(2.0)}, {"b": t(4.0), "c": t(8.0)}):
        vals = window.add(terms, 1)
        epoch.add_values(vals, 1, tuple(terms))
    assert window.means() == epoch.means() == {"a": 1.0, "b": 3.0, "c": 8.0}


def test_state_round_trips_exactly_mid_window():
    acc = Accumulator()
    acc.add({"loss": t(0.1), "a": t(0.3)}, 16)
    acc.add({"loss": t(0.7), "b": t(0.9)}, 5)
    again = Accumulator()
    again.load_state_dict(acc.state_dict(), torch.device("cpu"))
    for a in (acc, again):
        a.add({"b": t(0.2), "loss": t(0.4)}, 7)
    assert again.means() == acc.means()
    old = {"keys": ["loss"], "sums": torch.tensor([3.0]), "count": 3}  # before per-name counts
    again.load_state_dict(old, torch.device("cpu"))
    assert again.means() == {"loss": 1.0}


def test_merged_rank_states_hold_the_union_of_names():
    a, b = Accumulator(), Accumulator()
    a.add({"loss": t(1.0)}, 2)
    b.add({"loss": t(4.0), "rank1_only": t(7.0)}, 2)
    merged = Accumulator()
    merged.load_state_dict(merge_states([a.state_dict(), b.state_dict()]), torch.device("cpu"))
    assert merged.means() == {"loss": 2.5, "rank1_only": 7.0}


@pytest.mark.parametrize("name,goal", [
    ("val/loss", "min"), ("train/loss_epoch", "min"), ("val/acc", "max"),
    ("val/acc_class/3", "max"), ("test/f1", "max"), ("diag/norms/fc.weight", "min"),
    ("lr", None), ("hparam/beta", None), ("cb/score", "max"), ("val/kl", "min"),
])
def test_default_goals(name, goal):
    assert MetricRules().goal(name) == goal


def test_declared_patterns_come_first_and_analysis_uses_the_same_rule():
    rules = MetricRules({"val/acc_class/*": {"summary": "best"}, "val/f*": {"goal": "max"},
                         "train/gate_*": {"goal": "none"}})
    assert rules.goal("val/fid") == "max" and rules.goal("train/gate_3") is None
    assert rules.rule("val/acc_class/1").summary == "best"
    assert rules.goal("val/acc_class/1") == "max"  # a pattern without goal keeps the default
    assert metric_goal("val/fid", goals={"val/fid": rules.goal("val/fid")}) == "maximize"
    for name in ("val/acc_class/3", "val/loss", "test/error", "val/f1"):  # one rule, no second
        assert (metric_goal(name) == "maximize") == (MetricRules().goal(name) == "max")


def test_families():
    assert default_family("train/loss") == default_family("train/loss_epoch") == "loss"
    assert default_family("val/acc_class/3") == "acc_class"
    assert default_family("diag/layer_norms/fc.0.weight") == "diag/layer_norms"
    assert MetricRules({"val/acc_class/*": {"family": "per class"}}).family("val/acc_class/1") \
        == "per class"


def test_summary_best_follows_the_goal_and_records_it():
    s = Summary(MetricRules({"val/loss": {"summary": "mean_last_k", "k": 2}}))
    for step, (acc, loss, lr) in enumerate([(0.1875, 1.0, 1e-3), (0.375, 0.5, 5e-4),
                                            (0.25, 0.75, 1e-4)]):
        s.update(step, {"val/acc_class/0": acc, "val/loss": loss, "lr": lr,
                        "bad": math.nan})
    assert s.data["val/acc_class/0"]["best"] == 0.375 and s.data["val/acc_class/0"]["goal"] == "max"
    assert s.data["val/loss"]["best"] == 0.5 and s.data["val/loss"]["value"] == 0.625
    assert "best" not in s.data["lr"] and s.data["lr"]["goal"] == "none"
    assert "bad" not in s.data


def test_an_explicit_early_stopping_mode_becomes_the_monitors_goal(tmp_path):
    cfg = tiny_config(tmp_path, trainer={"early_stopping": {"monitor": "val/score", "mode": "min"}})
    assert MetricRules.from_config(cfg).goal("val/score") == "min"
    validate_config(cfg)  # nothing declares otherwise: allowed
    cfg["metrics"] = {"val/*": {"goal": "max"}}
    with pytest.raises(ConfigError, match="declares goal 'max'"):
        validate_config(cfg)


def test_metrics_section_is_checked():
    problems = check_section({"val/*": {"goal": "maximise", "sumary": "best", "k": 0}})
    text = "\n".join(problems)
    assert "Did you mean 'max'" in text and "Did you mean 'summary'" in text and ".k:" in text
    assert check_section({"val/*": {"goal": "maximize", "x_axis": "epoch"}}) == []


def test_csv_names_are_stored_verbatim(tmp_path):
    names = ["a,b", 'say "hi"', "two\nlines", "cell[x]", "plain/name"]
    w = CSVWriter(tmp_path / "metrics.csv")
    w.write_scalars(3, {n: i + 0.5 for i, n in enumerate(names)}, epoch=1)
    w.write_scalars(4, {"inf": math.inf}, epoch=1)
    w.close()
    with open(tmp_path / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["metric"] for r in rows] == [*names, "inf"]
    assert [float(r["value"]) for r in rows[:-1]] == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert rows[-1]["value"] == "inf"


def test_monitor_check_waits_for_validation_and_diagnostics():
    cfg = {"diagnostics": [{"name": "layer_norms"}]}
    check = MonitorCheck(cfg, {"trainer.monitor": "diag/layer_norms/w", "es": "val/acc_class/0"})
    check.check(set(), validated=False)  # nothing validated yet: no verdict
    check.check({"val/acc_class/0"}, validated=True)  # the diagnostic has not run: wait
    assert not check.done
    with pytest.raises(UnknownMonitor, match="Did you mean 'diag/layer_norms/w.0'"):
        check.check({"val/acc_class/0", "diag/layer_norms/w.0"}, validated=True)


def test_console_shows_the_logged_epoch_means():
    shown = console_metrics({"train/loss": 0.3, "train/loss_epoch": 0.4, "val/loss": 0.5,
                             "lr": 0.1, "test/loss": 1.0, "cb/x": 2.0})
    assert list(shown) == ["train/loss_epoch", "val/loss", "lr", "cb/x"]


def test_a_plateau_scheduler_follows_its_monitors_goal():
    from runlab.optim import build_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    for monitor, mode in (("val/acc", "max"), ("val/loss", "min"), ("val/fid", "max")):
        rules = MetricRules({"val/fid": {"goal": "max"}})
        sched, _, _ = build_scheduler({"name": "reducelronplateau", "monitor": monitor}, opt, 2, 2,
                                      rules)
        assert sched.mode == mode
    sched, _, _ = build_scheduler({"name": "reducelronplateau", "monitor": "val/acc",
                                   "mode": "min"}, opt, 2, 2)
    assert sched.mode == "min"  # an explicit mode is the user's


def test_monitors_known_unproducible_before_the_run(tmp_path):
    from runlab.train.metrics import monitor_problems

    cfg = tiny_config(tmp_path, trainer={"monitor": "diag/layer_norm/w",
                                         "early_stopping": {"monitor": "val/loss"}},
                      diagnostics=[{"name": "layer_norms"}])
    problems = "\n".join(monitor_problems(cfg, has_val=False))
    assert "trainer.early_stopping.monitor: 'val/loss' needs a validation split" in problems
    assert "Did you mean 'layer_norms'" in problems
    assert monitor_problems(tiny_config(tmp_path, trainer={"monitor": "cb/x"}), False) == []


def test_the_epoch_line_stays_one_line():
    from runlab.logging.console import epoch_line

    line = epoch_line(0, 2, {"train/two\nlines_epoch": 1.0, "val/cell[x]": 0.5}, 0.5)
    assert "\n" not in line and "train/two\\nlines_epoch 1.0000" in line and "val/cell[x]" in line


def test_an_early_stopping_callback_mode_is_the_goal_too(tmp_path):
    cfg = tiny_config(tmp_path, callbacks=[{"name": "early_stopping", "monitor": "val/x",
                                            "mode": "max"}])
    assert MetricRules.from_config(cfg).goal("val/x") == "max"
    cfg["trainer"]["early_stopping"] = {"monitor": "val/x", "mode": "min"}
    with pytest.raises(ConfigError, match="modes \\['max', 'min'\\] for 'val/x'"):
        validate_config(cfg)


def test_distributed_runs_refuse_a_diagnostic_monitor(tmp_path):
    from runlab.data import DatasetMeta
    from runlab.data.base import Splits
    from runlab.distributed.trainer import check_sizes

    meta = DatasetMeta("toy", input_shape=(2,), num_classes=2)
    data = (torch.zeros(32, 2), torch.zeros(32, dtype=torch.long))
    cfg = tiny_config(tmp_path, data={"batch_size": 16}, trainer={"monitor": "diag/norms/w"})
    with pytest.raises(ConfigError, match="diagnostics run on rank 0 only"):
        check_sizes(cfg, Splits(meta, data, None, None), world=2)
