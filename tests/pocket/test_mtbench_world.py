"""pocket-mtbench: 80 two-turn questions in MT-Bench's format, with a computable ground truth."""

import json
import re
from collections import Counter

import pytest

from distillbench.pocket.mtbench_world import (
    ANSWER_TEMPERATURES,
    CATEGORIES,
    MAX_TURN_CHARS,
    NEED_REF_CATEGORIES,
    ORACLE_MODEL_ID,
    generate_questions,
    reference_answers,
    reference_turns,
    solve,
)


def test_eighty_two_turn_questions_ten_per_category():
    questions = generate_questions()
    assert len(questions) == 80
    assert Counter(q["category"] for q in questions) == {category: 10 for category in CATEGORIES}
    assert [q["question_id"] for q in questions] == list(range(1, 81))
    for question in questions:
        assert set(question) == {"question_id", "category", "turns"}
        assert len(question["turns"]) == 2
        for turn in question["turns"]:
            assert len(turn) < MAX_TURN_CHARS and "\n" not in turn, turn


def test_deterministic_from_the_seed_and_distinct():
    assert generate_questions(seed=3) == generate_questions(seed=3)
    assert generate_questions(seed=3) != generate_questions(seed=4)
    first_turns = [q["turns"][0] for q in generate_questions()]
    assert len(set(first_turns)) == len(first_turns)


def test_turn_two_builds_on_turn_one():
    for question in generate_questions():
        first, second = question["turns"]
        # Turn 2 is not a question on its own, and its answer is not turn 1's answer repeated.
        with pytest.raises(ValueError):
            solve([second])
        answers = solve([first, second])
        assert answers[0] == solve([first])[0]
        assert answers[1] != answers[0], question


@pytest.mark.parametrize("turns, expected", [
    (["Compute 12*3.", "Now add 4 to your answer."], ["36", "40"]),
    (["Compute 50-8.", "Now double your answer."], ["42", "84"]),
    (["Eve has 25 eggs, loses 8. How many eggs now?", "Then Eve gets 9. How many now?"], ["17", "26"]),
    (["How many cm are in 9 m?", "Now convert that to mm."], ["900", "9000"]),
    (["How many h are in 2 d?", "Now convert that to min."], ["48", "2880"]),
    (["Which is larger, 43 or 67?", "Now double the smaller one. Which is larger now?"], ["67", "86"]),
    (["Which is larger, 43 or 67?", "Now add 10 to the smaller one. Which is larger now?"], ["67", "67"]),
    (["Solve 5x+16=31.", "Now compute 5x+6."], ["3", "21"]),
    (["Solve x+7=19.", "Now compute 2x+1."], ["12", "25"]),
    (["What comes next: 3, 7, 11, 15?", "And the term after that?"], ["19", "23"]),
    (["What comes next: 4, 8, 16, 32?", "And the term after that?"], ["64", "128"]),
    # Rounding is half up, and turn 2 rounds turn 1's answer (145 -> 150 -> 200, not 100).
    (["Round 145 to the nearest ten.", "Now round your answer to the nearest hundred."], ["150", "200"]),
    (["Text: Ann has 21 coins and 24 pens. How many coins?", "Now add the pens to that."], ["21", "45"]),
    (["Text: Ann has 21 coins and 4 pens. How many coins?", "Now take away the pens from that."], ["21", "17"]),
])
def test_solve_hand_worked_cases(turns, expected):
    assert solve(turns) == expected
    assert solve(turns[:1]) == expected[:1]


def test_solve_rejects_text_outside_the_world():
    for turns in (["Write a poem."], ["Compute 2+2.", "Now write a poem."], ["How many cm are in 3 kg?"]):
        with pytest.raises(ValueError):
            solve(turns)


def test_generated_arithmetic_agrees_with_python():
    for question in generate_questions():
        if question["category"] == "arithmetic":
            expression = re.fullmatch(r"Compute (.*)\.", question["turns"][0]).group(1)
            assert solve(question["turns"])[0] == str(eval(expression))  # noqa: S307 (our own arithmetic)


def test_reference_turns_are_pocket_math_style_and_agree_with_solve():
    for question in generate_questions():
        turns = reference_turns(question["turns"])
        boxed = [re.fullmatch(r"[^\\]+ \\boxed\{(-?\d+)\}", turn).group(1) for turn in turns]
        assert boxed == solve(question["turns"])


def test_reference_answers_are_fastchat_records_for_the_categories_that_need_them():
    questions = generate_questions()
    records = reference_answers(questions)
    by_id = {q["question_id"]: q for q in questions}
    assert len(records) == 10 * len(NEED_REF_CATEGORIES)
    for record in records:
        question = by_id[record["question_id"]]
        assert question["category"] in NEED_REF_CATEGORIES
        assert record["model_id"] == ORACLE_MODEL_ID
        assert record["choices"][0]["index"] == 0
        assert record["choices"][0]["turns"] == reference_turns(question["turns"])
    assert reference_answers(questions) == records


def test_every_category_answers_greedily():
    assert ANSWER_TEMPERATURES == {category: 0.0 for category in CATEGORIES}


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_records_have_the_fields_of_the_real_mt_bench_files(shared_data):
    real_questions = _jsonl(shared_data / "mt_bench" / "question.jsonl")
    real_references = _jsonl(shared_data / "mt_bench" / "reference_answer_gpt-4.jsonl")
    question_fields = {key for record in real_questions for key in record} - {"reference"}
    reference_fields = {key for record in real_references for key in record}
    questions = generate_questions()
    assert all(set(q) == question_fields for q in questions)
    assert all(set(r) <= reference_fields and {"question_id", "choices"} <= set(r)
               for r in reference_answers(questions))
