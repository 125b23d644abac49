"""Build the leaderboard (results schema version 1) from the results store.

A row is a reference model or a method; a method row pools its seeds: each
item's score is first averaged over seeds, then the mean and its 95% bootstrap
CI are taken over items. The per-seed means and their spread are kept beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distillbench.harness.plan import Plan
from distillbench.harness.store import Store

from .stats import summarize

SCHEMA_VERSION = 1


def _row_metrics(store: Store, cells, plan: Plan) -> tuple[dict[str, Any], dict[str, Any]]:
    metrics, seeds = {}, {}
    for bench in plan.benchmarks:
        per_cell = [store.item_scores(c.key, bench.key) for c in cells]
        if not per_cell or any(not scores for scores in per_cell):
            continue
        item_ids = sorted(set.intersection(*(set(scores) for scores in per_cell)))
        for metric in sorted({m for scores in per_cell for item in scores.values() for m in item}):
            # items where a judge's verdict could not be parsed carry no value and are dropped
            scored = [i for i in item_ids if all(metric in scores[i] for scores in per_cell)]
            matrix = np.array([[scores[i][metric] for i in scored] for scores in per_cell])
            name = f"{bench.name}/{metric}"
            metrics[name] = summarize(matrix.mean(axis=0))
            if len(cells) > 1:
                seed_means = matrix.mean(axis=1)
                seeds[name] = {"per_seed": {str(c.seed): float(m) for c, m in zip(cells, seed_means)},
                               "std": float(seed_means.std(ddof=1))}
    return metrics, seeds


def _row_cost(store: Store, cells, plan: Plan) -> dict[str, Any]:
    """Cost of one training run of the row (the mean over its seeds) and of its evaluation."""
    costs = [(store.cell(c.key) or {}).get("cost") or {} for c in cells]
    eval_seconds = [sum((store.evaluation(c.key, b.key) or {}).get("seconds", 0.0) for b in plan.benchmarks)
                    for c in cells]
    cost: dict[str, Any] = {"eval_seconds": round(float(np.mean(eval_seconds)), 2)}
    for field in ("train_seconds", "peak_memory_mb", "teacher_forwards", "trained_parameters", "steps"):
        values = [c[field] for c in costs if field in c]
        if values:
            cost[field] = round(float(np.mean(values)), 2)
    return cost


def build_leaderboard(store: Store, plan: Plan, recipe: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for label in plan.rows():
        cells = [c for c in plan.cells if c.label == label]
        records = [store.cell(c.key) or {} for c in cells]
        failed = [r for r in records if r.get("status") == "failed"]
        metrics, seeds = _row_metrics(store, [c for c, r in zip(cells, records) if r.get("status") != "failed"], plan)
        first = cells[0]
        row = {"row": label, "kind": first.kind, "method": first.method_name, "model": first.model_ref,
               "seeds": [c.seed for c in cells if c.seed is not None], "metrics": metrics, "seed_spread": seeds,
               "cost": _row_cost(store, cells, plan), "cells": [c.key for c in cells],
               "status": "failed" if failed else ("complete" if metrics else "incomplete")}
        if failed:
            row["errors"] = [f"seed {r['seed']}: {r['error']} (step {r['failed_step']})" for r in failed]
        rows.append(row)
    protocols = {b.name: b.benchmark.protocol() for b in plan.benchmarks}
    return {"schema_version": SCHEMA_VERSION, "recipe": recipe, "protocols": protocols, "rows": rows}
