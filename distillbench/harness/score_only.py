"""Score-only mode: grade outputs produced elsewhere (vLLM, another harness) without loading a model.

Each line of the predictions file has ``id`` and ``response``, plus either an inline
``gold`` or nothing, in which case the gold is looked up by id in the benchmark's dataset.
A response is what the benchmark's model would have produced: a string, a list of turn
strings (mtbench), or an object (rewardbench: ``{"chosen": reward, "rejected": reward}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .data import read_jsonl
from .errors import UserInputError
from .files import write_text_atomic
from .recipe import validate_options
from .registry import BENCHMARKS


def score_predictions(benchmark_name: str, predictions: str | Path, options: dict[str, Any]) -> dict[str, Any]:
    from distillbench.leaderboards.stats import summarize

    benchmark, problems = validate_options(BENCHMARKS.get(benchmark_name), options, benchmark_name)
    if problems:
        raise UserInputError(problems)
    rows = read_jsonl(predictions, ("id", "response"))
    for number, row in enumerate(rows, start=1):
        if not isinstance(row["response"], (str, list, dict)):
            raise UserInputError(f"{predictions}: record {number}: 'response' must be a string, a list of turns "
                                 "or an object")
    dataset = None if all("gold" in row for row in rows) else {item["id"]: item for item in benchmark.items()}
    per_item = []
    for number, row in enumerate(rows, start=1):
        item_id = str(row["id"])
        if "gold" in row:
            if not hasattr(benchmark, "item_from_gold"):
                raise UserInputError(f"{predictions}: record {number}: {benchmark_name} cannot take an inline gold")
            item = benchmark.item_from_gold(item_id, str(row["gold"]))
        elif item_id in dataset:
            item = dataset[item_id]
        else:
            raise UserInputError(f"{predictions}: record {number}: id {item_id!r} is not in the {benchmark_name} dataset")
        result = benchmark.score(item, row["response"])
        per_item.append({"id": item_id, **result.values, "reason": result.reason})
    names = dict.fromkeys(name for item in per_item for name in item if name not in ("id", "reason"))
    metrics = {name: summarize([item[name] for item in per_item if name in item]) for name in names}
    return {"benchmark": benchmark_name, "protocol": benchmark.protocol(), "predictions": str(predictions),
            "metrics": metrics, "per_item": per_item}


def write_results(results: dict[str, Any], directory: Path) -> Path:
    path = directory / "results.json"
    write_text_atomic(path, json.dumps(results, indent=1) + "\n")
    return path
