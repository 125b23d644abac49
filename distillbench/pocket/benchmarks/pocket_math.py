"""pocket-math: accuracy on generated MATH-format problems, graded with Math-Verify."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Gt

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.kinds.text_lm.generation import generate_responses
from distillbench.kinds.text_lm.math_grading import answer_instruction, grade, grader_problems, grader_protocol
from distillbench.pocket.math_world import generate


@register_benchmark("pocket-math", family="llm", paper="pocket world (synthetic, MATH format)",
                    summary="accuracy on generated MATH-format problems, graded with math-verify")
@dataclass(frozen=True)
class PocketMath(Benchmark):
    """Accuracy on pocket-math problems (greedy decoding, math-verify grading)."""

    split: Literal["dev", "test"] = "test"
    n: Annotated[int, Gt(0)] = 200
    seed: int = 0
    max_new_tokens: Annotated[int, Gt(0)] = 160
    grader: Literal["math-verify", "minerva", "hendrycks", "minerva-lm-eval"] = "math-verify"

    binary_metrics = ("accuracy",)

    def check(self):
        return grader_problems(self.grader)

    def items(self):
        return [{"id": r["unique_id"], **r} for r in generate(self.split, self.n, seed=self.seed)]

    def predict(self, model, tokenizer, items, *, batch_size):
        instruction = answer_instruction(self.grader)  # pocket-math asks for nothing unless the grader needs it
        prompts = [[{"role": "user", "content": item["problem"] + (f"\n{instruction}" if instruction else "")}]
                   for item in items]
        return generate_responses(model, tokenizer, prompts, max_new_tokens=self.max_new_tokens,
                                  batch_size=batch_size, description="pocket-math")

    def score(self, item, output):
        result = grade(output, item["answer"], self.grader)
        return ItemScore({"accuracy": float(result.correct)}, result.reason, {"extracted": result.extracted})

    def protocol(self):
        return {"scorer_version": self.scorer_version, "grader": self.grader, "decoding": "greedy",
                "max_new_tokens": self.max_new_tokens, "split": self.split, "n": self.n,
                **grader_protocol(self.grader)}
