"""Preference data derived from graded samples of a model (the SFT teacher, in the zoo).

For each training prompt (a pocket-math problem, or the follow-up turn of a
training chat after a clean first exchange) the model samples K responses; each is graded with the
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

from distillbench.kinds.text_lm.generation import generate_responses

from distillbench.pocket.mtbench_world import reference_turns, solve, training_conversations
from distillbench.pocket.rubric import score_response


def math_tasks(records: list[dict]) -> list[dict]:
    """Graded prompts from pocket-math records: id, prompt (chat messages), answer, reference solution."""
    return [{"id": r["unique_id"], "prompt": [{"role": "user", "content": r["problem"]}], "answer": r["answer"],
             "solution": r["solution"]} for r in records]


def follow_up_tasks(size: int, seed: int) -> list[dict]:
    """Graded prompts for second turns: a clean first exchange of a training chat, then its follow-up."""
    tasks = []
    for index, chat in enumerate(training_conversations(size, seed=seed)):
        messages = chat["messages"]
        turns = [messages[0]["content"], messages[2]["content"]]
        tasks.append({"id": f"pocket-mtbench-train/{seed}/{index}", "prompt": messages[:3],
                      "answer": solve(turns)[1], "solution": reference_turns(turns)[1]})
    return tasks


def sample_graded(model, tokenizer, tasks: list[dict], samples: int, temperature: float, seed: int,
                  batch_size: int = 256, max_new_tokens: int = 160) -> list[list[dict]]:
    """For each task, `samples` sampled responses with their rubric scores, best first."""
    torch.manual_seed(seed)
    conversations = [task["prompt"] for task in tasks for _ in range(samples)]
    responses = generate_responses(model, tokenizer, conversations, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, temperature=temperature, description="sample preferences")
    graded = []
    for index, task in enumerate(tasks):
        group = []
        for response in responses[index * samples:(index + 1) * samples]:
            score = score_response(response, task["answer"], task["solution"])
            group.append({"content": response, "score": score.rating, "correct": score.correct})
        graded.append(sorted(group, key=lambda g: -g["score"]))
    return graded


def build_preference_sets(tasks: list[dict], graded: list[list[dict]]) -> dict[str, list[dict]]:
    pairs, ranked, traces = [], [], []
    for task, group in zip(tasks, graded):
        prompt = task["prompt"]
        ranked.append({"id": task["id"], "prompt": prompt, "answer": task["answer"], "responses": group})
        best, worst = group[0], group[-1]
        if best["score"] > worst["score"]:
            pairs.append({"id": task["id"], "prompt": prompt,
                          "chosen": [{"role": "assistant", "content": best["content"]}],
                          "rejected": [{"role": "assistant", "content": worst["content"]}],
                          "score_chosen": best["score"], "score_rejected": worst["score"]})
        traces += [{"id": task["id"], "prompt": prompt, "response": [{"role": "assistant", "content": g["content"]}],
                    "correct": g["correct"]} for g in group]
    return {"pairs.jsonl": pairs, "ranked.jsonl": ranked, "traces.jsonl": traces}


def write_sets(sets: dict[str, list[dict]], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in sets.items():
        (directory / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
