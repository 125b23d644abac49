"""Local SFT data files: MATH-format records or chats, and the errors for anything else."""

import json
import re

import pytest

from distillbench.kinds.text_lm.data import load_records, problem_records
from distillbench.core.errors import UserInputError

CHAT = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}
MATH = {"problem": "2+2?", "solution": "\\boxed{4}"}


def write(tmp_path, records):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def test_math_records_and_chats_both_load(tmp_path):
    assert load_records(write(tmp_path, [MATH, CHAT]), "train", None) == [MATH, CHAT]


@pytest.mark.parametrize("record, message", [
    ({"problem": "2+2?"}, "2: missing field 'solution' (or a 'messages' list)"),
    ({"messages": "hi"}, "2: missing field 'problem'")])
def test_a_record_that_is_neither_is_refused_with_its_line(tmp_path, record, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        load_records(write(tmp_path, [MATH, record]), "train", None)


def test_methods_that_check_their_samples_need_problems_with_answers(tmp_path):
    with pytest.raises(UserInputError, match="record 2: missing field 'problem'"):
        problem_records(write(tmp_path, [{**MATH, "answer": "4"}, CHAT]), "train", None)


def test_a_run_trains_on_a_local_file_of_chats_and_problems(tiny_recipe, tmp_path):
    from distillbench.cli.main import main

    records = [MATH, CHAT] * 8
    recipe = tiny_recipe("[sft, {name: kd, temperature: 2.0}]")
    source = write(tmp_path, records)
    recipe.write_text(recipe.read_text().replace('source: "pocket:math", size: 64', f'source: "{source}"'))
    assert main(["run", str(recipe)]) == 0
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert {row["row"]: row["status"] for row in board["rows"] if row["kind"] == "method"} == {
        "sft": "complete", "kd[temperature=2.0]": "complete"}
