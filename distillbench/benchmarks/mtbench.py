"""MT-Bench-style judging (Zheng et al., 2023, arXiv:2306.05685; FastChat llm_judge).

Answers are generated turn by turn (turn 2 sees the model's own turn-1 answer) at
the per-category temperature; each turn is graded by a judge backend with the
official single-answer prompts (the reference-guided variants for the categories
that need a reference, the multi-turn variants for turn 2), and the verdict is
parsed with FastChat's rules: ``[[rating]]``, then ``[rating]``; an unparsable
rating is dropped. The item score is the mean of its turns' ratings.

Judge prompts come from, in order: the benchmark's ``judge_prompts`` option, the
``DISTILLBENCH_JUDGE_PROMPTS`` environment variable, an installed FastChat
checkout, and otherwise distillbench's own pocket prompt set (our wording, the
official layout), which the protocol records as such.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from annotated_types import Gt

from distillbench.harness.generation import generate_responses
from distillbench.harness.registry import JUDGES

from .base import Benchmark, ItemScore, register_benchmark
from .mtbench_judging import (default_judge_prompts_path, judge_prompt_name, load_judge_prompts, mean_rating,
                              parse_rating, parse_verdict, render_single)

__all__ = ["PocketMTBench", "parse_rating", "parse_verdict", "resolve_judge_prompts"]

POCKET_JUDGE_PROMPTS = Path(__file__).parent / "data" / "pocket_judge_prompts.jsonl"


def resolve_judge_prompts(explicit: str | None) -> tuple[Path, str]:
    """(path, name of the prompt set) of the judge prompts to use."""
    for candidate, label in ((explicit, "user file"), (os.environ.get("DISTILLBENCH_JUDGE_PROMPTS"), "user file"),
                             (default_judge_prompts_path(), "fastchat")):
        if candidate:
            return Path(candidate), label
    return POCKET_JUDGE_PROMPTS, "distillbench-pocket-v1"


@functools.lru_cache(maxsize=8)
def _prompts(path: Path) -> dict[str, dict]:
    return load_judge_prompts(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@register_benchmark("pocket-mtbench", family="llm", paper="MT-Bench format (arXiv:2306.05685), pocket world",
                    summary="80 two-turn pocket questions, single-answer judging by the pocket oracle (1-10)")
@dataclass(frozen=True)
class PocketMTBench(Benchmark):
    """Two-turn pocket-mtbench questions graded 1-10 per turn by a judge (default: the exact pocket oracle)."""

    seed: int = 0
    judge: str = "pocket-oracle"
    judge_prompts: str | None = None
    max_new_tokens: Annotated[int, Gt(0)] = 96

    def check(self):
        return [] if self.judge in JUDGES else [f"judge: {JUDGES.unknown_message(self.judge)}"]

    def items(self):
        from distillbench.pocket.mtbench_world import NEED_REF_CATEGORIES, generate_questions, reference_turns

        questions = generate_questions(self.seed)
        return [{"id": str(q["question_id"]), **q,
                 "reference": reference_turns(q["turns"]) if q["category"] in NEED_REF_CATEGORIES else None}
                for q in questions]

    def predict(self, model, tokenizer, items, *, batch_size):
        from distillbench.pocket.mtbench_world import ANSWER_TEMPERATURES

        answers: list[list[str]] = [[] for _ in items]
        for temperature in sorted({ANSWER_TEMPERATURES[item["category"]] for item in items}):
            group = [i for i, item in enumerate(items) if ANSWER_TEMPERATURES[item["category"]] == temperature]
            for turn in range(2):
                conversations = [_conversation(items[i]["turns"], answers[i], turn) for i in group]
                replies = generate_responses(model, tokenizer, conversations, max_new_tokens=self.max_new_tokens,
                                             batch_size=batch_size, temperature=temperature,
                                             description=f"pocket-mtbench turn {turn + 1}")
                for i, reply in zip(group, replies):
                    answers[i].append(reply)
        return answers

    def score(self, item, output):
        from distillbench.pocket.mtbench_world import NEED_REF_CATEGORIES

        path, _ = resolve_judge_prompts(self.judge_prompts)
        prompts, judge = _prompts(path), JUDGES.get(self.judge)()
        ratings, verdicts = {}, []
        for turn, multi_turn in (("turn1", False), ("turn2", True)):
            name = judge_prompt_name(item["category"], pairwise=False, multi_turn=multi_turn,
                                     need_ref_categories=NEED_REF_CATEGORIES)
            system, user = render_single(prompts[name], item, output, item["reference"], multi_turn=multi_turn)
            verdict = judge.complete(system, user)
            verdicts.append(verdict)
            rating = parse_rating(verdict)
            if rating is not None:  # FastChat drops unparsable ratings
                ratings[turn] = rating
        overall = mean_rating(ratings.values())
        values = {**ratings, **({"score": overall} if overall is not None else {})}
        return ItemScore(values, " | ".join(verdicts))

    def protocol(self):
        path, prompt_set = resolve_judge_prompts(self.judge_prompts)
        return {"scorer_version": self.scorer_version, "judge": self.judge, "judge_prompts": prompt_set,
                "judge_prompts_sha256": _sha256(path), "mode": "single", "max_new_tokens": self.max_new_tokens,
                "answer_temperatures": "per category (pocket-mtbench: greedy)"}


def _conversation(turns: list[str], answers: list[str], turn: int) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": turns[0]}]
    if turn == 1:
        messages += [{"role": "assistant", "content": answers[0]}, {"role": "user", "content": turns[1]}]
    return messages
