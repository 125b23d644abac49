"""What the terminal shows: progress bars (a rich bar on a terminal, plain lines elsewhere) and the
leaderboard tables. Row labels and metric names hold brackets, kd[temperature=1.0] or
accuracy[number], which must stay text, not be read as rich markup."""

import io
import sys

import rich
from rich.console import Console

from distillbench.core.progress import progress
from distillbench.leaderboards.render import print_table, print_versus


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


def test_leaderboard_tables_keep_brackets_in_labels_and_metric_names():
    metric = {"mean": 0.5, "ci95": [0.4, 0.6], "n": 10}
    board = {"recipe": {"name": "tiny[v2]"}, "rows": [
        {"row": "kd[temperature=1.0]", "kind": "method", "method": "kd", "model": "m", "seeds": [0],
         "status": "complete", "metrics": {"bench/accuracy[number]": metric}, "cost": {}}]}
    screen = io.StringIO()
    console = Console(file=screen, width=300)
    print_table(board, console)
    print_versus([{"row": "dpo", "metric": "bench/accuracy[number]", "diff": 0.1, "ci95": [0.0, 0.2], "p": 0.04,
                   "p_holm": 0.04, "test": "exact McNemar", "n": 10, "significant": True}], "kd[temperature=1.0]",
                 console)
    shown = screen.getvalue()
    for text in ("tiny[v2]", "kd[temperature=1.0]", "bench/accuracy[number] (95% CI)", "bench/accuracy[number] n=10",
                 "Δ vs kd[temperature=1.0]", "head to head against kd[temperature=1.0]"):
        assert text in shown, text


def test_a_pipe_in_a_label_stays_inside_its_markdown_cell():
    # a label holding "|" added columns to the Markdown table
    from distillbench.leaderboards.render import to_markdown

    row = {"row": "kd[note=a|b]", "kind": "method", "model": "m", "seeds": [0], "status": "complete",
           "metrics": {"bench/accuracy": {"mean": 0.5, "ci95": [0.4, 0.6], "n": 10}}, "cost": {}, "cells": []}
    board = {"schema_version": 1, "recipe": {"name": "t"}, "protocols": {}, "rows": [row]}
    lines = [line for line in to_markdown(board).splitlines() if line.startswith("| kd")]
    header = next(line for line in to_markdown(board).splitlines() if line.startswith("| row"))
    assert len(lines) == 1 and "kd[note=a\\|b]" in lines[0]
    assert lines[0].replace("\\|", "").count("|") == header.count("|")
