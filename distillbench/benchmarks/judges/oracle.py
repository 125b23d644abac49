"""pocket-oracle: a judge that grades pocket-mtbench answers exactly, from the official prompt text.

It is a chat backend like any other judge: it receives the rendered official
FastChat judge prompt (any of single-v1, single-math-v1, single-v1-multi-turn,
single-math-v1-multi-turn, pair-v2, pair-math-v1, pair-v2-multi-turn,
pair-math-v1-multi-turn; MT-Bench, arXiv:2306.05685), reads the question(s) and
answer(s) out of it by the templates' own markers, computes the ground truth
with `distillbench.pocket.mtbench_world.solve` (reference answers in the prompt
are not needed and are ignored), and answers in the judge's output format, so
the official parsers read its verdict.

Rubric, on the answer to the judged turn (turn 1 for single-turn prompts, turn 2
for multi-turn prompts, as the official multi-turn prompts ask):

    1 point to start with
  + 6 the final (last) ``\\boxed{}`` value equals the ground truth  (correctness dominates)
    (+ 3 instead, when there is no ``\\boxed{}`` but the last number is right)
  + 2 a ``\\boxed{}`` answer is present                               (format)
  + 1 at most `concise_chars` characters and a single ``\\boxed{}``    (conciseness: no padding, no hedging)
  = 1..10

Following turn 2 is graded through correctness: turn 2's ground truth always
differs from turn 1's, so an answer that repeats the first result earns no
correctness points (and the explanation says so). Single grading answers a
short explanation then ``Rating: [[k]]``; pairwise grading scores both answers
and answers ``[[A]]`` or ``[[B]]`` for the higher score, ``[[C]]`` when equal.
Deterministic. The explanation never quotes answer text, so an answer cannot
inject a rating or a verdict. A prompt that is not a pocket-mtbench judge prompt
raises ValueError: that is a harness bug, not a grade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distillbench.benchmarks.math_grading import _last_boxed as last_boxed
from distillbench.harness.registry import JUDGES
from distillbench.pocket.mtbench_world import solve

_REFERENCE_BLOCK = r"(?:\[The Start of Reference Answer\]\n.*?\n\[The End of Reference Answer\]\n\n)?"

# Single-turn layouts (single-v1, single-math-v1; pair-v2, pair-math-v1). The last
# answer runs to the final end marker, so an answer quoting a marker cannot cut it short.
_SINGLE_TURN_SINGLE = re.compile(
    r"\[Question\]\n(?P<q1>[^\n]*)\n\n" + _REFERENCE_BLOCK
    + r"\[The Start of Assistant's Answer\]\n(?P<a1>.*)\n\[The End of Assistant's Answer\]\s*\Z", re.S)
_SINGLE_TURN_PAIR = re.compile(
    r"\[User Question\]\n(?P<q1>[^\n]*)\n\n" + _REFERENCE_BLOCK
    + r"\[The Start of Assistant A's Answer\]\n(?P<a1>.*?)\n\[The End of Assistant A's Answer\]\n\n"
    r"\[The Start of Assistant B's Answer\]\n(?P<b1>.*)\n\[The End of Assistant B's Answer\]\s*\Z", re.S)


def _conversation(name: str, last: bool) -> str:
    """One assistant's two-turn transcript, as the multi-turn templates lay it out."""
    second_answer = "(?P<{}2>.*)" if last else "(?P<{}2>.*?)"
    group = "a" if name == "A" else "b"
    return (rf"<\|The Start of Assistant {name}'s Conversation with User\|>\n\n"
            rf"### User:\n(?P<{group}q1>[^\n]*)\n\n### Assistant {name}:\n(?P<{group}1>.*?)\n\n"
            rf"### User:\n(?P<{group}q2>[^\n]*)\n\n### Assistant {name}:\n" + second_answer.format(group)
            + rf"\n\n<\|The End of Assistant {name}'s Conversation with User\|>" + (r"\s*\Z" if last else ""))


_MULTI_TURN_SINGLE = re.compile(_conversation("A", last=True), re.S)
_MULTI_TURN_PAIR = re.compile(_conversation("A", last=False) + r"\s*" + _conversation("B", last=True), re.S)


@dataclass(frozen=True)
class ParsedJudgePrompt:
    questions: list[str]               # turn 1, or turns 1 and 2 for multi-turn prompts
    answers: dict[str, list[str]]      # "A" (and "B" when pairwise) -> that assistant's turns
    pairwise: bool

    @property
    def multi_turn(self) -> bool:
        return len(self.questions) == 2


def parse_judge_prompt(user: str) -> ParsedJudgePrompt:
    """Question(s) and answer(s) from a rendered official judge prompt (any of the eight variants)."""
    if match := _MULTI_TURN_PAIR.search(user):
        return ParsedJudgePrompt([match["aq1"], match["aq2"]],
                                 {"A": [match["a1"], match["a2"]], "B": [match["b1"], match["b2"]]}, True)
    if match := _MULTI_TURN_SINGLE.search(user):
        return ParsedJudgePrompt([match["aq1"], match["aq2"]], {"A": [match["a1"], match["a2"]]}, False)
    if match := _SINGLE_TURN_PAIR.search(user):
        return ParsedJudgePrompt([match["q1"]], {"A": [match["a1"]], "B": [match["b1"]]}, True)
    if match := _SINGLE_TURN_SINGLE.search(user):
        return ParsedJudgePrompt([match["q1"]], {"A": [match["a1"]]}, False)
    raise ValueError("pocket-oracle: not a rendered MT-Bench judge prompt")


@dataclass(frozen=True)
class RubricScore:
    points: int
    notes: tuple[str, ...]


def rubric_score(answer: str, expected: str, *, previous_expected: str | None = None,
                 concise_chars: int = 120) -> RubricScore:
    """Score one answer against the ground truth of its turn, by the rubric in the module docstring."""
    boxed = last_boxed(answer)
    points, notes = 1, []
    if boxed is None:
        notes.append("There is no \\boxed{} answer.")
        if _same_number(_last_number(answer), expected):
            points += 3
            notes.append("Its last number is right, but it is not boxed.")
        return RubricScore(points, tuple(notes))
    points += 2
    if _same_number(boxed, expected):
        points += 6
        notes.append("The final boxed answer is correct.")
    elif previous_expected is not None and _same_number(boxed, previous_expected):
        notes.append("The final boxed answer repeats the first result instead of following the second question.")
    else:
        notes.append("The final boxed answer is wrong.")
    if len(answer.strip()) <= concise_chars and answer.count("\\boxed{") == 1:
        points += 1
        notes.append("It is concise.")
    else:
        notes.append("It is padded: too long or several boxed answers.")
    return RubricScore(points, tuple(notes))


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    cleaned = text.strip().strip("$").replace(",", "").replace(" ", "").rstrip(".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def _same_number(candidate: str | None, expected: str) -> bool:
    value = _number(candidate)
    return value is not None and value == _number(expected)


def _last_number(text: str) -> str | None:
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return numbers[-1] if numbers else None


@JUDGES.register("pocket-oracle", family="pocket", paper="MT-Bench judge prompts (arXiv:2306.05685)",
                 summary="exact judge for pocket-mtbench: reads the official judge prompt, grades by ground truth")
@dataclass(frozen=True)
class PocketOracleJudge:
    """Exact judge for pocket-mtbench: reads the official judge prompt, grades by the world's ground truth."""

    concise_chars: int = 120

    def complete(self, system: str, user: str) -> str:
        parsed = parse_judge_prompt(user)
        truths = solve(parsed.questions)
        expected, previous = truths[-1], (truths[0] if parsed.multi_turn else None)
        scores = {side: rubric_score(turns[-1], expected, previous_expected=previous,
                                     concise_chars=self.concise_chars)
                  for side, turns in parsed.answers.items()}
        preamble = ("Judging the answer to the second question. " if parsed.multi_turn else "") \
            + f"The expected final answer is {expected}."
        if parsed.pairwise:
            return _pairwise_judgment(preamble, scores["A"], scores["B"])
        return f"{preamble} {' '.join(scores['A'].notes)} Rating: [[{scores['A'].points}]]"


def _pairwise_judgment(preamble: str, score_a: RubricScore, score_b: RubricScore) -> str:
    explanation = (f"{preamble} Assistant A: {' '.join(score_a.notes)} ({score_a.points} points). "
                   f"Assistant B: {' '.join(score_b.notes)} ({score_b.points} points).")
    if score_a.points > score_b.points:
        return f"{explanation} Assistant A is better. [[A]]"
    if score_b.points > score_a.points:
        return f"{explanation} Assistant B is better. [[B]]"
    return f"{explanation} They are equally good. [[C]]"
