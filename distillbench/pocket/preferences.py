"""Preference data derived from graded samples of a model (the SFT teacher, in the zoo).

For each training prompt the model samples K responses; each is graded with the
pocket rubric. From the graded samples we store, in the usual HF formats:
  * pairs.jsonl   prompt / chosen / rejected as chat messages (best vs worst sample,
                  only where their scores differ), with both scores;
  * ranked.jsonl  every sample with its score, best first (curriculum and listwise methods);
  * traces.jsonl  single responses labelled correct or not (positive / negative traces).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from distillbench.harness.generation import generate_responses

from .rubric import score_response

def sample_graded(model, tokenizer, records: list[dict], samples: int, temperature: float, seed: int,
                  batch_size: int = 64, max_new_tokens: int = 96) -> list[list[dict]]:
    """For each record, `samples` sampled responses with their rubric scores."""
    torch.manual_seed(seed)
    conversations = [[{"role": "user", "content": r["problem"]}] for r in records for _ in range(samples)]
    responses = generate_responses(model, tokenizer, conversations, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, temperature=temperature, description="sample preferences")
    graded = []
    for index, record in enumerate(records):
        group = []
        for response in responses[index * samples:(index + 1) * samples]:
            score = score_response(response, record["answer"], record["solution"])
            group.append({"content": response, "score": score.rating, "correct": score.correct})
        graded.append(sorted(group, key=lambda g: -g["score"]))
    return graded


def build_preference_sets(records: list[dict], graded: list[list[dict]]) -> dict[str, list[dict]]:
    pairs, ranked, traces = [], [], []
    for record, group in zip(records, graded):
        prompt = [{"role": "user", "content": record["problem"]}]
        ranked.append({"id": record["unique_id"], "prompt": prompt, "answer": record["answer"], "responses": group})
        best, worst = group[0], group[-1]
        if best["score"] > worst["score"]:
            pairs.append({"id": record["unique_id"], "prompt": prompt,
                          "chosen": [{"role": "assistant", "content": best["content"]}],
                          "rejected": [{"role": "assistant", "content": worst["content"]}],
                          "score_chosen": best["score"], "score_rejected": worst["score"]})
        traces += [{"id": record["unique_id"], "prompt": prompt, "response": [{"role": "assistant", "content": g["content"]}],
                    "correct": g["correct"]} for g in group]
    return {"pairs.jsonl": pairs, "ranked.jsonl": ranked, "traces.jsonl": traces}


def write_sets(sets: dict[str, list[dict]], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in sets.items():
        (directory / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
