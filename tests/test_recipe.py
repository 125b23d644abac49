from pathlib import Path

import pytest
import yaml

from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.core.recipe import load_recipe, parse_recipe

REPO = Path(__file__).resolve().parents[1]


def base(**changes):
    raw = {
        "name": "r", "kind": "text-lm", "teacher": "pocket:teacher-sft", "student": "pocket:student-init",
        "data": {"source": "pocket:math", "size": 10},
        "budget": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_length": 64},
        "methods": ["sft", {"name": "kd", "temperature": 2.0}],
        "benchmarks": [{"name": "pocket-math", "n": 4}],
    }
    raw.update(changes)
    return raw


def problems(raw):
    with pytest.raises(UserInputError) as info:
        parse_recipe(raw, "r.yaml")
    return info.value.problems


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO / "recipes")) for p in (REPO / "recipes").rglob("*.yaml")))
def test_every_shipped_recipe_passes_run_check(path, capsys):
    """`distillbench run RECIPE --check` validates and plans it without training or building a model (the
    papers' recipes too, whose CIFAR-100 folder and converted teachers are absent here)."""
    assert main(["run", str(REPO / "recipes" / path), "--check"]) == 0, capsys.readouterr().err
    assert "ok: the recipe validates and plans" in capsys.readouterr().out


def test_check_lists_absent_local_inputs_and_a_run_still_refuses_them(tmp_path, capsys):
    raw = base(data={"source": str(tmp_path / "train.jsonl"), "size": 10},
               benchmarks=[{"name": "gsm8k", "source": str(tmp_path / "test.jsonl")}])
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--check"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"absent here, needed by a run: {tmp_path / 'train.jsonl'}, {tmp_path / 'test.jsonl'}" in out.replace("\n", "")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2  # the check's allowance does not outlive it
    assert f"data.source: file not found: {tmp_path / 'train.jsonl'}" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="file not found"):
        load_recipe(path)


def test_default_recipe_is_valid():
    recipe = load_recipe(REPO / "recipes/pocket/llm.yaml")
    assert [m.name for m in recipe.methods][:2] == ["sft", "kd"]
    assert recipe.benchmarks[0].name == "pocket-math"


def test_method_forms_and_labels():
    recipe = parse_recipe(base())
    assert [m.label for m in recipe.methods] == ["sft", "kd[temperature=2.0]"]
    assert recipe.content_hash() == parse_recipe(base()).content_hash()
    assert recipe.content_hash() != parse_recipe(base(seeds=[1])).content_hash()


def test_misspelt_method_names_the_field_and_suggests():
    assert problems(base(methods=["sft", "kd", "sfft"])) == [
        "r.yaml: methods[2].name: unknown method 'sfft'; did you mean 'sft'?"]


def test_bad_hyperparameter_names_the_field_path():
    assert problems(base(methods=["sft", "kd", {"name": "kd", "temperature": -1}])) == [
        "r.yaml: methods[2].temperature: must be > 0"]
    assert problems(base(methods=[{"name": "kd", "temprature": 2}])) == [
        "r.yaml: methods[0].temprature: unknown field; did you mean 'temperature'?"]


def test_every_problem_gets_its_own_line():
    raw = base(budget={"steps": -5, "batch_size": 0, "learning_rate": 1e-3, "max_length": 64, "precision": "fp8"})
    lines = problems(raw)
    assert "r.yaml: budget.steps: must be > 0" in lines
    assert "r.yaml: budget.batch_size: must be > 0" in lines
    assert any(line.startswith("r.yaml: budget.precision: must be one of") for line in lines)


@pytest.mark.parametrize("change, expected", [
    ({"teacher": "pocket:teacher-sfft"}, "teacher: unknown pocket model 'teacher-sfft'; did you mean 'pocket:teacher-sft'?"),
    ({"student": "/no/such/dir"}, "student: model directory not found: /no/such/dir (use pocket:<name>, hf:<id>[@rev] or a local path)"),
    ({"benchmarks": ["pocket-mth"]}, "benchmarks[0].name: unknown benchmark 'pocket-mth'; did you mean 'pocket-math'?"),
    ({"seeds": [1, 1]}, "seeds: seeds must be distinct"),
    ({"methods": []}, "methods: list should have at least 1 item after validation, not 0"),
    ({"data": {"source": "/no/file.jsonl"}}, "data.source: file not found: /no/file.jsonl"),
    ({"colour": "red"}, "colour: unknown field (known: name, kind, teacher, reference_teacher, student, data, "
                        "budget, seeds, methods, benchmarks, output_dir, trust_remote_code, leaderboard, tune, generation)"),
    # a nested field is matched against its own model's fields, not the recipe's
    ({"budget": {"steps": 2, "batch_size": 2, "learning_rate": 1e-4, "warmup": 3}},
     "budget.warmup: unknown field; did you mean 'warmup_steps'?"),
    ({"budget": {"steps": 2, "batch_size": 2, "learning_rate": 1e-4, "teacher": 3}},
     "budget.teacher: unknown field; did you mean 'teacher_top_k'?"),
    ({"methods": [{"name": "kd", "beta": 1}]}, "methods[0].beta: unknown field (known: temperature, ce_weight)"),
    # schedule settings that were silently ignored or never reached
    ({"budget": {"steps": 10, "batch_size": 2, "learning_rate": 1e-4, "max_length": 64, "lr_milestones": [5]}},
     "budget: lr_milestones are used by lr_schedule: multistep only (this is cosine)"),
    ({"budget": {"steps": 10, "batch_size": 2, "learning_rate": 1e-4, "max_length": 64, "lr_schedule": "multistep",
                 "lr_milestones": [5, 10]}}, "budget: lr_milestones: 10 is not before the last step (10 steps)"),
    ({"budget": {"steps": 10, "batch_size": 2, "learning_rate": 1e-4, "max_length": 64, "warmup_steps": 50}},
     "budget: warmup_steps (50) leaves no step at the full rate (10 steps)"),
    ({"methods": ["sft", "sft"]}, "methods: 'sft' is listed twice"),
])
def test_invalid_fields(change, expected):
    assert problems(base(**change)) == [f"r.yaml: {expected}"]


def test_missing_required_field():
    raw = base()
    del raw["teacher"]
    assert problems(raw) == ["r.yaml: teacher: required field is missing"]


def test_cli_exits_2_with_one_line_per_problem_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"""
name: bad
kind: text-lm
teacher: pocket:teacher-sft
student: pocket:student-init
data: {{source: "pocket:math"}}
budget: {{steps: 1, batch_size: 2, learning_rate: 0.001, max_length: 64}}
methods: [sft, kd, {{name: kd, temperature: 0}}, sfy]
benchmarks: [pocket-math]
output_dir: {out}
""")
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {recipe}: methods[2].temperature: must be > 0",
                   f"error: {recipe}: methods[3].name: unknown method 'sfy'; did you mean 'sft'?"]
    assert not out.exists()


def test_cli_reports_broken_yaml_with_its_line(tmp_path, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("name: x\nmethods: [sft\nteacher: y\n")
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml: line" in err and "invalid YAML" in err and "Traceback" not in err


def test_cli_missing_recipe_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err


def test_preference_methods_need_preference_data():
    assert problems(base(methods=["dpo"])) == ["r.yaml: data.preferences: required by dpo"]
    recipe = parse_recipe(base(methods=["dpo"], data={"source": "pocket:math", "preferences": "pocket:math-preference"}))
    assert recipe.data.preferences == "pocket:math-preference"


def test_a_top_k_cache_smaller_than_a_methods_teacher_top_k_is_refused():
    # DCKD reads the teacher's top 50 tokens; a cache of 5 filled the other 45 with arbitrary tied tokens
    budget = {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_length": 64, "teacher_top_k": 5}
    data = {"source": "pocket:math", "size": 10, "preferences": "pocket:math-preference"}
    assert problems(base(budget=budget, data=data, reference_teacher="pocket:teacher-sft",
                         methods=["dckd", {"name": "adpa", "top_k": 4}])) == [
        "r.yaml: methods[0]: dckd reads the teacher's top 50 tokens, but budget.teacher_top_k caches 5: "
        "raise it or lower top_k"]
    parse_recipe(base(budget=budget, data=data, methods=[{"name": "dckd", "top_k": 5}]), "r.yaml")


def _plan(raw):
    from distillbench.core.plan import make_plan

    return make_plan(parse_recipe(raw), identify=lambda ref: ref)


def test_a_recipe_entry_may_continue_another_methods_student():
    """`starts_from` on any method entry: the control for a method that continues another's student."""
    data = {"source": "pocket:math", "size": 10, "preferences": "pocket:math-preference"}
    controlled = base(data=data, seeds=[0, 1], methods=["sft", "dpo", {"name": "dpo", "starts_from": "sft"}, "redi"])
    plan = _plan(controlled)
    cells = {(cell.label, cell.seed): cell for cell in plan.cells if cell.kind == "method"}
    for seed in (0, 1):
        control, sft = cells[("dpo[starts_from=sft]", seed)], cells[("sft", seed)]
        assert control.starts_from == sft.key == cells[("redi", seed)].starts_from
        assert cells[("dpo", seed)].starts_from is None and cells[("dpo", seed)].key != control.key
    # adding the control leaves the plain row's cells (and their stored results) as they were
    plain = _plan(base(data=data, seeds=[0, 1], methods=["sft", "dpo", "redi"]))
    assert {c.key for c in plain.cells} < {c.key for c in plan.cells}


def test_a_start_must_name_another_method_of_the_recipe():
    assert problems(base(methods=["sft", {"name": "kd", "starts_from": "kd"}])) == [
        "r.yaml: methods[1].starts_from: the name of another method of the recipe"]
    assert problems(base(methods=["sft", {"name": "kd", "starts_from": "rkl"}])) == [
        "r.yaml: methods[1]: kd continues from the rkl student; add rkl to the methods"]
    with pytest.raises(UserInputError, match="continue from each other's students"):
        _plan(base(methods=[{"name": "sft", "starts_from": "kd"}, {"name": "kd", "starts_from": "sft"}]))
