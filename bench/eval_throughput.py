"""Evaluation throughput: the harness's batched generation against a bare `model.generate` loop.

    .venv/bin/python bench/eval_throughput.py [--model pocket:teacher-sft] [--n 200] [--batch-size 64] [--repeats 3]

Both generate greedy replies to the same pocket-math test prompts with the same model, batch
size and max_new_tokens, one after the other, `--repeats` times (the minimum time of each is
kept, so a busy machine penalises neither side more). The baselines:

* ``bare``: `model.generate` over batches in dataset order (left padding, KV cache on), the loop
  a user writes by hand;
* ``bare_sorted``: the same loop over length-sorted batches, which isolates the harness's own
  overhead (tokenisation through the chat template, decoding, progress reporting) from the
  gain of sorting.

Writes bench/results/eval_throughput.json with tokens/s of each, the ratios, whether the
outputs agree, and the machine. The target: harness overhead ≤ 10% against ``bare_sorted``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from distillbench.kinds.text_lm.generation import chat_prompt_ids, generate_responses
from distillbench.kinds.text_lm.models import load_causal_lm
from distillbench.core.provenance import machine, package_versions

RESULTS = Path(__file__).parent / "results" / "eval_throughput.json"
TARGET_OVERHEAD = 0.10


@torch.no_grad()
def bare_loop(model, tokenizer, conversations, batch_size: int, max_new_tokens: int, sort: bool) -> tuple[list[str], int]:
    prompts = [chat_prompt_ids(tokenizer, c) for c in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i])) if sort else list(range(len(prompts)))
    outputs, generated_tokens = [""] * len(prompts), 0
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer.pad({"input_ids": [prompts[i] for i in chunk]}, padding=True, return_tensors="pt",
                              padding_side="left")
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = generated[:, batch["input_ids"].shape[1]:]
        generated_tokens += int((new != tokenizer.pad_token_id).sum())
        for index, reply in zip(chunk, tokenizer.batch_decode(new, skip_special_tokens=True)):
            outputs[index] = reply.strip()
    return outputs, generated_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pocket:teacher-sft")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from distillbench.pocket.math_world import generate

    model, tokenizer = load_causal_lm(args.model)
    model.eval()
    conversations = [[{"role": "user", "content": r["problem"]}] for r in generate("test", args.n)]
    runs = {
        "harness": lambda: generate_responses(model, tokenizer, conversations, max_new_tokens=args.max_new_tokens,
                                              batch_size=args.batch_size, description="harness"),
        "bare": lambda: bare_loop(model, tokenizer, conversations, args.batch_size, args.max_new_tokens, False)[0],
        "bare_sorted": lambda: bare_loop(model, tokenizer, conversations, args.batch_size, args.max_new_tokens, True)[0],
    }
    seconds = {name: float("inf") for name in runs}
    outputs = {}
    for _ in range(args.repeats):
        for name, run in runs.items():  # interleaved, so a slow spell of the machine hits every side
            started = time.perf_counter()
            outputs[name] = run()
            seconds[name] = min(seconds[name], time.perf_counter() - started)
    tokens = sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs["harness"])
    result = {
        "benchmark": "eval_throughput", "model": args.model, "items": args.n, "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "reply_tokens_per_second": {k: round(tokens / v, 1) for k, v in seconds.items()},
        "overhead_vs_bare_sorted": round(seconds["harness"] / seconds["bare_sorted"] - 1, 4),
        "time_ratio_vs_bare": round(seconds["harness"] / seconds["bare"], 4),
        "outputs_identical": {k: outputs[k] == outputs["harness"] for k in ("bare", "bare_sorted")},
        "target_overhead": TARGET_OVERHEAD, "machine": machine(), "packages": package_versions(),
    }
    result["meets_target"] = result["overhead_vs_bare_sorted"] <= TARGET_OVERHEAD
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"generation of {args.n} pocket-math replies, {args.model} (min of {args.repeats})")
    for column in ("loop", "seconds", "reply tokens/s", "harness time ÷ this"):
        table.add_column(column)
    for name in runs:
        table.add_row(name, f"{seconds[name]:.2f}", f"{tokens / seconds[name]:.0f}",
                      f"{seconds['harness'] / seconds[name]:.3f}")
    Console().print(table)
    print(f"harness overhead vs bare_sorted: {result['overhead_vs_bare_sorted']:+.1%} "
          f"(target ≤ {TARGET_OVERHEAD:.0%}: {'met' if result['meets_target'] else 'missed'})")


if __name__ == "__main__":
    main()
