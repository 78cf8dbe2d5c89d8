"""ConsoleWriter: the plain epoch line, the live bar on a terminal, and the cost of advance()."""

from __future__ import annotations

import io
import re
import time

import pytest

from runlab.logging import console as console_mod
from runlab.logging.console import ConsoleWriter, format_value, is_interactive


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_plain_mode_prints_one_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    writer = ConsoleWriter(stream=io.StringIO())
    assert writer.live is False
    writer.start_epoch(2, max_epochs=20, total_batches=10)
    for _ in range(10):
        writer.advance(1, 32)
    writer.write_scalars(30, {"train/loss": 0.5})
    writer.end_epoch({"train/loss": 0.41234, "val/loss": 0.40123, "val/acc": 0.871, "lr": 1e-3})
    writer.message("saved checkpoints/best.pt")
    writer.close()
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"epoch 3/20  train/loss 0\.4123  val/loss 0\.4012  val/acc 0\.8710  lr 1\.0e-03  \d+\.\d+s",
        out[0],
    )
    assert out[1:] == ["saved checkpoints/best.pt"]


def test_mode_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_interactive(FakeTerminal())
    assert not is_interactive(io.StringIO())
    assert ConsoleWriter(stream=FakeTerminal()).live
    monkeypatch.setenv("CI", "true")
    assert not is_interactive(FakeTerminal())
    assert not ConsoleWriter(stream=FakeTerminal()).live


def test_live_bar_goes_to_the_terminal_and_lines_to_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(float(i) for i in range(1000))  # every clock read is one second later
    monkeypatch.setattr(console_mod.time, "monotonic", lambda: next(clock))
    terminal = FakeTerminal()
    writer = ConsoleWriter(stream=terminal)
    writer.start_epoch(0, max_epochs=2, total_batches=4)
    writer.write_scalars(1, {"train/loss": 0.75})
    writer.advance(1, 64)
    writer.advance(1, 64)
    writer.message("lr reduced")
    writer.advance(1, 64)
    bar = terminal.getvalue()
    assert "epoch 1/2" in bar
    assert "3/4" in bar
    assert "loss 0.7500" in bar
    assert "samples/s" in bar and "eta" in bar
    writer.end_epoch({"train/loss": 0.7})
    writer.close()
    out = capsys.readouterr().out
    assert "lr reduced" in out and "epoch 1/2  train/loss 0.7000" in out
    assert "samples/s" not in out  # the bar never reaches stdout.log


def test_advance_costs_microseconds() -> None:
    n = 100_000
    for live in (False, True):
        writer = ConsoleWriter(stream=FakeTerminal(), live=live)
        writer.start_epoch(0, max_epochs=1, total_batches=n)
        start = time.perf_counter()
        for _ in range(n):
            writer.advance(1, 32)
        per_call = (time.perf_counter() - start) / n
        writer.close()
        assert per_call < 5e-6, f"live={live}: {per_call * 1e6:.2f} us per advance()"


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("lr", 0.001, "1.0e-03"),
        ("train/loss", 0.41234, "0.4123"),
        ("val/acc", 1, "1"),
        ("train/loss", 0.0, "0.0000"),
        ("train/kl", 2.5e-5, "2.500e-05"),
        ("train/loss", float("nan"), "nan"),
    ],
)
def test_format_value(name: str, value: float, text: str) -> None:
    assert format_value(name, value) == text
