"""An equal tuning budget (issue #23, item 2): a recipe's tune block, per-method budgets, Optuna trials as keyed
cells scored on a dev split, and boards that record each row's choice and cost."""

import json
import sqlite3

import pytest
import yaml

from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.core.plan import make_plan
from distillbench.core.recipe import load_recipe, validate_options
from distillbench.core.registry import METHODS
from distillbench.core.tune import START_ALPHA, Tuner, chosen_options, grid_size, search_space

TUNE = {"trials": 2, "learning_rate": [1.0e-3, 3.0e-2], "objective": "pocket-math/accuracy",
        "benchmarks": [{"name": "pocket-math", "split": "dev", "n": 8, "max_new_tokens": 16}]}


def _recipe(tiny_recipe, methods="[sft, kd]", **changes):
    path = tiny_recipe(methods)
    raw = yaml.safe_load(path.read_text())
    raw.update(changes)
    raw["data"]["preferences"] = "pocket:math-preference"  # for the DPO-family entries
    path.write_text(yaml.safe_dump(raw))
    return path


def _board(path):
    return json.loads((path.parent / "out" / "leaderboard.json").read_text())


def _problems(path) -> str:
    with pytest.raises(UserInputError) as caught:
        load_recipe(path)
    return str(caught.value)


def test_every_declared_search_choice_is_a_valid_option_of_its_method():
    declared = {name: METHODS.get(name).search_space for name in METHODS.names() if METHODS.get(name).search_space}
    assert {"dpo", "ipo", "simpo"} <= set(declared)
    for name, space in declared.items():
        for option, choices in space.items():
            assert len(set(choices)) == len(choices) > 1
            for choice in choices:
                assert validate_options(METHODS.get(name), {option: choice}, name)[1] == []


def test_a_method_may_train_with_its_own_learning_rate_and_keys_apart(tiny_recipe):
    path = tiny_recipe("[sft, {name: sft, budget: {learning_rate: 0.02}}]")
    recipe = load_recipe(path)
    plan = make_plan(recipe, identify=str)
    shared, own = [c for c in plan.cells if c.kind == "method"]
    assert own.label == "sft[budget.learning_rate=0.02]" and own.key != shared.key
    assert (shared.budget.learning_rate, own.budget.learning_rate) == (1.0e-3, 0.02)
    assert own.budget.steps == shared.budget.steps  # the rest of the budget stays the recipe's
    assert main(["run", str(path)]) == 0
    logs = {cell.label: cell for cell in make_plan(recipe).cells}
    first_lr = [json.loads((path.parent / "out" / "cells" / logs[label].folder / "train_log.jsonl")
                           .read_text().splitlines()[0])["lr"] for label in ("sft", own.label)]
    assert first_lr[1] / first_lr[0] == pytest.approx(20.0)  # same schedule, the method's own peak rate
    rows = {row["row"]: row for row in _board(path)["rows"]}
    assert rows[own.label]["hyperparameters"]["learning_rate"] == 0.02 and rows["sft"]["tuning"] == "untuned"


def test_a_method_budget_may_not_change_the_shared_budget(tiny_recipe):
    problems = _problems(tiny_recipe("[sft, {name: kd, budget: {steps: 9, learning_rate: -1}}]"))
    assert "methods[1].budget.steps: the same for every method" in problems


def test_tune_block_problems_are_reported_by_field(tiny_recipe):
    bad = {**TUNE, "objective": "pocket-mtbench/score", "methods": ["dpo"],
           "benchmarks": [{"name": "pocket-math", "split": "dev"}, {"name": "vqav2"}], "learning_rate": [0.1, 0.1]}
    problems = _problems(_recipe(tiny_recipe, tune=bad))
    assert "tune.learning_rate" in problems
    bad["learning_rate"] = [0.1]
    problems = _problems(_recipe(tiny_recipe, tune=bad))
    assert "tune.objective: 'pocket-mtbench/score' is not '<benchmark>/<metric>' of tune.benchmarks" in problems
    assert "tune.methods: no method row 'dpo'" in problems
    assert "tune.benchmarks[1]: vqav2 scores vlm students" in problems


def test_tuning_picks_the_best_dev_trial_and_trains_it_with_the_recipe_seeds(tiny_recipe, capsys):
    path = _recipe(tiny_recipe, seeds=[0, 1], tune={**TUNE, "methods": ["kd"], "learning_rate": [1.0e-3, 1.0e-2, 3.0e-2]})
    assert main(["run", str(path)]) == 0
    board = _board(path)
    rows = {row["row"]: row for row in board["rows"]}
    tuning = rows["kd"]["tuning"]
    assert rows["sft"]["tuning"] == "untuned"
    assert tuning["trials"] == 2 and tuning["sampler"] == "tpe"
    assert len({trial["values"]["learning_rate"] for trial in tuning["history"]}) == 2  # two distinct trainings
    best = max(tuning["history"], key=lambda trial: trial["dev"])
    assert tuning["best_dev"] == pytest.approx(best["dev"])
    assert tuning["chosen"] == {"budget": {"learning_rate": best["values"]["learning_rate"]}}
    assert rows["kd"]["hyperparameters"]["learning_rate"] == best["values"]["learning_rate"]
    assert tuning["train_seconds"] > 0
    # the test board scores the test split; the trials were scored on the dev split only
    assert board["protocols"]["pocket-math"]["split"] == "test"
    db = sqlite3.connect(path.parent / "out" / "results.sqlite")
    dev_cells = {key for key, protocol in db.execute("SELECT cell_key, protocol_json FROM evaluations")
                 if json.loads(protocol)["split"] == "dev"}
    init = rows["student-init"]["cells"][0]  # scored on dev once: the figure every row's search has to beat
    assert dev_cells == {trial["cell"] for trial in tuning["history"]} | {init}
    (init_dev,) = [mean for bench, mean in db.execute("SELECT bench_key, mean FROM metrics WHERE cell_key=? AND "
                                                      "metric='accuracy'", (init,))
                   if json.loads(db.execute("SELECT protocol_json FROM evaluations WHERE cell_key=? AND bench_key=?",
                                            (init, bench)).fetchone()[0])["split"] == "dev"]
    assert tuning["start_dev"] == pytest.approx(init_dev)
    # better than the start means better on a paired test of the dev items, not by the sign of a difference
    beat = tuning["best_dev"] > tuning["start_dev"]
    assert ("start_test" in tuning) == beat
    if beat:
        assert tuning["start_test"]["test"] == "exact McNemar" and tuning["start_test"]["n"] == 8
        assert tuning["start_test"]["diff"] == pytest.approx(tuning["best_dev"] - tuning["start_dev"])
    found_better = beat and tuning["start_test"]["diff"] > 0 and tuning["start_test"]["p"] < START_ALPHA
    assert ("nothing better than its start" in tuning.get("note", "")) == (not found_better)
    # the best trial is the final row's seed-0 cell: trained once, not again
    assert best["cell"] in rows["kd"]["cells"]
    trained = db.execute("SELECT COUNT(*) FROM cells WHERE kind='method'").fetchone()[0]
    assert trained == 2 + 2 + 1  # sft × 2 seeds, kd's 2 trials (distinct learning rates), kd's seed 1
    markdown = (path.parent / "out" / "leaderboard.md").read_text()
    assert "## Tuning" in markdown and "| sft | untuned: the recipe's options |" in markdown
    capsys.readouterr()
    assert main(["run", str(path)]) == 0  # a rerun replays the seeded search from the store
    assert "training " not in capsys.readouterr().err
    assert _board(path)["rows"] == board["rows"]


def test_a_tuning_record_replaces_the_trials_elsewhere_with_the_same_board(tiny_recipe, tmp_path, capsys):
    path = _recipe(tiny_recipe, "[kd]", seeds=[0, 1], tune=TUNE)
    assert main(["run", str(path)]) == 0
    board = _board(path)
    record_path = path.parent / "out" / "tuning.json"
    record = json.loads(record_path.read_text())
    (row,) = [row for row in board["rows"] if row["row"] == "kd"]
    assert record["rows"]["kd"] == row["tuning"]["history"]  # cell, values, dev objective, train seconds
    # elsewhere (an empty output directory): the recipe names the record, and only the rows' seeds train
    elsewhere = tmp_path / "elsewhere.yaml"
    raw = yaml.safe_load(path.read_text())
    raw.update(output_dir=str(tmp_path / "out2"), tune={**raw["tune"], "record": str(record_path)})
    elsewhere.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main(["run", str(elsewhere)]) == 0
    log = capsys.readouterr().err
    assert log.count("(from ") == 2 and log.count("training ") == 2  # kd's two seeds, no trial
    again = {row["row"]: row for row in json.loads((tmp_path / "out2" / "leaderboard.json").read_text())["rows"]}
    assert again["kd"]["metrics"] == row["metrics"] and again["kd"]["hyperparameters"] == row["hyperparameters"]
    assert again["kd"]["tuning"]["recorded"] == f"2 of 2 trial(s) from {record_path}"
    assert again["kd"]["tuning"]["train_seconds"] == row["tuning"]["train_seconds"]  # the trials' real cost
    record_path.write_text("{}")
    capsys.readouterr()
    assert main(["run", str(elsewhere)]) == 2
    assert "not a tuning record" in capsys.readouterr().err


def test_a_grid_no_larger_than_the_trials_is_run_whole(tiny_recipe):
    path = _recipe(tiny_recipe, "[{name: dpo, label_smoothing: 0.1}]",
                   tune={**TUNE, "trials": 50, "sampler": "grid", "learning_rate": [1.0e-3]})
    recipe = load_recipe(path)
    spec = recipe.methods[0]
    space = search_space(spec, recipe)
    assert space == {"learning_rate": [1.0e-3], "beta": [0.05, 0.1, 0.5]} and grid_size(space) == 3
    assert chosen_options(spec, {"learning_rate": 1.0e-3, "beta": 0.5}) == {"beta": 0.5,
                                                                            "budget": {"learning_rate": 1.0e-3}}
    assert main(["run", str(path)]) == 0
    row = _board(path)["rows"][-1]
    tuning = row["tuning"]
    assert tuning["trials"] == 3 and tuning["sampler"] == "grid"
    assert sorted(trial["values"]["beta"] for trial in tuning["history"]) == [0.05, 0.1, 0.5]
    assert row["hyperparameters"]["beta"] == tuning["chosen"]["beta"]
    assert row["hyperparameters"]["label_smoothing"] == 0.1  # the entry's own option is kept, not searched


def test_options_a_recipe_entry_sets_are_not_searched(tiny_recipe):
    path = _recipe(tiny_recipe, "[{name: dpo, beta: 0.2, budget: {learning_rate: 0.01}}]", tune=TUNE)
    recipe = load_recipe(path)
    assert search_space(recipe.methods[0], recipe) == {}


def test_kinds_that_train_with_their_own_settings_refuse_tuning():
    recipe = load_recipe("recipes/pocket/fair-latent.yaml").model_dump(mode="json")
    recipe["tune"] = TUNE
    from distillbench.core.recipe import parse_recipe
    with pytest.raises(UserInputError, match="tune: tabular students train with the kind's own settings"):
        parse_recipe(recipe)


def test_check_prints_what_each_method_is_tuned_over(tiny_recipe, capsys):
    path = _recipe(tiny_recipe, "[sft, dpo, {name: ipo, beta: 0.2}]", tune={**TUNE, "methods": ["dpo", "ipo[beta=0.2]"]})
    assert main(["run", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "tune: 2 trial(s) per method (tpe, seed 0) on pocket-math[max_new_tokens=16,n=8,split=dev]" in out.replace("\n", "")
    assert "sft: untuned" in out
    assert "dpo: 2 training(s) over learning_rate in [0.001, 0.03]; beta in [0.05, 0.1, 0.5]" in out
    assert "ipo[beta=0.2]: 2 training(s) over learning_rate in [0.001, 0.03]" in out


def _judged(best_dev, start_dev, test):
    """What `Tuner._against_start` makes of a row whose best trial scored `best_dev` against a start of
    `start_dev` on the dev split, with `test` the paired test of the two (None: not testable)."""
    tuner = Tuner.__new__(Tuner)
    tuner.direction = "maximize"
    tuner._start = lambda spec: ("start-cell", start_dev, None)
    tuner._start_test = lambda spec, history, cell, plan: test
    return tuner._against_start(None, {"best_dev": best_dev}, [])


def test_a_best_trial_beats_its_start_only_on_a_paired_test_of_the_dev_items():
    few_items = {"diff": 0.005, "p": 0.69, "test": "exact McNemar", "n": 400}  # 2 more right of 400
    judged = _judged(0.0575, 0.0525, few_items)
    assert judged["start_test"] == few_items
    assert "nothing better than its start" in judged["note"] and "p = 0.69" in judged["note"]
    many_items = {**few_items, "diff": 0.05, "p": 0.001}
    assert "note" not in _judged(0.1025, 0.0525, many_items)
    worse_when_rescored = {**many_items, "diff": -0.05}  # a recorded trial whose row cell, retrained, is worse
    assert "nothing better" in _judged(0.1025, 0.0525, worse_when_rescored)["note"]
    assert "nothing better" in _judged(0.04, 0.0525, None)["note"]  # worse by value: no test needed
    assert "note" not in _judged(0.06, 0.0525, None)  # a weighted or set-metric objective is compared by value


def test_the_start_test_pairs_the_dev_items_of_the_two_cells():
    from distillbench.core.item_metrics import values_from_records
    from distillbench.core.tune import _paired_plain

    best = values_from_records([(f"q{i}", {"accuracy": float(i < 23)}) for i in range(400)])
    start = values_from_records([(f"q{i}", {"accuracy": float(i < 21)}) for i in reversed(range(400))])
    result = _paired_plain(best, start, "accuracy", binary=True)
    assert result["test"] == "exact McNemar" and (result["only_a"], result["only_b"]) == (2, 0)
    assert result["p"] == pytest.approx(0.5)  # both discordant items go one way: 2 · 2⁻²
    assert result["diff"] == pytest.approx(0.005)
