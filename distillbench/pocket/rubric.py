"""The pocket-math quality rubric, shared by preference grading and the oracle judge.

A response earns (out of 10):
  * 6 for a correct final answer (Math-Verify against the gold answer),
  * 2 for stating it in ``\\boxed{}`` (the format the task asks for),
  * 2 for conciseness: at most 1.5× the length of the reference solution plus 10
    characters earns 2, at most 3× earns 1, longer earns 0.
The rating is the total clamped to [1, 10], the range of MT-Bench ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

from distillbench.kinds.text_lm.math_grading import grade


@dataclass(frozen=True)
class RubricScore:
    correct: bool
    boxed: bool
    concise: int  # 0, 1 or 2

    @property
    def rating(self) -> int:
        return max(1, 6 * self.correct + 2 * self.boxed + self.concise)

    def explain(self) -> str:
        return (f"final answer {'correct' if self.correct else 'incorrect'}; "
                f"{'boxed' if self.boxed else 'not boxed'}; conciseness {self.concise}/2")


def score_response(response: str, gold_answer: str, reference_solution: str) -> RubricScore:
    limit = len(reference_solution)
    concise = 2 if len(response) <= 1.5 * limit + 10 else 1 if len(response) <= 3 * limit else 0
    return RubricScore(grade(response, gold_answer).correct, "\\boxed{" in response, concise)
