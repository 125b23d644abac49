"""Dual-encoder retrieval distillation: image–caption pairs through the harness's train loop, a cross-encoder
teacher's score matrix as the signal, the `pocket-retrieval` benchmark as the score.

Kept apart from the recipe runner (whose cells are classifiers or language models) and small: the train
loop is the harness's own (`train.train`, seeded data order, checkpoints, NaN guard); this module only
supplies the batches (`RetrievalBatching`) and a driver for recipes like ``recipes/pocket/retrieval.yaml``:

    python -m distillbench.kinds.retrieval.driver recipes/pocket/retrieval.yaml

which trains every method × seed from the same student initialisation, scores each student (and the
teacher once, as a reference row) and writes ``leaderboard.json`` / ``leaderboard.md``: per metric, the
mean over queries pooled across seeds with a bootstrap CI, and a paired test against the baseline method.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from distillbench.pocket.shapes_retrieval import (CaptionPairs, DualEncoder, caption_pairs, load_retrieval_model,
                                                  save_model)

from distillbench.core.errors import UserInputError
from distillbench.core.plan import folder_name
from distillbench.core.recipe import Budget, stable_hash, validate_options
from distillbench.core.registry import METHODS
from distillbench.core.train import Batching, train

# Recipe fields that do not change a trained student (the rest key its cell folder).
NOT_KEYED = ("name", "output_dir", "seeds", "methods", "baseline", "benchmark", "score_teacher")


class RetrievalBatching(Batching):
    """The train loop's batches of image–caption pairs (see `distillbench.methods.classify.info_nce.RetrievalMethod`).

    No augmentation: a flip would turn "left of" into "right of" and reorder the caption's shapes."""

    unit = "pairs"

    def __init__(self, pairs: CaptionPairs, batch_size: int):
        self.pairs = pairs
        self.steps_per_epoch = max(1, len(pairs) // batch_size)

    def lengths(self, examples) -> tuple[int, ...]:
        return (1,) * len(self.pairs)

    def collate(self, examples, indices: list[int], seed: int, step: int, part: int, device) -> dict[str, Any]:
        return {"images": self.pairs.image_batch(indices).to(device), "captions": self.pairs.tokens[indices].to(device),
                "positives": self.pairs.same_caption(indices).to(device), "example_index": list(indices),
                "epoch": step // self.steps_per_epoch + 1}

    @torch.no_grad()
    def add_signals(self, batch: dict, method, frozen: dict) -> int:
        """``teacher_scores`` [B, B]: the cross-encoder on every (image, caption) pair of the batch."""
        if "teacher_scores" not in method.needs:
            return 0
        batch["teacher_scores"] = frozen["teacher"].score_matrix(batch["images"], batch["captions"])
        return len(batch["images"]) ** 2

    def count(self, batch: dict) -> int:
        return len(batch["images"])

    def weight_count(self, batch: dict, normalize_by: str) -> int:
        return len(batch["images"])


def initial_student(seed: int, options: dict[str, Any]) -> DualEncoder:
    """The student every method starts from for a seed (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DualEncoder(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


def train_student(method, pairs: CaptionPairs, teacher, budget: Budget, seed: int, options: dict[str, Any],
                  work: Path) -> DualEncoder:
    student = initial_student(seed, options)
    frozen = {"teacher": teacher} if "teacher_scores" in method.needs else {}
    result = train(method, student, pairs, budget, seed, work / "checkpoint", frozen=frozen,
                   batching=RetrievalBatching(pairs, budget.batch_size), description=f"retrieval {work.name}",
                   log_path=work / "train_log.jsonl")
    shutil.rmtree(work / "checkpoint", ignore_errors=True)
    return result.model if result.model is not None else student


def evaluate(model, benchmark) -> dict[str, list[float]]:
    """metric → per-query 0/1 values (each metric over the queries of its direction)."""
    items = benchmark.items()
    ranks = benchmark.predict(model, None, items, batch_size=256)
    values: dict[str, list[float]] = {}
    for item, rank in zip(items, ranks):
        for metric, value in benchmark.score(item, rank).values.items():
            values.setdefault(metric, []).append(value)
    return values


def _methods(raw: dict, path: Path) -> list[tuple[str, Any]]:
    methods, problems = [], []
    for index, entry in enumerate(raw["methods"]):
        entry = {"name": entry} if isinstance(entry, str) else dict(entry)
        name = entry.pop("name")
        if name not in METHODS:
            problems.append(f"{path}: methods[{index}]: {METHODS.unknown_message(name)}")
            continue
        cls = METHODS.get(name)
        if getattr(cls, "data_kind", None) != "retrieval":
            problems.append(f"{path}: methods[{index}]: {name} does not train a dual encoder on image–caption pairs")
            continue
        method, found = validate_options(cls, entry, f"methods[{index}]")
        problems += [f"{path}: {line}" for line in found]
        methods.append((name, method))
    if problems:
        raise UserInputError(problems)
    return methods


def run(path: Path, out: Path | None = None) -> dict:
    from distillbench.benchmarks.retrieval import PocketRetrieval
    from distillbench.leaderboards.side_report import method_rows, write_board

    raw = yaml.safe_load(Path(path).read_text())
    missing = [k for k in ("name", "teacher", "train_size", "budget", "seeds", "methods", "baseline") if k not in raw]
    if missing:
        raise UserInputError([f"{path}: {key}: required" for key in missing])
    methods = _methods(raw, Path(path))
    out = Path(out or raw.get("output_dir", f"runs/{raw['name']}"))
    budget, options = Budget(**raw["budget"]), raw.get("student", {})
    pairs = caption_pairs("train", raw["train_size"], raw.get("data_seed", 0))
    teacher = load_retrieval_model(raw["teacher"])
    benchmark = PocketRetrieval(**raw.get("benchmark", {}))
    per_metric: dict[str, dict[str, dict[int, list[float]]]] = {}
    seconds = {}
    shared = {key: value for key, value in raw.items() if key not in NOT_KEYED}
    for seed in raw["seeds"]:
        for name, method in methods:
            started = time.perf_counter()
            # Keyed by content: a run interrupted, edited and started again never resumes the old checkpoint.
            work = out / "cells" / folder_name(name, seed, stable_hash({**shared, "method": name, "seed": seed,
                                                                        "options": dataclasses.asdict(method)}))
            student = train_student(method, pairs, teacher, budget, seed, options, work)
            save_model(student, work / "model")
            seconds[f"{name}-{seed}"] = round(time.perf_counter() - started, 1)
            for metric, values in evaluate(student, benchmark).items():
                per_metric.setdefault(metric, {}).setdefault(name, {})[seed] = values
    if raw.get("score_teacher", True):
        for metric, values in evaluate(teacher, benchmark).items():
            per_metric[metric]["teacher (cross-encoder)"] = {0: values}
    metrics = {metric: method_rows(rows, baseline=raw["baseline"]) for metric, rows in per_metric.items()}
    board = {"name": raw["name"], "recipe": raw, "protocol": {**benchmark.protocol(), **benchmark.metric_definitions()},
             "train_seconds": seconds,
             "metrics": metrics}
    costs = {name: {"train_seconds": round(statistics.fmean(seconds[f"{name}-{seed}"] for seed in raw["seeds"]), 1)}
             for name, _ in methods}
    return write_board(out, board, raw["baseline"], "pocket-retrieval", references=("teacher (cross-encoder)",),
                       costs=costs)


def main(argv: list[str] | None = None) -> int:
    from distillbench.leaderboards.side_report import driver_main

    return driver_main("distillbench.kinds.retrieval.driver", "Run a dual-encoder retrieval distillation recipe.", run,
                       argv)


if __name__ == "__main__":
    raise SystemExit(main())
