"""GSM8K (Cobbe et al., 2021, arXiv:2110.14168), scored as lm-evaluation-harness's ``gsm8k`` task (v3.0).

Prompt ``Question: …\\nAnswer:`` (zero-shot here; the harness's default is 5-shot), greedy
generation, and the two official filters: ``strict_match`` (``#### <number>``) and
``flexible_extract`` (the last number), see `gsm8k_grading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Gt

from distillbench.kinds.text_lm.generation import generate_responses

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.gsm8k_grading import extract_flexible, extract_strict, score
from distillbench.benchmarks.sources import check_source, load_source, source_fingerprint


# lm-eval's gsm8k.yaml `until`: generation stops at the first of these. Cutting a greedy reply there gives
# the same text (the tokens before a stop do not depend on what follows), so a model running on into a
# new question is not read past it by flexible-extract.
UNTIL = ("Question:", "</s>", "<|im_end|>")


def until(reply: str, stops: tuple[str, ...]) -> str:
    """`reply` up to the first occurrence of any stop string."""
    cut = min((reply.find(stop) for stop in stops if stop in reply), default=len(reply))
    return reply[:cut]


@register_benchmark("gsm8k", family="llm", paper="Cobbe et al. 2021, arXiv:2110.14168",
                    summary="GSM8K exact match with lm-eval's strict and flexible extraction")
@dataclass(frozen=True)
class GSM8K(Benchmark):
    """Grade-school math word problems (hub id:config with a pinned revision, or a local JSONL)."""

    source: str = "hf:openai/gsm8k:main@cc7b047b6e5bb11b4f1af84efc572db110a51b3c"
    split: str = "test"
    n: Annotated[int, Gt(0)] | None = None
    max_new_tokens: Annotated[int, Gt(0)] = 256

    binary_metrics = ("strict_match", "flexible_extract")

    def check(self):
        return check_source(self.source)

    def items(self):
        records = load_source(self.source, self.split, ("question", "answer"))[: self.n]
        return [{"id": str(r.get("id", index)), "question": r["question"], "answer": r["answer"]}
                for index, r in enumerate(records)]

    def item_from_gold(self, item_id: str, gold: str) -> dict:
        return {"id": item_id, "answer": gold if "####" in gold else f"#### {gold}"}

    def predict(self, model, tokenizer, items, *, batch_size):
        conversations = [[{"role": "user", "content": f"Question: {item['question']}\nAnswer:"}] for item in items]
        replies = generate_responses(model, tokenizer, conversations, max_new_tokens=self.max_new_tokens,
                                     batch_size=batch_size, description="gsm8k")
        return [until(reply, UNTIL) for reply in replies]

    def score(self, item, output):
        values = {name: float(value) for name, value in score(output, item["answer"]).items()}
        reason = f"strict extracted {extract_strict(output)!r}; flexible extracted {extract_flexible(output)!r}"
        return ItemScore(values, reason)

    def protocol(self):
        return {"scorer_version": self.scorer_version, "filters": ["strict-match", "flexible-extract"],
                "fewshot": 0, "decoding": "greedy", "until": list(UNTIL), "max_new_tokens": self.max_new_tokens,
                "source": self.source,
                "split": self.split,
                "source_hash": source_fingerprint(self.source) if not check_source(self.source) else None}
