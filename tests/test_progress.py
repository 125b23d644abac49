"""Progress bars: a rich bar on a terminal, plain lines elsewhere; labels stay text."""

import io
import sys

import rich
from rich.console import Console

from distillbench.harness.progress import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_bar_shows_a_label_with_brackets_as_text(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setattr(rich, "_console", Console(file=screen, force_terminal=True, width=120))
    with progress(total=2, description="train kd[temperature=1.0] seed 0") as bar:
        bar.advance(1, info="loss=[0.5]")
        bar.advance(1, info="")
    assert "kd[temperature=1.0]" in screen.getvalue()


def test_elsewhere_a_plain_line_every_tenth(monkeypatch, capsys):
    with progress(total=20, description="score kd[temperature=1.0]") as bar:
        for _ in range(20):
            bar.advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("score kd[temperature=1.0]: 20/20")
