import pytest

from distillbench.kinds.text_lm.math_grading import grade


@pytest.mark.parametrize("output, gold, correct", [
    ("3+4=7. \\boxed{7}", "7", True),
    ("\\boxed{8}", "7", False),
    ("The answer is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", True),
    ("so we get \\boxed{0.5}", "\\frac{1}{2}", True),          # numeric equivalence
    ("first \\boxed{3} then corrected \\boxed{7}", "7", True),   # the last box counts
    ("first \\boxed{7} then corrected \\boxed{3}", "7", False),
    ("", "7", False),                                            # empty output
    ("I do not know.", "7", False),
    ("\\boxed{1,000}", "1000", True),                             # thousands separator
])
def test_math_verify_grading(output, gold, correct):
    assert grade(output, gold).correct is correct


def test_reason_names_what_was_extracted():
    result = grade("x=5. \\boxed{6}", "5")
    assert not result.correct and "6" in result.reason
    assert grade("", "5").reason.endswith("no answer could be extracted")
