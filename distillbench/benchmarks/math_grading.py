"""Graders for MATH-format answers.

`math-verify` (the default) is Hugging Face's Math-Verify: it extracts the last
answer that parses (``\\boxed{}`` first, then LaTeX and plain expressions) and
checks it against the gold by string, numeric and symbolic equality. A plain
string-equality shortcut runs first, as every grader here does.
"""

from __future__ import annotations

from dataclasses import dataclass

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

GRADERS = ("math-verify",)


@dataclass(frozen=True)
class Grade:
    correct: bool
    extracted: str | None
    reason: str


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, with nested braces matched."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for index in range(begin, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            if depth == 0:
                return text[begin:index]
            depth -= 1
    return None


def grade_math_verify(output: str, gold_answer: str) -> Grade:
    boxed = _last_boxed(output)
    if boxed is not None and boxed.strip() == gold_answer.strip():
        return Grade(True, boxed.strip(), "string match on the boxed answer")
    gold = parse(f"${gold_answer}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()])
    predicted = parse(output, extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])
    if not predicted:
        return Grade(False, None, "no answer could be extracted")
    extracted = str(predicted[-1])
    if verify(gold, predicted):
        return Grade(True, extracted, f"math-verify: {extracted} equals {gold_answer}")
    return Grade(False, extracted, f"math-verify: {extracted} differs from {gold_answer}")


def grade(output: str, gold_answer: str, grader: str = "math-verify") -> Grade:
    if grader != "math-verify":
        raise ValueError(f"unknown grader {grader!r}; known: {', '.join(GRADERS)}")
    return grade_math_verify(output, gold_answer)
