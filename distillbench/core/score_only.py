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

from distillbench.core.errors import UserInputError
from distillbench.core.files import write_text_atomic
from distillbench.core.item_metrics import summarize_metrics, values_from_records
from distillbench.core.jsonl import read_jsonl
from distillbench.core.recipe import validate_options
from distillbench.core.registry import BENCHMARKS


def parse_dataset_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``--dataset``) as benchmark options. A value stays a string, which the
    option's type converts (numbers, booleans), except a YAML list, mapping or null:
    ``splits=[random, popular]``, ``n=null``."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key.strip():
            raise UserInputError(f"--dataset {pair}: expected KEY=VALUE, e.g. questions=data/coco_pope_random.json")
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = text
        options[key.strip()] = parsed if isinstance(parsed, (list, dict)) or parsed is None else text
    return options


def score_predictions(benchmark_name: str, predictions: str | Path, options: dict[str, Any]) -> dict[str, Any]:
    benchmark, problems = validate_options(BENCHMARKS.get(benchmark_name), options, benchmark_name)
    if problems:
        raise UserInputError(problems)
    rows = read_jsonl(predictions, ("id", "response"))
    for number, row in enumerate(rows, start=1):
        if not isinstance(row["response"], (str, list, dict)):
            raise UserInputError(f"{predictions}: record {number}: 'response' must be a string, a list of turns "
                                 "or an object")
    dataset = None if all("gold" in row for row in rows) else {item["id"]: item for item in benchmark.items()}
    per_item, seen, scored_items = [], set(), []
    for number, row in enumerate(rows, start=1):
        item_id = str(row["id"])
        if item_id in seen:
            raise UserInputError(f"{predictions}: record {number}: id {item_id!r} appears twice")
        seen.add(item_id)
        if "gold" in row:
            if not hasattr(benchmark, "item_from_gold"):
                raise UserInputError(f"{predictions}: record {number}: {benchmark_name} cannot take an inline gold")
            item = benchmark.item_from_gold(item_id, str(row["gold"]))
        elif item_id in dataset:
            item = dataset[item_id]
        else:
            raise UserInputError(f"{predictions}: record {number}: id {item_id!r} is not in the {benchmark_name} dataset")
        result = benchmark.score(item, row["response"])
        scored_items.append(item)
        per_item.append({"id": item_id, **result.values, "reason": result.reason})
    # Ratio-of-sums and macro metrics pool their per-item components; the components stay in per_item.
    values = values_from_records((item["id"], {k: v for k, v in item.items() if k not in ("id", "reason")})
                                 for item in per_item)
    metrics = summarize_metrics(values, benchmark.metric_definitions())
    metrics.update(benchmark.score_set(scored_items, [row["response"] for row in rows]))  # FID, KID
    return {"benchmark": benchmark_name, "protocol": benchmark.protocol(), "predictions": str(predictions),
            "metrics": metrics, "per_item": per_item}


def write_results(results: dict[str, Any], directory: Path) -> Path:
    path = directory / "results.json"
    write_text_atomic(path, json.dumps(results, indent=1) + "\n")
    return path
