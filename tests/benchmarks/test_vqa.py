"""VQAv2 scoring against the rules of the official vqaEval.py (GT-Vision-Lab/VQA, commit a013f00)."""

import itertools
from pathlib import Path

import pytest

from distillbench.benchmarks.vlm import vqa
from distillbench.core.errors import UserInputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vlm" / "vqa"


@pytest.mark.parametrize("text, processed", [
    ("1,000", "1000"),  # a digit,digit run: every mark is deleted, not spaced
    ("3,5 apples, 2", "35 apples 2"),
    ("yes/no", "yes no"),  # no space beside the mark: replaced by a space
    ("t-shirt", "t shirt"),
    ("t - shirt", "t  shirt"),  # " -" is in the text: deleted, leaving both spaces
    ("hello, world", "hello world"),
    ("a,b", "a b"),
    ("(left)", " left "),
    ("what?!", "what  "),
    ("don't", "don't"),  # apostrophes are not in the list
    ("2.5", "2.5"),  # a period before a digit stays
    ("2.", "2"),
    (".5", ".5"),
    ("a.m.", "am"),
    ("3.", "3"),  # the pattern's (?!<=\d) is a look-ahead: the digit before does not protect the period
    ("." * 40, "." * 8),  # the official call passes re.UNICODE (32) as sub's count
])
def test_process_punctuation(text, processed):
    assert vqa.process_punctuation(text) == processed


@pytest.mark.parametrize("text, processed", [
    ("Two Dogs", "2 dogs"),
    ("none", "0"),
    ("zero", "0"),
    ("ten", "10"),
    ("eleven", "eleven"),  # the map stops at ten
    ("an apple", "apple"),
    ("the", ""),
    ("A dog", "dog"),
    ("dont", "don't"),
    ("Dont know", "don't know"),
    ("whats up", "what's up"),
    ("Im", "im"),  # capitalised keys ("Im", "Ive") never match lower-cased words
    ("somebody'd", "somebodyd"),  # an official entry that maps the other way
    ("  lots   of   space ", "lots of space"),
])
def test_process_digit_article(text, processed):
    assert vqa.process_digit_article(text) == processed


def naive_accuracy(prediction, answers):
    """Over the 10 subsets of 9 answers: min(1, matches / 3), averaged."""
    subsets = list(itertools.combinations(range(len(answers)), len(answers) - 1))
    return sum(min(1, sum(answers[j] == prediction for j in subset) / 3) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("agreeing, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out(agreeing, expected):
    answers = ["red"] * agreeing + ["blue"] * (10 - agreeing)
    accuracy = vqa.question_accuracy("red", answers)
    assert accuracy == pytest.approx(expected)
    assert accuracy == pytest.approx(naive_accuracy("red", answers))


@pytest.mark.parametrize("prediction, answers, accuracy_2021, accuracy_2017", [
    ("two", ["2"] * 10, 0.0, 1.0),  # humans agree: since 2021 nothing is normalised
    ("2", ["2"] * 10, 1.0, 1.0),
    ("2\n", ["2"] * 10, 1.0, 1.0),  # whitespace is cleaned in both versions
    ("two", ["2"] * 9 + ["two"], 1.0, 1.0),  # disagreement: answers normalised too (2021)
    ("Yes.", ["yes"] * 2 + ["no"] * 8, 0.6, 0.6),
    ("dont know", ["don't know"] * 3 + ["happy"] * 7, 0.9, 0.9),
    ("A dog", ["dog"] * 2 + ["the dog"] * 2 + ["cat"] * 6, 1.0, 0.6),  # 2017 never stripped articles from answers
    ("1,000", ["1000"] * 5 + ["1,000"] * 5, 1.0, 1.0),
    ("1,000", ["1,000"] * 10, 1.0, 0.0),  # 2017 normalised the prediction only
    ("dog", ["dog"] * 10, 1.0, 1.0),
    ("Dog", ["dog"] * 10, 0.0, 1.0),  # nor lower case when humans agree (2021)
])
def test_question_accuracy_both_rule_versions(prediction, answers, accuracy_2021, accuracy_2017):
    assert vqa.question_accuracy(prediction, answers) == pytest.approx(accuracy_2021)
    assert vqa.question_accuracy(prediction, answers, rules="2017") == pytest.approx(accuracy_2017)


def test_unknown_rules_refused():
    with pytest.raises(ValueError, match="rules"):
        vqa.question_accuracy("2", ["2"] * 10, rules="lmms-eval")


def test_official_files_end_to_end():
    items = vqa.load_vqa(*vqa.find_vqa_files(FIXTURES))
    assert [item["id"] for item in items][:2] == ["458752000", "458752001"]
    assert items[0]["answers"] == ["2"] * 10 and items[0]["question"] == "How many dogs are there?"
    predictions = vqa.load_results(FIXTURES / "v2_OpenEnded_mscoco_val2014_fake_results.json")
    result = vqa.evaluate(items, predictions)
    assert result["per_question"] == pytest.approx(
        {"458752000": 0.0, "458752001": 1.0, "262146000": 0.6, "262146001": 0.9, "524291000": 1.0, "524291001": 1.0})
    assert result["overall"] == round(100 * 4.5 / 6, 2) == 75.0
    assert result["per_answer_type"] == {"number": round(200 / 3, 2), "yes/no": 60.0, "other": 95.0}
    assert result["per_question_type"]["how many"] == 50.0
    old = vqa.evaluate(items, predictions, rules="2017")
    assert old["per_question"]["458752000"] == 1.0 and old["per_question"]["524291000"] == pytest.approx(0.6)


def test_aggregates_round_as_the_python_2_script():
    """vqaEval.py (Python 2.7) rounds with 2.7's round: the float's exact value, halves away from zero.

    One question right out of 32 is 100/32 = 3.125 exactly: the official figure is 3.13, where
    Python 3's round (halves to even) prints 3.12.
    """
    items = [{"id": str(i), "answers": ["yes"] * 10, "answer_type": "yes/no", "question_type": "is the"}
             for i in range(32)]
    predictions = {str(i): "yes" if i == 0 else "no" for i in range(32)}
    result = vqa.evaluate(items, predictions)
    assert round(3.125, 2) == 3.12
    assert result["overall"] == 3.13 and result["per_answer_type"] == {"yes/no": 3.13}
    assert result["per_question_type"] == {"is the": 3.13}
    assert vqa.evaluate(items, predictions, digits=1)["overall"] == 3.1


def test_python_2_round_and_sum():
    assert vqa.python2_round(0.125, 2) == 0.13 and vqa.python2_round(-0.125, 2) == -0.13
    assert vqa.python2_round(2.5, 0) == 3.0 and vqa.python2_round(37.5, 2) == 37.5
    # 2.675 is 2.67499999999999982236431605997495353221893310546875 in binary: 2.7 rounds it down too
    assert vqa.python2_round(2.675, 2) == 2.67
    # Python 2's sum adds left to right: 1e16 + 1.0 rounds back to 1e16 (3.12's compensated sum gives 1.0)
    assert vqa.python2_sum([1e16, 1.0, -1e16]) == 0.0
    assert vqa.percent([1.0] + [0.0] * 7) == 12.5 and vqa.percent([1.0] + [0.0] * 15) == 6.25


def test_predictions_must_cover_the_questions_exactly():
    items = vqa.load_vqa(*vqa.find_vqa_files(FIXTURES))
    predictions = {item["id"]: "yes" for item in items[1:]}
    with pytest.raises(UserInputError, match="1 missing"):
        vqa.evaluate(items, predictions)
    with pytest.raises(UserInputError, match="1 not in the annotations"):
        vqa.evaluate(items, {**predictions, items[0]["id"]: "2", "7": "x"})


def test_bad_files(tmp_path):
    with pytest.raises(UserInputError, match="file not found"):
        vqa.find_vqa_files(tmp_path)
    bad = tmp_path / "results.json"
    bad.write_text('[{"question_id": 1}]')
    with pytest.raises(UserInputError, match="record 0"):
        vqa.load_results(bad)
    bad.write_text("{not json")
    with pytest.raises(UserInputError, match="invalid JSON"):
        vqa.load_results(bad)
