"""`distillbench compare`: the regression gate, and this project's own gate on a small fresh pocket run."""

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from distillbench.cli.main import main

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "leaderboards" / "ci-gate.json"


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory):
    """The CI gate recipe, run on the shipped (full) pocket zoo in a private cache."""
    out = tmp_path_factory.mktemp("gate") / "run"
    saved = {k: os.environ.get(k) for k in ("DISTILLBENCH_ZOO_SCALE", "DISTILLBENCH_CACHE")}
    os.environ.pop("DISTILLBENCH_ZOO_SCALE")
    os.environ["DISTILLBENCH_CACHE"] = str(out.parent / "cache")
    try:
        assert main(["run", str(REPO / "recipes/ci/gate.yaml"), "--out", str(out)]) == 0
    finally:
        for key, value in saved.items():
            os.environ[key] = value
    if os.environ.get("DISTILLBENCH_UPDATE_BASELINE"):
        shutil.copy(out / "leaderboard.json", BASELINE)
    return out


def test_this_projects_pocket_run_does_not_regress(gate_run, capsys):
    assert main(["compare", str(gate_run), str(BASELINE)]) == 0, capsys.readouterr().out


def test_compare_against_itself_passes(gate_run, capsys):
    assert main(["compare", str(gate_run), str(gate_run)]) == 0
    assert "0 regression(s)" in capsys.readouterr().out


def test_a_clear_drop_in_the_means_is_a_regression(gate_run, tmp_path, capsys):
    board = json.loads((gate_run / "leaderboard.json").read_text())
    for row in board["rows"]:
        row["metrics"]["pocket-math/accuracy"]["mean"] -= 0.3
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(board))
    assert main(["compare", str(worse), str(gate_run / "leaderboard.json")]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main(["compare", str(worse), str(gate_run / "leaderboard.json"),
                 "--tolerance", "pocket-math/accuracy=0.5"]) == 0


def test_paired_items_detect_a_regression(gate_run, tmp_path, capsys):
    worse = tmp_path / "worse"
    shutil.copytree(gate_run, worse)
    db = sqlite3.connect(worse / "results.sqlite")
    db.execute("""UPDATE items SET scores_json='{"accuracy": 0.0}'""")  # every item now wrong
    db.commit()
    db.close()
    assert main(["compare", str(worse), str(gate_run)]) == 1
    out = capsys.readouterr().out
    assert "exact McNemar" in out and "REGRESSION" in out


@pytest.mark.parametrize("content", ["not json", '{"rows": []}', '{"schema_version": 1, "rows": [{"x": 1}]}'])
def test_unusable_input_exits_2(gate_run, tmp_path, content, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare", str(bad), str(gate_run)]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert main(["compare", str(gate_run), str(gate_run), "--tolerance", "x"]) == 2


def test_a_board_with_bracketed_row_labels_is_compared_with_them_intact(tmp_path, capsys):
    committed = REPO / "leaderboards" / "pocket-fair-latent.json"  # the tabular kind's board
    assert main(["compare", str(committed), str(committed)]) == 0
    out = capsys.readouterr().out
    assert "fair-latent[fairness_weight=0]" in out  # brackets are text, not rich markup
    board = json.loads(committed.read_text())
    for row in board["rows"]:  # a higher parity gap is worse: the protocol says lower is better
        row["metrics"]["fair-synthetic/demographic_parity_difference"]["mean"] += 0.2
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(board))
    assert main(["compare", str(worse), str(committed)]) == 1
    assert capsys.readouterr().out.count("REGRESSION") == 2
