"""pocket-rewardbench: RewardBench's protocol (`distillbench.benchmarks.rewardbench`) on held-out pocket
preference pairs, a clean solution against one with a single defect the pocket rubric penalises."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from annotated_types import Gt

from distillbench.benchmarks.base import register_benchmark
from distillbench.benchmarks.rewardbench import RewardBench
from distillbench.core.errors import UserInputError
from distillbench.pocket.math_world import _corrupt, generate
from distillbench.pocket.mtbench_world import chatty, generate_questions, reference_turns, solve
from distillbench.pocket.rubric import score_response

# The pocket preference test split: pairs built from held-out pocket-math test problems and
# pocket-mtbench chats, one subset per defect the pocket rubric penalises.
POCKET_SUBSETS = {"wrong-step": "wrong_step", "missing-box": "missing_box", "off-format": "off_format",
                  "filler": "filler", "chatty-follow-up": None}
POCKET_MAPPING = {"Correctness": ["wrong-step"], "Format": ["missing-box", "off-format"],
                  "Conciseness": ["filler"], "Follow-up": ["chatty-follow-up"]}


@register_benchmark("pocket-rewardbench", family="llm", paper="RewardBench protocol (arXiv:2403.13787), pocket world",
                    summary="implicit-reward accuracy on held-out pocket preference pairs, per defect section")
@dataclass(frozen=True)
class PocketRewardBench(RewardBench):
    """RewardBench's protocol on held-out pocket pairs: a clean solution against one with a single defect."""

    reference: str | None = "pocket:student-init"  # the recipes' DPO reference: the student they start from
    per_subset: Annotated[int, Gt(0)] = 40
    seed: int = 0
    max_length: Annotated[int, Gt(0)] = 256

    subset_mapping: ClassVar[dict[str, list[str]]] = POCKET_MAPPING

    def _dataset_problems(self) -> list[str]:
        return ["dataset: pocket-rewardbench builds its pairs; use rewardbench for a file"] if self.dataset else []

    @property
    def example_counts(self) -> dict[str, int]:  # every pocket subset weighs its own size
        return {subset: self.per_subset for subset in POCKET_SUBSETS}

    def pairs(self):
        return pocket_pairs(self.per_subset, self.seed)

    def weights_protocol(self) -> str:
        return "equal subsets (pocket)"


def pocket_pairs(per_subset: int, seed: int = 0) -> list[dict[str, Any]]:
    """`per_subset` pairs per pocket subset, from the test split only; chosen is the reference solution.
    A pair is kept only where the pocket rubric strictly prefers chosen (padding a long solution with
    filler, for one, can stay within the rubric's length allowance), so the label is the world's truth."""
    def preferred(chosen: str, rejected: str, answer: str) -> bool:
        return score_response(chosen, answer, chosen).rating > score_response(rejected, answer, chosen).rating

    rng = random.Random(f"pocket-rewardbench/{seed}")
    pool = iter(generate("test", per_subset * 16, seed=seed))
    pairs = []
    for subset, kind in ((s, k) for s, k in POCKET_SUBSETS.items() if k):
        kept = 0
        while kept < per_subset:
            record = next(pool, None)
            if record is None:
                raise UserInputError(f"pocket-rewardbench: too few test problems for per_subset={per_subset}")
            rejected = _corrupt(record, kind, rng)
            if preferred(record["solution"], rejected, record["answer"]):
                pairs.append({"id": f"{subset}/{record['unique_id']}", "subset": subset, "prompt": record["problem"],
                              "chosen": record["solution"], "rejected": rejected})
                kept += 1
    questions = generate_questions(seed)
    if per_subset > len(questions):
        raise UserInputError(f"pocket-rewardbench: per_subset is at most {len(questions)} (the pocket-mtbench chats)")
    for question in questions[:per_subset]:
        first, second = reference_turns(question["turns"])
        prompt = [{"role": "user", "content": question["turns"][0]}, {"role": "assistant", "content": first},
                  {"role": "user", "content": question["turns"][1]}]
        pairs.append({"id": f"chatty-follow-up/{question['question_id']}", "subset": "chatty-follow-up",
                      "prompt": prompt, "chosen": second, "rejected": chatty(second, solve(question["turns"])[1])})
    return pairs
