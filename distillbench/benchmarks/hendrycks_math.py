"""MATH and MATH-500 (Hendrycks et al., 2021, arXiv:2103.03874; Lightman et al., 2023, arXiv:2305.20050).

Records in the MATH format (``problem``, ``solution`` ending in ``\\boxed{}``, optional
``answer``, ``level``, ``type``/``subject``, ``unique_id``). The gold is the ``answer``
field, else the last ``\\boxed{}`` of the solution. Answers are generated greedily after
the problem plus the usual instruction to box the final answer (with the minerva graders, an
instruction to end with Minerva's "Final Answer: …" line instead, the only thing it reads), and graded
by the chosen grader (`math_grading`: math-verify, minerva or hendrycks, each with a string shortcut, or
minerva-lm-eval, minerva exactly as lm-eval scores it, without one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Gt

from distillbench.kinds.text_lm.generation import generate_responses

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.kinds.text_lm.math_grading import (answer_instruction, grade, grader_problems, grader_protocol,
                                                     last_boxed_content)
from distillbench.benchmarks.sources import check_source, load_source, source_fingerprint

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def gold_answer(record: dict) -> str:
    if record.get("answer"):
        return str(record["answer"])
    boxed = last_boxed_content(record["solution"])
    if boxed is None:
        raise ValueError(f"record {record.get('unique_id', '?')} has neither an answer nor a boxed solution")
    return boxed


@dataclass(frozen=True)
class MathBenchmark(Benchmark):
    """MATH-format problems graded by a selectable grader."""

    # MATH on the hub is split into per-subject configs; give a MATH-format JSONL (or a hub id with
    # a config and a pinned revision) explicitly.
    source: str | None = None
    split: str = "test"
    n: Annotated[int, Gt(0)] | None = None
    grader: Literal["math-verify", "minerva", "hendrycks", "minerva-lm-eval"] = "math-verify"
    max_new_tokens: Annotated[int, Gt(0)] = 1024

    binary_metrics = ("accuracy",)

    def check(self):
        if self.source is None:
            return ["source: required: a MATH-format JSONL file, or hf:<id>[:<config>]@<revision>"]
        return check_source(self.source) + grader_problems(self.grader)

    def items(self):
        records = load_source(self.source, self.split, ("problem", "solution"))[: self.n]
        return [{"id": str(r.get("unique_id", index)), "problem": r["problem"], "answer": gold_answer(r),
                 "level": r.get("level"), "type": r.get("type", r.get("subject"))} for index, r in enumerate(records)]

    def item_from_gold(self, item_id: str, gold: str) -> dict:
        return {"id": item_id, "answer": gold}

    def predict(self, model, tokenizer, items, *, batch_size):
        instruction = answer_instruction(self.grader) or INSTRUCTION
        conversations = [[{"role": "user", "content": f"{item['problem']}\n{instruction}"}] for item in items]
        return generate_responses(model, tokenizer, conversations, max_new_tokens=self.max_new_tokens,
                                  batch_size=batch_size, description="math")

    def score(self, item, output):
        result = grade(output, item["answer"], self.grader)
        return ItemScore({"accuracy": float(result.correct)}, result.reason, {"extracted": result.extracted})

    def protocol(self):
        return {"scorer_version": self.scorer_version, "grader": self.grader, "decoding": "greedy",
                "max_new_tokens": self.max_new_tokens, "source": self.source, "split": self.split,
                **grader_protocol(self.grader),
                "source_hash": source_fingerprint(self.source) if not check_source(self.source) else None}


@register_benchmark("math", family="llm", paper="Hendrycks et al. 2021, arXiv:2103.03874",
                    summary="MATH accuracy; graders math-verify (default), minerva, hendrycks, minerva-lm-eval")
@dataclass(frozen=True)
class MATH(MathBenchmark):
    """MATH test problems (hub id with a pinned revision, or a local JSONL in the MATH format)."""


@register_benchmark("math500", family="llm", paper="Lightman et al. 2023, arXiv:2305.20050",
                    summary="MATH-500 accuracy; graders math-verify (default), minerva, hendrycks, minerva-lm-eval")
@dataclass(frozen=True)
class MATH500(MathBenchmark):
    """The 500-problem MATH subset of PRM800K (hub id with a pinned revision, or the local test.jsonl)."""

    source: str | None = "hf:HuggingFaceH4/MATH-500@6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be"
