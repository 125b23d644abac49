"""pocket-mtbench: MT-Bench's two-turn judging (`distillbench.benchmarks.mtbench`) on the pocket-mtbench
world's questions, graded by default by the exact pocket oracle (`pocket_oracle`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from annotated_types import Gt

from distillbench.benchmarks.base import register_benchmark
from distillbench.benchmarks.mtbench import MTBench
from distillbench.pocket.mtbench_world import (ANSWER_TEMPERATURES, NEED_REF_CATEGORIES, generate_questions,
                                               reference_turns)


@register_benchmark("pocket-mtbench", family="llm", paper="MT-Bench format (arXiv:2306.05685), pocket world",
                    summary="80 two-turn pocket questions judged by the pocket oracle (single 1-10 or pairwise)")
@dataclass(frozen=True)
class PocketMTBench(MTBench):
    """Two-turn pocket-mtbench questions graded per turn by a judge (default: the exact pocket oracle)."""

    judge: str = "pocket-oracle"
    max_new_tokens: Annotated[int, Gt(0)] = 96
    seed: int = 0

    accepts_pocket_prompts: ClassVar[bool] = True

    def _source_problems(self) -> list[str]:
        return ["questions: pocket-mtbench generates its questions; use mtbench for a file"] if self.questions else []

    @property
    def need_ref_categories(self) -> tuple[str, ...]:
        return NEED_REF_CATEGORIES

    def answer_temperature(self, category: str) -> float:
        return ANSWER_TEMPERATURES[category]

    def questions_and_references(self):
        questions = generate_questions(self.seed)
        return questions, {str(q["question_id"]): reference_turns(q["turns"]) for q in questions}

    def temperature_protocol(self) -> str:
        return "per category (pocket-mtbench: greedy)"
