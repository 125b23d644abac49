"""pocket-oracle: a judge that grades pocket-mtbench answers exactly, from the official prompt text.

It is a chat backend like any other judge: it receives the rendered official
FastChat judge prompt (any of single-v1, single-math-v1, single-v1-multi-turn,
single-math-v1-multi-turn, pair-v2, pair-math-v1, pair-v2-multi-turn,
pair-math-v1-multi-turn; MT-Bench, arXiv:2306.05685), reads the question(s) and
answer(s) out of it by the templates' own markers, computes the ground truth
with `distillbench.pocket.mtbench_world.solve` (reference answers in the prompt
are not needed and are ignored), and answers in the judge's output format, so
the official parsers read its verdict.

The rubric is the pocket-math quality rubric (`distillbench.pocket.rubric`),
the same one that grades the preference data, so the judge rewards exactly what
preference alignment trains for. Out of 10, clamped to 1..10:

  6  the final answer is correct (Math-Verify against the ground truth; dominant)
  2  it is stated in ``\\boxed{}`` (format)
  2  conciseness: up to 1.5x the reference answer's length (+10 characters)
     earns 2, up to 3x earns 1, longer (padded) earns 0

It is applied to the answer of the judged turn: turn 1 for single-turn prompts,
turn 2 for multi-turn prompts (which the official prompts ask the judge to focus
on), with that turn's ground truth and reference answer. Following turn 2 is
thereby graded as correctness: turn 2's ground truth always differs from turn
1's, so repeating the first result earns nothing for correctness, and the
explanation says so. Single grading answers a short explanation then
``Rating: [[k]]``; pairwise grading rates both answers and answers ``[[A]]`` or
``[[B]]`` for the higher rating, ``[[C]]`` when equal. Deterministic. The
explanation never quotes answer text, so an answer cannot inject a rating or a
verdict. A prompt that is not a pocket-mtbench judge prompt raises ValueError:
that is a harness bug, not a grade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distillbench.core.registry import JUDGES
from distillbench.kinds.text_lm.math_grading import grade
from distillbench.pocket.mtbench_world import reference_turns, solve
from distillbench.pocket.rubric import score_response

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


@JUDGES.register("pocket-oracle", family="pocket", paper="MT-Bench judge prompts (arXiv:2306.05685)",
                 summary="exact judge for pocket-mtbench: reads the official judge prompt, grades by ground truth")
@dataclass(frozen=True)
class PocketOracleJudge:
    """Exact judge for pocket-mtbench: reads the official judge prompt, grades by the world's ground truth."""

    identity = "pocket-oracle"

    def complete(self, system: str, user: str) -> str:
        parsed = parse_judge_prompt(user)
        truths, references = solve(parsed.questions), reference_turns(parsed.questions)
        judged = {side: _judge_answer(turns[-1], truths, references[-1]) for side, turns in parsed.answers.items()}
        preamble = ("Judging the answer to the second question. " if parsed.multi_turn else "") \
            + f"The expected final answer is {truths[-1]}."
        if parsed.pairwise:
            return _pairwise_judgment(preamble, judged["A"], judged["B"])
        rating, explanation = judged["A"]
        return f"{preamble} {explanation} Rating: [[{rating}]]"


def _judge_answer(answer: str, truths: list[str], reference: str) -> tuple[int, str]:
    """(rating, explanation) of the answer to the last turn. The explanation is ours only: no answer text."""
    score = score_response(answer, truths[-1], reference)
    explanation = f"Rubric: {score.explain()}."
    if len(truths) == 2 and not score.correct and grade(answer, truths[0]).correct:
        explanation += " It repeats the first result instead of following the second question."
    return score.rating, explanation


def _pairwise_judgment(preamble: str, judged_a: tuple[int, str], judged_b: tuple[int, str]) -> str:
    (rating_a, explanation_a), (rating_b, explanation_b) = judged_a, judged_b
    explanation = (f"{preamble} Assistant A: {explanation_a} Rating {rating_a} of 10. "
                   f"Assistant B: {explanation_b} Rating {rating_b} of 10.")
    if rating_a > rating_b:
        return f"{explanation} Assistant A is better. [[A]]"
    if rating_b > rating_a:
        return f"{explanation} Assistant B is better. [[B]]"
    return f"{explanation} They are equally good. [[C]]"
