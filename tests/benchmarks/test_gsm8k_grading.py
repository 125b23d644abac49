"""GSM8K strict and flexible extraction as lm-eval's gsm8k.yaml (v3.0) defines them."""

import pytest

from distillbench.benchmarks.gsm8k_grading import INVALID, extract_flexible, extract_strict, normalize, score

GOLD = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs at $2 each: 9 * 2 = <<9*2=18>>$18.\n#### 18"


@pytest.mark.parametrize("output, strict, flexible", [
    ("#### 1,000", "1,000", "1,000"),
    ("She has $18.", INVALID, "$18."),  # the flexible pattern takes $ and . into the match
    ("#### $18", INVALID, "$18"),  # strict wants a digit, sign, . or , right after "#### "
    ("He is left with -5 apples.\n#### -5", "-5", "-5"),
    ("I cannot tell.", INVALID, INVALID),
    ("", INVALID, INVALID),
    ("3 packs of 4 is 12, plus 2 makes 14.\n#### 14", "14", "14"),
    ("#### 18\nQuestion: a train leaves at 7", "18", "7"),  # strict takes the first, flexible the last
    ("#### 5 and later #### 6", "5", "6"),
    ("x-3", INVALID, "-3"),  # a hyphen before a digit reads as a minus sign
])
def test_extraction(output, strict, flexible):
    assert extract_strict(output) == strict
    assert extract_flexible(output) == flexible


@pytest.mark.parametrize("text, normalized", [
    ("1,000", "1000"),
    ("$18.", "18"),
    (GOLD, "18"),  # everything up to "#### " is ignored
    ("-5", "-5"),
    ("18.00", "18.00"),  # no numeric comparison: this stays different from 18
    ("[invalid]", "[invalid]"),
    ("ABC", "abc"),
])
def test_normalize(text, normalized):
    assert normalize(text) == normalized


@pytest.mark.parametrize("output, gold, strict_match, flexible_extract", [
    ("#### 1,000", "#### 1000", 1, 1),
    ("So she makes $18.", GOLD, 0, 1),
    ("She makes 9 * 2 = 18 dollars.\n#### 18", GOLD, 1, 1),
    ("#### $18", GOLD, 0, 1),
    ("The answer is 18.00", GOLD, 0, 0),
    ("He owes 5 dollars.\n#### -5", "#### -5", 1, 1),  # the minus sign survives both extractions
    ("I cannot tell.", GOLD, 0, 0),
    ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars, in 1 day.", GOLD, 0, 0),  # the last number is 1
    ("#### 18\nQuestion: what is 7 + 5?", GOLD, 1, 0),  # a run-on next question spoils flexible only
])
def test_score(output, gold, strict_match, flexible_extract):
    assert score(output, gold) == {"strict_match": strict_match, "flexible_extract": flexible_extract}


def test_generation_stops_where_lm_evals_until_does(monkeypatch):
    # without the stop, flexible-extract read the last number of a question the model went on to invent
    from distillbench.benchmarks import gsm8k

    monkeypatch.setattr(gsm8k, "generate_responses", lambda *args, **kwargs: [
        "She pays 9 * 2 = 18 dollars.\n\nQuestion: a train leaves at 7", "#### 18<|im_end|>3", "No stop here: 4"])
    outputs = gsm8k.GSM8K(source="unused").predict(None, None, [{"question": "q"}] * 3, batch_size=3)
    assert outputs == ["She pays 9 * 2 = 18 dollars.\n\n", "#### 18", "No stop here: 4"]
    assert extract_flexible(outputs[0]) == "18" and extract_strict(outputs[1]) == "18"
    assert gsm8k.GSM8K(source="unused").protocol()["until"] == ["Question:", "</s>", "<|im_end|>"]
