"""recipe → train → score → leaderboard on the tiny pocket zoo, through the CLI."""

import json
import sqlite3
from dataclasses import dataclass

from distillbench.cli.main import main
from distillbench.methods.base import register_method
from distillbench.methods.llm.sft import SFT
from distillbench.pocket import zoo


@register_method("test-nan", family="test", summary="SFT whose loss turns NaN at step 2 (tests only)")
@dataclass
class NaNAtStep2(SFT):
    calls: int = 0

    def loss(self, student, batch):
        self.calls += 1
        terms = super().loss(student, batch)
        return {"nll": terms["nll"] * float("nan")} if self.calls >= 2 else terms


def _board(recipe_path):
    return json.loads((recipe_path.parent / "out" / "leaderboard.json").read_text())


def test_run_writes_a_leaderboard_with_reference_and_method_rows(tiny_recipe, capsys):
    recipe = tiny_recipe()
    assert main(["run", str(recipe)]) == 0
    board = _board(recipe)
    assert board["schema_version"] == 1 and board["recipe"]["name"] == "tiny"
    assert [(r["row"], r["kind"], r["method"]) for r in board["rows"]] == [
        ("teacher", "reference", None), ("student-init", "reference", None),
        ("sft", "method", "sft"), ("kd[temperature=2.0]", "method", "kd")]
    for row in board["rows"]:
        metric = row["metrics"]["pocket-math/accuracy"]
        assert metric["n"] == 12 and metric["ci95"][0] <= metric["mean"] <= metric["ci95"][1]
    kd = board["rows"][3]["cost"]
    assert kd["teacher_forwards"] == 3 * 8 and kd["steps"] == 3 and kd["trained_parameters"] > 0
    assert board["rows"][2]["cost"]["teacher_forwards"] == 0
    out = recipe.parent / "out"
    assert (out / "leaderboard.md").read_text().startswith("# Leaderboard: tiny")
    outputs = list((out / "cells").glob("kd*/outputs-pocket-math-*.jsonl"))
    assert len(outputs) == 1 and len(outputs[0].read_text().splitlines()) == 12
    assert "student-init" in capsys.readouterr().out


def test_second_run_recomputes_nothing_and_gives_the_same_leaderboard(tiny_recipe, capsys):
    recipe = tiny_recipe()
    assert main(["run", str(recipe)]) == 0
    first = _board(recipe)
    db = recipe.parent / "out" / "results.sqlite"
    finished = sqlite3.connect(db).execute("SELECT cell_key, finished_at FROM cells").fetchall()
    capsys.readouterr()
    assert main(["run", str(recipe)]) == 0
    assert "complete in the store, skipped" in capsys.readouterr().err
    assert sqlite3.connect(db).execute("SELECT cell_key, finished_at FROM cells").fetchall() == finished
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM items").fetchone()[0] == 4 * 12
    second = _board(recipe)
    assert [r["metrics"] for r in second["rows"]] == [r["metrics"] for r in first["rows"]]


def test_a_nan_cell_fails_alone_and_is_reported(tiny_recipe):
    recipe = tiny_recipe("[sft, test-nan]")
    assert main(["run", str(recipe)]) == 0
    rows = {r["row"]: r for r in _board(recipe)["rows"]}
    assert rows["test-nan"]["status"] == "failed"
    assert "non-finite loss term 'nll'" in rows["test-nan"]["errors"][0]
    assert "(step 2)" in rows["test-nan"]["errors"][0]
    assert rows["sft"]["status"] == "complete" and rows["sft"]["metrics"]


def test_same_recipe_and_seed_give_identical_metrics(tiny_recipe, tmp_path):
    recipe = tiny_recipe("[kd]")
    assert main(["run", str(recipe)]) == 0
    first = _board(recipe)
    other = tmp_path / "again.yaml"
    other.write_text(recipe.read_text().replace(str(tmp_path / "out"), str(tmp_path / "out2")))
    assert main(["run", str(other)]) == 0
    second = json.loads((tmp_path / "out2" / "leaderboard.json").read_text())
    assert [r["metrics"] for r in first["rows"]] == [r["metrics"] for r in second["rows"]]


def test_list_methods_and_benchmarks(capsys):
    assert main(["list", "methods", "--family", "llm"]) == 0
    out = capsys.readouterr().out
    assert "sft" in out and "kd" in out and "arXiv:1503.02531" in out and "test-nan" not in out
    assert main(["list", "benchmarks"]) == 0
    assert "pocket-math" in capsys.readouterr().out
    assert main(["list", "methods", "--family", "nope"]) == 2


def test_leaderboard_command(tiny_recipe, capsys):
    recipe = tiny_recipe("[sft]")
    assert main(["run", str(recipe)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(recipe.parent / "out"), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| sft | method | 0 |" in out and "| teacher (pocket:teacher-sft) | reference |" in out
    assert main(["leaderboard", str(recipe.parent / "out"), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("row,kind,method") and any(line.startswith("sft,method,sft,") for line in lines)
    assert (recipe.parent / "out" / "leaderboard.csv").read_text().splitlines() == lines
    assert main(["leaderboard", str(recipe.parent)]) == 2


def test_preference_cells_train_on_the_zoo_preference_pairs(tiny_recipe):
    recipe = tiny_recipe("[dpo, ipo, simpo]")
    recipe.write_text(recipe.read_text().replace('size: 64}', 'size: 64, preferences: "pocket:math-preference"}'))
    assert main(["run", str(recipe)]) == 0
    rows = {r["row"]: r for r in _board(recipe)["rows"]}
    assert all(rows[name]["status"] == "complete" for name in ("dpo", "ipo", "simpo"))
    # 3 steps of 8 pairs cover the data, so the fixed reference scores chosen and rejected of each pair once
    pairs = len((zoo.ensure_built("math-preference") / "pairs.jsonl").read_text().splitlines())
    assert pairs <= 3 * 8 and rows["dpo"]["cost"]["teacher_forwards"] == 2 * pairs
    assert rows["simpo"]["cost"]["teacher_forwards"] == 0  # reference-free


def test_pocket_mtbench_is_judged_turn_by_turn_by_the_oracle(tiny_recipe):
    recipe = tiny_recipe("[sft]")
    recipe.write_text(recipe.read_text().replace(
        "benchmarks: [{name: pocket-math, n: 12, max_new_tokens: 16}]",
        "benchmarks: [{name: pocket-mtbench, max_new_tokens: 12}]"))
    assert main(["run", str(recipe)]) == 0
    board = _board(recipe)
    for row in board["rows"]:
        for metric in ("score", "turn1", "turn2"):
            value = row["metrics"][f"pocket-mtbench/{metric}"]
            assert value["n"] == 80 and 1 <= value["mean"] <= 10
    assert board["protocols"]["pocket-mtbench"]["judge"] == "pocket-oracle"
    outputs = next((recipe.parent / "out" / "cells").glob("sft*/outputs-pocket-mtbench-*.jsonl"))
    first = json.loads(outputs.read_text().splitlines()[0])
    assert len(first["output"]) == 2 and "Rating: [[" in first["reason"]


def test_leaderboard_versus_a_row(tiny_recipe, capsys):
    recipe = tiny_recipe("[sft]")
    assert main(["run", str(recipe)]) == 0
    capsys.readouterr()
    out = recipe.parent / "out"
    assert main(["leaderboard", str(out), "--versus", "teacher", "--format", "json"]) == 0
    comparisons = json.loads(capsys.readouterr().out)["versus"]
    assert {c["row"] for c in comparisons} == {"student-init", "sft"}
    assert all(c["test"] == "exact McNemar" and c["n"] == 12 and 0 <= c["p_holm"] <= 1 for c in comparisons)
    assert main(["leaderboard", str(out), "--versus", "nobody"]) == 2
    # Flags that would be dropped silently are refused instead.
    assert main(["leaderboard", str(out), "--versus", "teacher", "--format", "csv"]) == 2
    assert main(["leaderboard", str(out), "--claims", "--format", "json"]) == 2


def test_gkd_trains_on_student_samples_when_lambda_is_one(tiny_recipe):
    recipe = tiny_recipe("[{name: gkd, lmbda: 1.0, max_new_tokens: 6}, {name: gkd, lmbda: 0.0}]")
    assert main(["run", str(recipe)]) == 0
    rows = _board(recipe)["rows"]
    on_policy = {r["row"]: r["cost"]["on_policy_steps"] for r in rows if r["kind"] == "method"}
    assert on_policy == {"gkd[lmbda=1.0,max_new_tokens=6]": 3, "gkd[lmbda=0.0]": 0}


def test_real_format_benchmarks_run_on_local_files(tiny_recipe, shared_data):
    recipe = tiny_recipe("[sft]")
    math500 = shared_data / "math500" / "test.jsonl"
    recipe.write_text(recipe.read_text().replace(
        "benchmarks: [{name: pocket-math, n: 12, max_new_tokens: 16}]",
        f"benchmarks: [{{name: math500, source: {math500}, n: 5, max_new_tokens: 8, grader: hendrycks}}]"))
    assert main(["run", str(recipe)]) == 0
    board = _board(recipe)
    assert all(row["metrics"]["math500/accuracy"]["n"] == 5 for row in board["rows"])
    assert board["protocols"]["math500"]["grader"] == "hendrycks"


SEED_PAPERS = """
name: seed-papers
kind: text-lm
teacher: pocket:teacher-aligned
reference_teacher: pocket:teacher-sft
student: pocket:student-init
data: {{source: "pocket:math", size: 32, preferences: "pocket:math-preference", ranked: "pocket:math-ranked"}}
budget: {{steps: 2, batch_size: 4, learning_rate: 1.0e-3, max_length: 96, checkpoint_every: 1}}
seeds: [0]
methods: {methods}
benchmarks: [{{name: pocket-math, n: 4, max_new_tokens: 8}}]
output_dir: {out}
"""


def test_seed_paper_methods_train_with_their_signals_and_starts(tmp_path, capsys):
    recipe = tmp_path / "seed.yaml"
    methods = ("[{name: adpa+, max_new_tokens: 8}, sft, dckd, {name: adpa, max_new_tokens: 8}, redi, dpo, "
               "{name: dpo, starts_from: sft}, teacher-ref-dpo, "
               "{name: distillm, initial_probability: 0.5, max_new_tokens: 8}, {name: curry-dpo, iterations: 2}, "
               "adpo, {name: adpo, anchor: ema}, spo]")
    recipe.write_text(SEED_PAPERS.format(methods=methods, out=tmp_path / "out"))
    assert main(["run", str(recipe)]) == 0
    board_rows = [r for r in _board(recipe)["rows"] if r["kind"] == "method"]
    assert len(board_rows) == 13 and all(row["status"] == "complete" for row in board_rows), board_rows
    starts = {r["row"]: r["starts_from"] for r in board_rows if r["starts_from"]}
    assert starts == {"adpa+[max_new_tokens=8]": "dckd", "redi": "sft", "dpo[starts_from=sft]": "sft"}
    rows = {r["method"]: r for r in board_rows}
    assert rows["distillm"]["engaged_by"] == "on_policy_steps" and rows["dckd"]["engaged_by"] is None
    # ADPA scores only its samples, with the teacher and the reference teacher: 2 models x 4 rows x 2 steps.
    assert rows["adpa"]["cost"]["teacher_forwards"] == 16
    assert rows["adpa"]["cost"]["on_policy_steps"] == 2
    # DCKD: the teacher on chosen and rejected of each step's 4 pairs. teacher-ref-dpo: the teacher as DPO
    # reference on both; 2 steps of 4 cover the tiny zoo's pairs, so it scores each pair once.
    assert rows["dckd"]["cost"]["teacher_forwards"] == 16
    pairs = len((zoo.ensure_built("math-preference") / "pairs.jsonl").read_text().splitlines())
    assert pairs <= 2 * 4 and rows["teacher-ref-dpo"]["cost"]["teacher_forwards"] == 2 * pairs
    capsys.readouterr()
    assert main(["leaderboard", str(tmp_path / "out"), "--claims"]) == 0
    claims = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()[2:]}
    # redi and its control (dpo from the sft student) both ran, one seed each: tested, but too few seeds for a verdict
    assert claims["`redi`"].rstrip(" |").endswith("insufficient seeds")
    assert claims["`redi`"].split("|")[7].strip() != "—" and claims["`redi`"].split("|")[8].strip() == "1 vs 1"
    assert claims["`dckd`"].rstrip(" |").endswith("not run")  # its claim is on the judge, not scored here
    assert claims["`gkd`"].rstrip(" |").endswith("not run")  # no gkd row in this recipe


def test_a_method_that_continues_another_needs_it_in_the_recipe(tmp_path, capsys):
    recipe = tmp_path / "seed.yaml"
    recipe.write_text(SEED_PAPERS.format(methods="[adpa+]", out=tmp_path / "out"))
    assert main(["run", str(recipe)]) == 2
    assert "adpa+ continues from the dckd student; add dckd" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_teacher_hacking_tracks_both_distances_offline_and_online(tmp_path):
    recipe = tmp_path / "hacking.yaml"
    methods = ("[{name: teacher-hacking, data: offline, offline_prompts: 8, max_new_tokens: 8, every: 1}, "
               "{name: teacher-hacking, data: online, max_new_tokens: 8, every: 1}]")
    recipe.write_text(SEED_PAPERS.format(methods=methods, out=tmp_path / "out"))
    assert main(["run", str(recipe)]) == 0
    rows = [r for r in _board(recipe)["rows"] if r["kind"] == "method"]
    assert [r["status"] for r in rows] == ["complete", "complete"]
    assert rows[0]["cost"]["on_policy_steps"] == 0 and rows[1]["cost"]["on_policy_steps"] == 2
    for row in rows:
        measures = row["cost"]["final_measures"]
        assert measures["golden_distance"] > 0 and measures["proxy_distance"] >= 0
    logs = list((tmp_path / "out" / "cells").glob("teacher-hacking*/train_log.jsonl"))
    assert len(logs) == 2
    assert all(len([json.loads(line)["measures"] for line in log.read_text().splitlines()]) == 2 for log in logs)


def test_a_search_that_finds_no_pairs_fails_its_cell_only(tmp_path):
    recipe = tmp_path / "mcts.yaml"
    methods = "[sft, {name: mcts-dpo, prompts: 2, depth: 1, candidates: 2, rollouts: 1, max_new_tokens: 4}]"
    recipe.write_text(SEED_PAPERS.format(methods=methods, out=tmp_path / "out"))
    assert main(["run", str(recipe)]) == 0
    rows = {r["method"]: r for r in _board(recipe)["rows"] if r["kind"] == "method"}
    assert rows["sft"]["status"] == "complete"
    # The tiny student never solves a problem, so every candidate step has the same value.
    assert rows["mcts-dpo"]["status"] == "failed" and "produced no training examples" in rows["mcts-dpo"]["errors"][0]


def test_rerun_trains_and_scores_the_named_rows_again_and_keeps_the_old_folders(tiny_recipe, capsys):
    recipe = tiny_recipe("[sft, {name: kd, temperature: 2.0}]")
    assert main(["run", str(recipe)]) == 0
    out = recipe.parent / "out"
    kd_folder = next((out / "cells").glob("kd*"))
    (kd_folder / "marker").write_text("old")
    capsys.readouterr()
    assert main(["run", str(recipe), "--rerun", "kd[temperature=2.0]"]) == 0
    printed = "".join(capsys.readouterr())
    assert "1 cell folder(s) moved" in printed and "training kd" in printed and "training sft" not in printed
    assert (next((out / "replaced").glob(f"{kd_folder.name}-*")) / "marker").read_text() == "old"  # nothing lost
    assert (kd_folder / "model").is_dir() and not (kd_folder / "marker").exists()  # trained afresh
    assert main(["run", str(recipe), "--rerun", "nope"]) == 2
    assert "--rerun: no row 'nope'" in capsys.readouterr().err


def test_a_failed_start_fails_its_followers_alone_and_is_trained_once(tmp_path, capsys, monkeypatch):
    # redi continues the sft student: with sft failed, the run aborted on sft's missing model after
    # training sft a second time, and wrote no leaderboard
    import torch

    from distillbench.methods.llm.sft import SFT

    from distillbench.core.recipe import load_recipe
    from distillbench.core.runner import Runner

    recipe = tmp_path / "seed.yaml"
    recipe.write_text(SEED_PAPERS.format(methods="[sft, redi, dpo]", out=tmp_path / "out"))
    Runner(load_recipe(recipe)).check()  # the pocket zoo is built (with sft) before sft is broken
    monkeypatch.setattr(SFT, "loss", lambda self, student, batch: {"nll": torch.tensor(float("nan"),
                                                                                       requires_grad=True)})
    assert main(["run", str(recipe)]) == 0
    printed = "".join(capsys.readouterr())
    assert printed.count("training sft") == 1
    rows = {row["row"]: row for row in json.loads((tmp_path / "out" / "leaderboard.json").read_text())["rows"]}
    assert rows["sft"]["status"] == rows["redi"]["status"] == "failed" and rows["dpo"]["status"] == "complete"
    assert "continues sft, which failed" in rows["redi"]["errors"][0]


def test_an_out_of_memory_cell_fails_alone(tiny_recipe, monkeypatch):
    # a cell running out of GPU memory aborted the run and left the cell "running"
    import torch

    from distillbench.methods.llm.kd import KD

    def out_of_memory(self, student, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(KD, "loss", out_of_memory)
    recipe = tiny_recipe("[sft, {name: kd, temperature: 2.0}]")
    assert main(["run", str(recipe)]) == 0
    rows = {r["row"]: r for r in _board(recipe)["rows"]}
    assert rows["kd[temperature=2.0]"]["status"] == "failed" and rows["sft"]["status"] == "complete"
    assert rows["kd[temperature=2.0]"]["errors"][0] == ("seed 0: out of memory: CUDA out of memory. Tried to "
                                                        "allocate 2.00 GiB")  # no "(step None)"
