"""POPE scoring against the rules of the official evaluate.py (AoiDragon/POPE)."""

from pathlib import Path

import pytest

from distillbench.benchmarks.vlm import pope
from distillbench.core.errors import UserInputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vlm" / "pope"


@pytest.mark.parametrize("answer, parsed", [
    ("Yes", "yes"),
    ("Yes.", "yes"),  # lmms-eval's exact match would call this wrong
    ("No", "no"),
    ("No.", "no"),
    ("no", "no"),
    ("No, there is not.", "no"),
    ("Yes, there is a dog, no cat.", "no"),  # commas go, then "no" is a word
    ("It is not.", "no"),
    ("There is no dog in the image.", "no"),
    ("There is a dog. No other animal.", "yes"),  # only the first sentence counts
    ("The answer is yes. No", "yes"),
    ("NO", "yes"),  # the words are compared case-sensitively
    ("Not at all.", "yes"),  # "Not" is not in the list
    ("no\nthere is", "yes"),  # split on spaces only: the word is "no\nthere"
    ("Nope", "yes"),
    ("I cannot tell.", "yes"),  # anything without a negation word is yes
    ("", "yes"),
    ("no.", "no"),
])
def test_parse_yes_no(answer, parsed):
    assert pope.parse_yes_no(answer) == parsed


def test_metrics_and_yes_ratio_of_predictions():
    answers = ["Yes", "Yes", "No", "Yes", "No", "No"]
    labels = ["yes", "no", "yes", "yes", "no", "no"]
    result = pope.score(answers, labels)
    assert (result["tp"], result["fp"], result["tn"], result["fn"]) == (2, 1, 2, 1)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["yes_ratio"] == pytest.approx(3 / 6)  # predicted yes, not gold yes (lmms-eval's slip)
    all_yes = pope.score(["yes"] * 4, ["no", "no", "no", "yes"])
    assert all_yes["yes_ratio"] == 1.0 and all_yes["precision"] == 0.25 and all_yes["recall"] == 1.0
    all_no = pope.score(["no"] * 2, ["yes", "no"])
    assert all_no["precision"] == 0.0 and all_no["f1"] == 0.0  # the script would divide by zero here


def test_score_item_matches_the_split_figures():
    answers, labels = ["Yes.", "No, there is not", "NO"], ["yes", "no", "no"]
    items = [pope.score_item(a, l) for a, l in zip(answers, labels)]
    assert items == [{"correct": 1, "predicted_yes": 1}, {"correct": 1, "predicted_yes": 0},
                     {"correct": 0, "predicted_yes": 1}]
    split = pope.score(answers, labels)
    assert sum(i["correct"] for i in items) / 3 == split["accuracy"]
    assert sum(i["predicted_yes"] for i in items) / 3 == split["yes_ratio"]


def test_official_files_three_splits_and_average():
    per_split = {}
    for split, path in pope.split_files(FIXTURES).items():
        questions = pope.load_questions(path)
        per_split[split] = pope.align(questions, pope.load_answers(FIXTURES / f"answers_{split}.jsonl"))
    result = pope.evaluate_splits(per_split)
    assert {k: result["random"][k] for k in pope.METRICS} == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0,
                                                             "f1": 1.0, "yes_ratio": 0.5}
    assert {k: result["popular"][k] for k in pope.METRICS} == {m: 0.5 for m in pope.METRICS}
    adversarial = result["adversarial"]  # "NO" and "Not at all." both read as yes
    assert (adversarial["tp"], adversarial["fp"], adversarial["yes_ratio"]) == (2, 2, 1.0)
    assert adversarial["f1"] == pytest.approx(2 / 3)
    assert result["average"]["f1"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    assert result["average"]["yes_ratio"] == pytest.approx(2 / 3)


def test_answers_matched_by_question_id_or_position():
    questions = [{"question_id": 1, "label": "yes"}, {"question_id": 2, "label": "no"}]
    by_id = [{"question_id": 2, "text": "No"}, {"question_id": 1, "text": "Yes"}]  # LLaVA's answer format
    assert pope.align(questions, by_id) == (["Yes", "No"], ["yes", "no"])
    with pytest.raises(UserInputError, match="1 POPE questions have no answer"):
        pope.align(questions, by_id[:1])
    with pytest.raises(UserInputError, match="paired by position"):  # POPE issue #17: 2910 answers, 3000 labels
        pope.align(questions, [{"answer": "Yes"}])


def test_bad_files(tmp_path):
    bad = tmp_path / "coco_pope_random.json"
    bad.write_text('{"question_id": 1, "image": "x.jpg", "text": "Is there a cat?", "label": "maybe"}\n')
    with pytest.raises(UserInputError, match="label must be"):
        pope.load_questions(bad)
    with pytest.raises(UserInputError, match="coco_pope_popular.json: file not found"):
        pope.split_files(tmp_path)
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question": "is there a cat?"}\n')
    with pytest.raises(UserInputError, match="missing field 'answer'"):
        pope.load_answers(answers)
