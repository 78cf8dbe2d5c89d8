"""RUNLAB_PROFILE_STARTUP: one line at the first optimizer step, nothing otherwise."""

from __future__ import annotations

import time

import torch

from runlab.train.startup import ENV, watch_first_step


def _steps(n: int) -> None:
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.1)
    watch_first_step(opt)
    for _ in range(n):
        w.sum().backward()
        opt.step()
        opt.zero_grad()


def test_reports_the_first_step_once(monkeypatch, capsys):
    monkeypatch.setenv(ENV, repr(time.time() - 5.0))  # "launched" five seconds ago
    _steps(3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runlab: first training step done")
    seconds = float(lines[0].split("done ")[1].split(" s")[0])
    assert 5.0 <= seconds < 60.0


def test_silent_without_the_variable(monkeypatch, capsys):
    monkeypatch.delenv(ENV, raising=False)
    _steps(2)
    assert capsys.readouterr().err == ""
