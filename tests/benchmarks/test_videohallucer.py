"""VideoHallucer against the rules of its evaluation scripts (patrick-tssn/VideoHallucer, evaluations/)."""

import random
import re
from pathlib import Path

import pytest

from distillbench.benchmarks.vlm import videohallucer as vh
from distillbench.core.errors import UserInputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vlm" / "videohallucer"


@pytest.mark.parametrize("answer, prediction, hit", [
    ("yes", "Yes.", True),
    ("yes", "YES", True),
    ("yes", "Yes, there is a baby.", True),
    ("no", "No, there is no doll.", True),
    ("no", "Yes and no", True),  # both words: hits either question
    ("yes", "yes or no", True),
    ("no", "Nope.", False),  # whole words only
    ("no", "There is nothing.", False),
    ("no", "I do not know", False),
    ("yes", "yesterday", False),
    ("yes", "", False),
])
def test_hit(answer, prediction, hit):
    assert vh.hit(answer, prediction) is hit


def test_prompt_suffix():
    assert vh.prompt("Is there a baby in the video?") == "Is there a baby in the video?\nAnswer the question using 'yes' or 'no'."


def pair(basic, hallucinated):
    return {"basic": {"question": "q", "answer": "yes", "predict": basic},
            "hallucination": {"question": "q", "answer": "no", "predict": hallucinated}}


@pytest.mark.parametrize("basic, hallucinated, expected", [
    ("Yes", "No", {"basic": 1, "hallucinated": 1, "pair": 1}),
    ("Yes", "Yes", {"basic": 1, "hallucinated": 0, "pair": 0}),
    ("No", "No", {"basic": 0, "hallucinated": 1, "pair": 0}),
    ("Yes or no", "Yes or no", {"basic": 1, "hallucinated": 1, "pair": 1}),  # the regex rule's loophole
])
def test_pair_rule(basic, hallucinated, expected):
    assert vh.score_pair(pair(basic, hallucinated), basic, hallucinated) == expected


def test_overall_is_the_mean_over_categories():
    # The leaderboard's GPT-4o row: 53.3 = mean(66, 48.5, 55.5, 26, 70.5)
    row = dict(zip(vh.CATEGORIES, (0.66, 0.485, 0.555, 0.26, 0.705)))
    per_category = {name: {"basic_accuracy": 0.0, "halluc_accuracy": 0.0, "accuracy": value}
                    for name, value in row.items()}
    assert round(100 * vh.overall(per_category)["accuracy"], 1) == 53.3


def test_result_files_end_to_end():
    results = vh.load_results(FIXTURES, "tiny", ["obj_rel", "temporal"])
    scores = vh.evaluate(results)
    assert scores["obj_rel"] == {"basic_accuracy": 0.75, "halluc_accuracy": 0.75, "accuracy": 0.5}
    assert scores["temporal"] == {"basic_accuracy": 0.75, "halluc_accuracy": 0.25, "accuracy": 0.25}
    assert scores["all"] == {"basic_accuracy": 0.75, "halluc_accuracy": 0.5, "accuracy": 0.375}
    pooled = vh.bias(results["obj_rel"] + results["temporal"])
    assert pooled == pytest.approx({"yes_difference": (9 - 8) / 16, "no_difference": (5 - 8) / 16,
                                    "false_positive_ratio": 3 / 6, "hallucination_score": 3 / 6,
                                    "basic_accuracy": 0.75, "halluc_accuracy": 0.5, "accuracy": 0.375})


def official_bias(pairs):
    """evaluation_bias.py's loop, statement for statement."""
    gt_yes = gt_no = n_yes = n_no = n = fp = basic = halluc = overall = overall_basic = overall_halluc = cnt = 0
    for dct in pairs:
        basic_pred, halluc_pred = dct["basic"]["predict"], dct["hallucination"]["predict"]
        y_pattern, n_pattern = r"\b(yes)\b", r"\b(no)\b"
        gt_yes += 1
        if re.search(y_pattern, basic_pred, re.IGNORECASE):
            n_yes += 1
            basic += 1
            overall_basic += 1
            if not re.search(n_pattern, halluc_pred, re.IGNORECASE):
                halluc += 1
        else:
            if re.search(n_pattern, halluc_pred, re.IGNORECASE):
                n_no += 1
            n += 1
        gt_no += 1
        if re.search(n_pattern, halluc_pred, re.IGNORECASE):
            n_no += 1
            overall_halluc += 1
        else:
            if re.search(y_pattern, basic_pred, re.IGNORECASE):
                n_yes += 1
                fp += 1
            n += 1
        if re.search(y_pattern, basic_pred, re.IGNORECASE) and re.search(n_pattern, halluc_pred, re.IGNORECASE):
            overall += 1
        cnt += 1
    return {"yes_difference": (n_yes - gt_yes) / (gt_yes * 2), "no_difference": (n_no - gt_no) / (gt_no * 2),
            "false_positive_ratio": fp / n if n > 0 else 0, "hallucination_score": halluc / basic,
            "basic_accuracy": overall_basic / cnt, "halluc_accuracy": overall_halluc / cnt, "accuracy": overall / cnt}


def test_bias_equals_the_official_loop():
    rng = random.Random(0)
    answers = ["Yes", "No", "yes and no", "Nope", "I am not sure", "NO.", "Yes, it is."]
    pairs = [pair(rng.choice(answers), rng.choice(answers)) for _ in range(300)]
    assert vh.bias(pairs) == pytest.approx(official_bias(pairs))


def test_bias_needs_yes_no_pairs_and_results():
    detect = pair("No", "No")
    detect["basic"]["answer"] = "no"  # fact_detect's pairs are no/no, which the bias script asserts against
    with pytest.raises(UserInputError, match="basic answer 'yes'"):
        vh.bias([detect])
    unanswered = pair("Yes", "No")
    del unanswered["basic"]["predict"]
    with pytest.raises(UserInputError, match="lacks 'predict'"):
        vh.category_scores([unanswered])


def test_bad_files(tmp_path):
    with pytest.raises(UserInputError, match="file not found"):
        vh.load_results(tmp_path, "tiny")
    bad = tmp_path / "obj_rel_tiny.json"
    bad.write_text('[{"basic": {"question": "q"}}]')
    with pytest.raises(UserInputError, match="pair 0"):
        vh.load_pairs(bad)
