"""Re-derivable boards (issue #23, item 6): a run's board ships its per-item records compressed beside it, and
`leaderboard --versus`, `--claims` and `compare` give from them, without results.sqlite, what they give
from the store; each row names the commit of the code that made it."""

import gzip
import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from distillbench.cli.main import main
from distillbench.core.item_metrics import summarize_metrics
from distillbench.core.provenance import git_commit
from distillbench.core.store import Store
from distillbench.leaderboards.aggregate import item_values
from distillbench.leaderboards.records import COLUMNS, Records

COMMITTED = Path(__file__).resolve().parents[1] / "leaderboards"

RECIPE = """
name: records
kind: text-lm
teacher: pocket:teacher-aligned
reference_teacher: pocket:teacher-sft
student: pocket:student-init
data: {{source: "pocket:math", size: 32, preferences: "pocket:math-preference"}}
budget: {{steps: 2, batch_size: 4, learning_rate: 1.0e-3, max_length: 96, checkpoint_every: 1}}
seeds: [0, 1]
methods: [sft, redi, dpo, {{name: dpo, starts_from: sft}}, {{name: teacher-hacking, data: offline, offline_prompts: 8, max_new_tokens: 8, every: 1}},
          {{name: teacher-hacking, data: online, max_new_tokens: 8, every: 1}}]
benchmarks: [{{name: pocket-math, n: 12, max_new_tokens: 8}}]
output_dir: {out}
"""
# The claim's rows carry only the option it is about; these rows shrink the others to test size.
CLAIM_LABELS = {"teacher-hacking[data=offline,every=1,max_new_tokens=8,offline_prompts=8]":
                "teacher-hacking[data=offline]",
                "teacher-hacking[data=online,every=1,max_new_tokens=8]": "teacher-hacking[data=online]"}
RECORDS = "leaderboard.items.csv.gz"
# The tiny models solve nothing; scores drawn at these rates per row give the paired tests something to find.
RATES = {"teacher": 0.9, "reference-teacher": 0.8, "student-init": 0.1, "redi": 0.7, "dpo": 0.3, "dpo[starts_from=sft]": 0.3}


def _vary_scores(store_path) -> None:
    db = sqlite3.connect(store_path)
    labels = dict(db.execute("SELECT cell_key, label FROM cells"))
    for cell, item in db.execute("SELECT cell_key, item_id FROM items").fetchall():
        hit = random.Random(f"{cell}/{item}").random() < RATES.get(labels[cell], 0.5)
        db.execute("UPDATE items SET scores_json=? WHERE cell_key=? AND item_id=?",
                   (json.dumps({"accuracy": float(hit)}), cell, item))
    db.commit()
    db.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run (two seeds; redi, dpo and its control from sft on pocket-math, the two teacher-hacking runs with their distances),
    its item scores redrawn and the board published again, its rows relabelled as the claims name them."""
    directory = tmp_path_factory.mktemp("records")
    recipe = directory / "records.yaml"
    recipe.write_text(RECIPE.format(out=directory / "out"))
    assert main(["run", str(recipe)]) == 0
    _vary_scores(directory / "out" / "results.sqlite")
    assert main(["run", str(recipe)]) == 0  # every cell is complete: it only publishes
    board_path = directory / "out" / "leaderboard.json"
    board = json.loads(board_path.read_text())
    for row in board["rows"]:
        row["row"] = CLAIM_LABELS.get(row["row"], row["row"])
    board_path.write_text(json.dumps(board))
    return directory / "out"


@pytest.fixture
def copies(run, tmp_path):
    """The run without its store, and the board copied out as a committed board is (`tiny.json` and
    `tiny.items.csv.gz`, nothing else beside them)."""
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("leaderboard.json", RECORDS):
        shutil.copy(run / name, bare / name)
    committed = tmp_path / "leaderboards"
    committed.mkdir()
    shutil.copy(run / "leaderboard.json", committed / "tiny.json")
    shutil.copy(run / RECORDS, committed / "tiny.items.csv.gz")
    return bare, committed / "tiny.json"


def _output(capsys, *args) -> str:
    capsys.readouterr()
    assert main(["leaderboard", *map(str, args)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("options", [["--versus", "student-init", "--format", "json"],
                                     ["--versus", "dpo", "--format", "markdown"], ["--claims"]])
def test_versus_and_claims_read_the_same_from_the_records_as_from_the_store(run, copies, capsys, options):
    bare, committed = copies
    from_store = _output(capsys, run, *options)
    assert _output(capsys, bare, *options) == from_store
    assert _output(capsys, committed, *options) == from_store
    assert not (bare / "results.sqlite").exists()  # nothing made an empty store on the way


def test_the_claims_read_items_and_the_cells_costs_from_the_records(run, copies, capsys):
    claims = {line.split("|")[1].strip(): line.split("|") for line in _output(capsys, copies[1], "--claims")
              .splitlines()[2:]}
    for method in ("`redi`", "`teacher-hacking`"):  # tested (a difference and seeds), too few seeds for a verdict
        assert claims[method][5].strip() != "—" and claims[method][8].strip() == "2 vs 2"
        assert claims[method][9].strip() == "insufficient seeds"
    assert claims["`teacher-hacking`"][6].strip().startswith("Welch t over seeds")


def test_the_records_are_compressed_csv_that_pandas_reads(run):
    packed = (run / RECORDS).read_bytes()
    text = gzip.decompress(packed).decode()
    lines = text.splitlines()
    assert packed[:2] == b"\x1f\x8b" and len(packed) < len(text) / 3
    assert lines[0] == ",".join(COLUMNS)
    db = sqlite3.connect(run / "results.sqlite")
    values = sum(len(json.loads(scores)) for (scores,) in db.execute("SELECT scores_json FROM items"))
    assert sum(1 for line in lines[1:] if line.split(",")[1]) == values
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(run / RECORDS)
    assert list(frame.columns) == COLUMNS and len(frame) == len(lines) - 1
    assert set(frame.dropna(subset=["bench"])["metric"]) == {"accuracy"}
    assert frame["metric"].str.startswith("cost/final_measures/golden_distance").sum() == 4


def test_the_records_read_back_the_stores_numbers(run):
    store, records = Store(run / "results.sqlite"), Records(run / RECORDS)
    board = json.loads((run / "leaderboard.json").read_text())
    try:
        for cell in (cell for row in board["rows"] for cell in row["cells"]):
            assert records.item_scores(cell, board["protocols"]["pocket-math"]["key"]) == store.item_scores(
                cell, board["protocols"]["pocket-math"]["key"])
            assert records.cell(cell)["cost"] == store.cell(cell)["cost"]
    finally:
        store.close()
    assert records.cell("no such cell") is None


def test_publishing_twice_writes_the_same_bytes(run, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(run, again)
    (again / RECORDS).unlink()
    recipe = tmp_path / "records.yaml"
    recipe.write_text(RECIPE.format(out=again))
    assert main(["run", str(recipe)]) == 0  # every cell complete in the store: it only publishes
    assert (again / RECORDS).read_bytes() == (run / RECORDS).read_bytes()


def test_every_row_names_the_commit_of_its_cells(run):
    board = json.loads((run / "leaderboard.json").read_text())
    assert all(row["commits"] == ([git_commit()] if git_commit() else []) for row in board["rows"])


def test_compare_reads_the_records(run, copies, tmp_path, capsys):
    bare, committed = copies
    assert main(["compare", str(committed), str(run)]) == 0
    out = capsys.readouterr().out
    assert "mean vs tolerance" not in out and "exact McNemar" in out and "two-level t" in out
    worse = tmp_path / "worse.json"
    shutil.copy(committed, worse)
    lines = gzip.decompress((bare / RECORDS).read_bytes()).decode().splitlines(keepends=True)
    wrong = [line.rsplit(",", 1)[0] + ",0.0\n" if line.split(",")[3] == "accuracy" else line for line in lines]
    (tmp_path / "worse.items.csv.gz").write_bytes(gzip.compress("".join(wrong).encode()))
    assert main(["compare", str(worse), str(bare)]) == 1  # every item now wrong, by the paired test
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "exact McNemar" in out


def test_a_board_without_records_or_store_says_so(run, copies, capsys):
    bare, _ = copies
    (bare / RECORDS).write_bytes(b"not gzip")
    assert main(["leaderboard", str(bare), "--versus", "dpo"]) == 2
    assert f"{RECORDS}: unreadable per-item records" in capsys.readouterr().err
    (bare / RECORDS).unlink()
    assert main(["leaderboard", str(bare), "--versus", "dpo"]) == 2
    assert "no per-item records beside it" in capsys.readouterr().err
    assert main(["leaderboard", str(bare)]) == 0  # the table itself needs none


@pytest.mark.parametrize("path", sorted(COMMITTED.glob("*.items.csv.gz")), ids=lambda path: path.name)
def test_a_committed_records_file_belongs_to_the_board_beside_it(path):
    """Every cell of the board is in its records, whose values give back the board's per-item means: a
    board regenerated without its records copied beside it fails here instead of losing its tests."""
    board = json.loads(path.with_name(path.name.replace(".items.csv.gz", ".json")).read_text())
    records, checked = Records(path), 0
    for row in board["rows"]:
        assert all(records.cell(cell) for cell in row["cells"]), row["row"]
        for bench, protocol in board["protocols"].items():
            for metric, summary in summarize_metrics(item_values(records, row["cells"], protocol["key"]),
                                                     protocol).items():
                if f"{bench}/{metric}" in row["metrics"]:
                    assert summary["mean"] == pytest.approx(row["metrics"][f"{bench}/{metric}"]["mean"], abs=1e-12)
                    checked += 1
    assert checked >= len(board["rows"])
