"""The three MATH graders on tricky cases from their official rules.

Disagreements between graders are the point: each row states what each rule decides, and the
comment says which rule makes the difference. Rules: lm-eval ``hendrycks_math`` / ``minerva_math``
``utils.py`` and Math-Verify (see distillbench/kinds/text_lm/math_grading.py for the sources).
"""

import json

import pytest

from distillbench.kinds.text_lm.math_grading import (
    GRADERS,
    grade,
    hendrycks_is_equiv,
    hendrycks_normalize,
    last_boxed_content,
    minerva_extract,
    minerva_normalize,
    minerva_sympy_equal,
    minerva_uses_sympy,
)

# sympy's parse_latex runs only with antlr4-python3-runtime 4.11; without it minerva compares
# normalised strings, so rows that only sympy can decide expect SYMPY (True exactly when it runs).
SYMPY = "sympy"
needs_sympy = pytest.mark.skipif(not minerva_uses_sympy(), reason="sympy parse_latex needs antlr4-python3-runtime 4.11")


def final(answer: str) -> str:
    """An output in the Minerva few-shot format, the only one lm-eval's minerva_math reads."""
    return f"Some working.\nFinal Answer: The final answer is ${answer}$. I hope it is correct."


TUPLE = "\\left( 3, \\frac{\\pi}{2} \\right)"

CASES = [
    # output, gold, math-verify, minerva, hendrycks
    # -- fractions
    ("\\boxed{\\frac12}", "\\frac{1}{2}", True, False, True),  # minerva reads no boxes, only its line
    (final("\\frac12"), "\\frac{1}{2}", True, True, True),  # both normalisations brace \frac12
    (final("\\dfrac{1}{2}"), "\\frac{1}{2}", True, SYMPY, True),  # minerva keeps \dfrac; hendrycks drops the d
    (final("0.5"), "\\frac{1}{2}", True, SYMPY, True),  # hendrycks rewrites exactly "0.5"...
    (final("0.25"), "\\frac{1}{4}", True, SYMPY, False),  # ...and no other decimal
    # -- ordered pairs (MATH-500's first record)
    ("\\boxed{" + TUPLE + "}", TUPLE, True, False, True),
    (final(TUPLE), TUPLE, True, True, True),  # minerva: only through our string shortcut (lm-eval #4030)
    (final("(3,\\frac{\\pi}{2})"), TUPLE, True, False, True),  # minerva's "ft" removal turns \left( into \le(
    # -- intervals
    (final("[2,5)"), "[2,5)", True, True, True),  # sympy cannot parse intervals: the shortcut decides
    (final("[2, 5)"), "[2,5)", True, True, True),  # both normalisations drop spaces
    (final("(2,5]"), "[2,5)", False, False, False),
    # -- units
    (final("5\\text{ cm}"), "5", True, True, True),
    ("\\boxed{5\\text{ cm}}", "5", True, False, True),
    (final("10 dollars"), "10", False, True, False),  # only minerva deletes unit words
    ("\\boxed{10\\text{ dollars}}", "10", True, False, True),  # hendrycks drops "\text{ ...}" units
    # -- thousands separators
    (final("1,000"), "1000", True, True, False),  # hendrycks keeps the comma
    ("\\boxed{1,000}", "1000", True, False, False),
    # -- degrees and percent
    (final("30^\\circ"), "30", True, True, True),
    ("\\boxed{30^{\\circ}}", "30", True, False, True),
    (final("50\\%"), "50", True, False, True),  # minerva has no rule for \% and sympy cannot parse it
    # math-verify: latex2sympy2_extended reads \boxed{50\%} as 50/100 with antlr 4.13.2 but extracts
    # nothing with 4.11, so its verdict depends on the installed runtime; not asserted.
    ("\\boxed{50\\%}", "50", None, False, True),
    # -- several boxes: the last one counts
    ("first \\boxed{3}, corrected: \\boxed{7}", "7", True, False, True),
    ("first \\boxed{7}, corrected: \\boxed{3}", "7", False, False, False),
    ("\\fbox{7}", "7", True, False, True),
    # -- the Minerva answer line and plain outputs
    ("Final Answer: The final answer is $7$. I hope it is correct.", "7", True, True, True),
    ("", "7", False, False, False),
    ("x = 5", "5", True, False, True),  # hendrycks keeps the right side when the left has <= 2 characters
    (final("x = 5"), "5", True, True, True),
    (final("xy = 5"), "5", True, True, False),  # ...but "xy " has 3
    ("The answer is $7$.", "7", True, False, True),  # hendrycks: the text between the first and last $
    ("so $x=2$ and the answer is $7$", "7", True, False, False),  # ...which here spans "x=2$ and ... $7"
    # -- forms only sympy or only a rewrite rule recognises
    (final("\\pi/2"), "\\frac{\\pi}{2}", True, SYMPY, False),  # hendrycks' a/b rewrite is integers only
    ("\\boxed{3/4}", "\\frac34", True, False, True),
    (final("2\\sqrt{3}"), "\\sqrt{12}", True, SYMPY, False),
    (final("\\sqrt3"), "\\sqrt{3}", True, True, True),
]


@pytest.mark.parametrize("output, gold, math_verify, minerva, hendrycks", CASES)
def test_graders_on_tricky_cases(output, gold, math_verify, minerva, hendrycks):
    for grader, correct in zip(GRADERS, (math_verify, minerva, hendrycks)):
        if correct is None:
            continue
        if correct == SYMPY:
            correct = minerva_uses_sympy()
        result = grade(output, gold, grader)
        assert result.correct is correct, f"{grader}: {result.reason}"


@pytest.mark.parametrize("grader", GRADERS)
def test_reason_names_grader_and_extraction(grader):
    result = grade(final("\\frac{3}{4}"), "\\frac{3}{4}", grader)
    assert result.correct and result.reason.startswith(f"{grader}: ")
    wrong = grade(final("42"), "7", grader)
    assert not wrong.correct and "42" in wrong.reason


def test_unknown_grader_is_refused():
    with pytest.raises(ValueError, match="hendrycks"):
        grade("\\boxed{7}", "7", "lenient")


def test_minerva_says_why_a_boxed_answer_scores_zero():
    result = grade("\\boxed{7}", "7", "minerva")
    assert not result.correct and result.extracted is None and "[invalidanswer]" in result.reason


def test_minerva_reason_says_sympy_is_missing(monkeypatch):
    from distillbench.kinds.text_lm import math_grading

    missing = "sympy parse_latex needs antlr4-python3-runtime 4.11, found 4.13.2"
    monkeypatch.setattr(math_grading, "_sympy_latex_parser", lambda: (None, missing))
    assert not math_grading.minerva_uses_sympy()
    assert missing in grade(final("0.5"), "\\frac{1}{2}", "minerva").reason


@needs_sympy
@pytest.mark.parametrize("answer", ["(2,4)", "[2,5)", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"])
def test_sympy_alone_rejects_identical_answers(answer):
    """lm-eval #4030: without a string shortcut, minerva scores these 0 against themselves."""
    assert not minerva_sympy_equal(answer, answer)
    assert grade(final(answer), answer, "minerva").correct


@pytest.mark.parametrize("output, extracted", [
    ("Final Answer: The final answer is $7$. I hope it is correct.", "$7$"),
    # generation stopped at "I hope it is correct.": lm-eval appends it back before matching...
    ("Final Answer: The final answer is $7$. ", "$7$"),
    ("Final Answer: The final answer is 7.", "[invalidanswer]"),  # ...but the pattern needs ". " first
    ("The final answer is $7$. I hope it is correct.", "[invalidanswer]"),
    ("\\boxed{7}", "[invalidanswer]"),  # no fallback to boxes in lm-eval's minerva_math
])
def test_minerva_extraction(output, extracted):
    assert minerva_extract(output) == extracted


@pytest.mark.parametrize("raw, normalized", [
    (TUPLE, "\\le(3,\\frac{\\pi}{2}\\right)"),  # "ft" is a unit word, deleted even inside \left
    ("(2,\\infty)", "(2,\\iny)"),  # ...and inside \infty
    ("\\frac9{19}", "\\frac{9}{{}19}"),  # the \frac regex takes two characters, brace or not
    ("$1,000$", "1000"),
    ("x = \\boxed{5}", "5"),
    ("10 dollars", "10"),
    ("5\\text{ cm}", "5"),
    ("\\text{(A)}", "(A)"),
    ("\\sqrt3", "\\sqrt{3}"),
    ("\\$18.50", "18.50"),
])
def test_minerva_normalize(raw, normalized):
    assert minerva_normalize(raw) == normalized


@pytest.mark.parametrize("raw, normalized", [
    ("\\dfrac12", "\\frac{1}{2}"),
    ("0.5", "\\frac{1}{2}"),
    (".5", "\\frac{1}{2}"),  # a leading 0 is added first, then 0.5 is rewritten
    ("3/4", "\\frac{3}{4}"),
    ("\\frac1{72}", "\\frac{1}{72}"),
    ("\\frac{72}1", "\\frac{72}1"),  # a limit strip_string's own comment states
    (TUPLE, "(3,\\frac{\\pi}{2})"),
    ("5\\text{ cm}", "5"),
    ("k = 7", "7"),
    ("30^\\circ", "30"),
    ("50\\%", "50"),
    ("50%", "50%"),  # a bare % stays, in lm-eval and the MATH release alike: their "\%" is "\\%"
    ("\\sqrt3", "\\sqrt{3}"),
    ("1,000", "1,000"),
])
def test_hendrycks_normalize(raw, normalized):
    assert hendrycks_normalize(raw) == normalized


# \pi/2: lm-eval's fix_a_slash_b catches only AssertionError (the MATH release caught all and
# left the string); two "\text{ " groups fail an assert; a trailing \sqrt or \frac indexes "".
@pytest.mark.parametrize("raw", ["\\pi/2", "1\\text{ cm}\\text{ m}", "\\sqrt", "\\frac"])
def test_hendrycks_normalize_raises_where_lm_eval_does(raw):
    with pytest.raises((ValueError, IndexError)):
        hendrycks_normalize(raw)


def test_hendrycks_falls_back_to_raw_strings_when_normalisation_raises():
    assert hendrycks_is_equiv("\\pi/2", "\\pi/2")
    # Both would normalise to \pi/2, but fix_a_slash_b raises first, so the raw strings decide.
    assert not hendrycks_is_equiv("\\pi / 2", "\\pi/2")


@pytest.mark.parametrize("text, content", [
    ("\\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),  # nested braces
    ("\\boxed{3} then \\fbox{4}", "4"),
    ("\\fbox{4} then \\boxed 5$ and", "5"),  # the spaced form runs to the next $
    ("\\boxed{7", None),  # never closed
    ("no box", None),
])
def test_last_boxed_content(text, content):
    assert last_boxed_content(text) == content


def _math500_outputs(shared_data, count):
    """Each gold solution followed by its boxed answer in the Minerva answer line, as the
    Minerva few-shot solutions are written, so all three graders can read it."""
    lines = (shared_data / "math500" / "test.jsonl").read_text().splitlines()[:count]
    for record in map(json.loads, lines):
        boxed = last_boxed_content(record["solution"])
        yield record["solution"] + f"\nFinal Answer: The final answer is ${boxed}$. I hope it is correct.", record


@pytest.mark.parametrize("grader, threshold", [
    # Measured on the first 50 records: 50/50 for every grader (and 500/500 on all of MATH-500),
    # because every boxed answer there equals its `answer` field and each grader's string
    # shortcut takes it. What the shortcut hides is checked below.
    ("math-verify", 1.0), ("minerva", 1.0), ("hendrycks", 1.0),
])
def test_math500_gold_solutions_grade_correct(shared_data, grader, threshold):
    results = [grade(output, record["answer"], grader) for output, record in _math500_outputs(shared_data, 50)]
    failures = [result.reason for result in results if not result.correct]
    assert 1 - len(failures) / len(results) >= threshold, failures


def test_math500_equivalence_without_the_shortcut(shared_data):
    """Each rule's own equivalence, gold boxed answer against the answer field, no shortcut.

    hendrycks' is_equiv accepts 50/50. lm-eval's minerva (normalise, then sympy only) accepts
    49/50 when sympy runs: record 0, the ordered pair \\left( 3, \\frac{\\pi}{2} \\right), becomes
    \\le(3,...) and cannot be parsed (on all 500 records: 472/500, the 28 failures being tuples,
    intervals, matrices, sets, \\infty -> \\iny, \\frac9{19} and leading-dot decimals).
    """
    pairs = [(last_boxed_content(record["solution"]), record["answer"]) for _, record in _math500_outputs(shared_data, 50)]
    assert all(hendrycks_is_equiv(boxed, answer) for boxed, answer in pairs)
    if not minerva_uses_sympy():
        pytest.skip("sympy parse_latex needs antlr4-python3-runtime 4.11; the sympy half is not checked")
    rejected = [answer for boxed, answer in pairs if not minerva_sympy_equal(minerva_normalize(boxed), minerva_normalize(answer))]
    assert rejected == [TUPLE]


@pytest.mark.parametrize("grader", ["math-verify", "minerva", "hendrycks"])
def test_the_prompt_asks_for_what_the_grader_reads(monkeypatch, grader):
    # minerva reads only "Final Answer: The final answer is …"; a prompt asking for \boxed{} scored ~0 by design
    from distillbench.benchmarks import hendrycks_math
    from distillbench.pocket.benchmarks import pocket_math
    from distillbench.kinds.text_lm.math_grading import MINERVA_INSTRUCTION, grade

    asked = []
    for module in (hendrycks_math, pocket_math):
        monkeypatch.setattr(module, "generate_responses", lambda model, tokenizer, conversations, **_: asked.append(
            conversations[0][0]["content"]) or [""] * len(conversations))
    hendrycks_math.MathBenchmark(source="unused", grader=grader).predict(None, None, [{"problem": "1+1?"}],
                                                                         batch_size=1)
    pocket_math.PocketMath(grader=grader).predict(None, None, [{"problem": "1+1?"}], batch_size=1)
    assert all((MINERVA_INSTRUCTION in text) == (grader == "minerva") for text in asked)
    assert ("\\boxed{}" in asked[0]) == (grader != "minerva")
    answered = "1+1 is 2.\n" + MINERVA_INSTRUCTION.split('"')[1].replace("ANSWER", "2")
    assert grade(answered, "2", "minerva").correct  # following the instruction is graded as intended


def test_the_protocol_says_how_minerva_decided_equivalence_here():
    # sympy's LaTeX parser needs antlr 4.11, math-verify brings 4.13: the same grader gives other numbers
    from distillbench.kinds.text_lm.math_grading import minerva_uses_sympy
    from distillbench.pocket.benchmarks.pocket_math import PocketMath

    protocol = PocketMath(grader="minerva").protocol()
    assert protocol["minerva_equivalence"].endswith("then sympy") == minerva_uses_sympy()
    assert "instruction" in protocol and "minerva_equivalence" not in PocketMath().protocol()
