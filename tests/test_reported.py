"""The registry of numbers the seed papers report, and how a leaderboard shows them."""

import json
import math
import re
from pathlib import Path

import pytest
from rich.console import Console

from distillbench.cli.main import main
from distillbench.core.registry import BENCHMARKS
from distillbench.leaderboards.compare import compare
from distillbench.leaderboards.render import print_table, to_csv, to_markdown
from distillbench.leaderboards.reported import (EXTERNAL_BENCHMARKS, REPORTED, match_reported, reported_entries,
                                                with_reported)

REFERENCE_NOTES = Path(__file__).resolve().parents[2] / "shared" / "reference"
FAMILIES = {"llm", "classify", "diffusion", "vlm"}


@pytest.mark.parametrize("entry", REPORTED, ids=lambda e: f"{e.method}-{e.metric_key}-{e.student}")
def test_every_entry_is_complete_and_on_distillbench_scale(entry):
    for field in ("paper", "table", "setting", "student", "method", "benchmark", "metric", "printed", "protocol",
                  "source"):
        assert getattr(entry, field).strip(), field
    assert entry.arxiv is None or re.fullmatch(r"\d{4}\.\d{4,5}", entry.arxiv), entry.arxiv
    assert entry.family in FAMILIES and isinstance(entry.verified, bool)
    assert math.isfinite(entry.value)
    printed = float(entry.printed)
    # Accuracy-like metrics are fractions in distillbench and percentages in most papers.
    assert entry.value == pytest.approx(printed) or entry.value == pytest.approx(printed / 100)


def test_entries_are_distinct():
    keys = [(e.paper, e.method, e.metric_key, e.setting, e.student) for e in REPORTED]
    assert len(keys) == len(set(keys))


def test_every_benchmark_is_registered_or_documented():
    unknown = [e.benchmark for e in REPORTED if e.benchmark not in BENCHMARKS and e.benchmark not in EXTERNAL_BENCHMARKS]
    assert not unknown, f"register these benchmarks or describe them in EXTERNAL_BENCHMARKS: {unknown}"
    unused = set(EXTERNAL_BENCHMARKS) - {e.benchmark for e in REPORTED}
    assert not unused, f"EXTERNAL_BENCHMARKS describes benchmarks no entry uses: {unused}"


def test_every_printed_number_is_in_the_reference_notes():
    """The registry was seeded from ../shared/reference/*.md; each number must be found there."""
    if not REFERENCE_NOTES.is_dir():
        pytest.skip(f"{REFERENCE_NOTES} is absent (the reading notes live beside the repository)")
    notes = "\n".join(path.read_text() for path in REFERENCE_NOTES.glob("*.md"))
    missing = [f"{e.paper}: {e.printed}" for e in REPORTED if not re.search(rf"(?<![\d.]){re.escape(e.printed)}(?!\d)", notes)]
    assert not missing


def test_unchecked_numbers_are_marked():
    unchecked = [e for e in REPORTED if not e.verified]
    assert unchecked and all("secondary" in e.source or "unverified" in e.source for e in unchecked)


def _board(rows):
    return {"schema_version": 1, "recipe": {"name": "t"}, "protocols": {}, "rows": rows}


def _row(name, method, metrics, model="hf:Qwen/Qwen2.5-Math-1.5B@main"):
    return {"row": name, "kind": "method", "method": method, "model": model, "seeds": [0],
            "metrics": {k: {"mean": v, "ci95": [v - 0.01, v + 0.01], "n": 500} for k, v in metrics.items()},
            "seed_spread": {}, "cost": {"train_seconds": 5.0}, "cells": [], "status": "complete"}


def test_a_reproduced_row_gets_its_reported_number_beside_it_with_the_delta():
    board = _board([_row("sft", "sft", {"pocket-math/accuracy": 0.5}),
                    _row("redi", "redi", {"math500/accuracy": 0.80, "pocket-math/accuracy": 0.4})])
    matches, rest = match_reported(board)
    assert [(m["row"], m["entry"].metric_key) for m in matches] == [("redi", "math500/accuracy")]
    assert matches[0]["delta"] == pytest.approx(0.80 - 0.831)
    assert all(e.family == "llm" for e in rest) and matches[0]["entry"] not in rest
    shown = with_reported(board)
    assert [r["kind"] for r in shown["rows"]] == ["method", "method", "reported"]
    reported = shown["rows"][2]
    assert reported["reported"]["beside"] == "redi" and reported["reported"]["delta"] == pytest.approx(-0.031)
    markdown = to_markdown(shown)
    assert "| reported | — |  | 0.831 (Δ -0.031) |" in markdown and "## Reported by the papers" in markdown
    csv_lines = to_csv(shown).splitlines()
    assert any(line.startswith("redi (reported: Xu et al. 2025 (REDI)),reported,redi,") for line in csv_lines)
    console = Console(width=250, record=True)
    print_table(shown, console)
    text = console.export_text()
    assert "reported by the papers" in text and "0.831" in text


@pytest.mark.parametrize("method, metric, model", [
    ("redi", "math500/accuracy", "hf:Qwen/Qwen2.5-0.5B"),  # REDI reports Qwen2.5-Math-1.5B
    ("mcts-dpo", "gsm8k/flexible_extract", "pocket:student-init"),  # MCTS-DPO reports Mistral-7B
    ("curry-dpo", "mtbench/score", "pocket:student-init"),  # Curry-DPO reports Zephyr-7B
])
def test_a_row_of_another_student_model_gets_no_reported_number(method, metric, model):
    board = _board([_row(method, method, {metric: 0.5}, model=model)])
    matches, rest = match_reported(board)
    assert matches == [] and any(e.method == method and e.metric_key == metric for e in rest)


def test_a_board_whose_families_are_unknown_lists_every_entry():
    board = _board([_row("x", "not-a-method", {"pocket-math/accuracy": 0.5})])
    assert len(with_reported(board)["reported_elsewhere"]) == len(REPORTED)


def test_the_regression_gate_ignores_reported_rows(tmp_path):
    board = with_reported(_board([_row("redi", "redi", {"math500/accuracy": 0.80})]))
    path = tmp_path / "leaderboard.json"
    path.write_text(json.dumps(board))
    results = compare(path, path)
    assert [(r["row"], r["status"]) for r in results] == [("redi", "ok")]


def test_cli_list_reported_and_leaderboard_reported(tmp_path, capsys):
    assert main(["list", "reported", "--family", "diffusion"]) == 0
    out = capsys.readouterr().out
    assert "2405.14867" in out and "imagenet64/fid" in out and "(REDI)" not in out
    assert main(["list", "reported", "--family", "nope"]) == 2
    capsys.readouterr()
    board = _board([_row("redi", "redi", {"math500/accuracy": 0.80})])
    (tmp_path / "leaderboard.json").write_text(json.dumps(board))
    assert main(["leaderboard", str(tmp_path), "--reported", "--format", "markdown"]) == 0
    assert "(Δ -0.031)" in capsys.readouterr().out
    assert main(["leaderboard", str(tmp_path), "--reported", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rows"][1]["kind"] == "reported" and shown["reported_elsewhere"]
    assert reported_entries("vlm") and all(e.family == "vlm" for e in reported_entries("vlm"))


@pytest.mark.parametrize("teacher, student, expected", [
    ("teachers/resnet32x4", "arch:resnet8x4", ["ResNet32x4"]),
    ("teachers/wrn_40_2", "arch:wrn_16_2", ["WRN-40-2"]),
    ("teachers/resnet110", "arch:resnet20", []),  # ResNet56 → ResNet20 is reported, not ResNet110 → ResNet20
    ("teachers/wrn_40_2", "arch:wrn_40_1", ["WRN-40-2"]),
    ("teachers/resnet32x4", "arch:wrn_40_1", []),  # a pair without a registered number gets none
    ("my-checkpoint", "arch:resnet20", []),  # a teacher not named after an architecture: its pair is unknown
    ("teachers/resnet56", "arch:resnet20", ["ResNet56"]),
])
def test_cifar_numbers_are_matched_by_their_teacher_student_pair(teacher, student, expected):
    row = {**_row("kd", "hinton-kd", {"cifar100/accuracy": 0.7}), "model": student}
    board = {**_board([row]), "recipe": {"name": "t", "teacher": teacher}}
    matches, _ = match_reported(board)
    assert [m["entry"].teacher for m in matches] == expected


def test_cifar_numbers_sit_in_their_pairs_row_of_the_reference_table():
    """Each CIFAR-100 number is in the reference table's row of its own teacher → student pair and in the
    column of its method (a swap of two pairs' values fails here, unlike the search above)."""
    if not REFERENCE_NOTES.is_dir():
        pytest.skip(f"{REFERENCE_NOTES} is absent (the reading notes live beside the repository)")
    notes = (REFERENCE_NOTES / "classifier-kd-and-vlm-evaluation.md").read_text()
    table = [line for line in notes.splitlines() if line.startswith("| ") and "→" in line]
    header = next(line for line in notes.splitlines() if line.startswith("| Teacher→Student"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    column_of = {"hinton-kd": columns.index("KD"), "dkd": columns.index("DKD"), "crd": columns.index("CRD"),
                 "ce": columns.index("S")}
    cifar = [e for e in REPORTED if e.benchmark == "cifar100"]
    assert cifar
    for entry in cifar:  # a student trained alone (teacher None) sits in the first row with that student
        wanted = [entry.teacher, entry.student] if entry.teacher else [entry.student]
        row = next(line for line in table
                   if line.replace("*", "").split("|")[1].strip().split("→")[-len(wanted):] == wanted)
        cells = [cell.strip().strip("*") for cell in row.strip("|").split("|")]
        assert cells[column_of[entry.method]] == entry.printed, entry.setting
