"""Build the leaderboard (results schema version 1) from the results store.

A row is a reference model or a method; a method row pools its seeds: its mean is over
seeds × items, and its 95% interval carries the seed-to-seed variance as well as the
items' (`core.two_level`; one seed: a bootstrap over items, conditional on that model).
The per-seed means and their spread are kept beside it.
Ratio-of-sums and macro-mean metrics a benchmark declares are pooled over items the
same way (`corpus`); their per-item components stay in the store, out of the rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from distillbench.core.errors import UserInputError
from distillbench.core.plan import Plan
from distillbench.core.store import Store

from distillbench.core.item_metrics import (cells_by_items, is_pooled, metric_names, paired_pooled, per_cell_values,
                                            set_metric_summary, summarize_metrics)
from distillbench.core.two_level import resamples_for, two_level_difference

SCHEMA_VERSION = 1


def item_values(store: Store, cell_keys: list[str], bench_key: str) -> dict[str, dict[str, np.ndarray]]:
    """metric -> item id -> that item's values in each cell (one per seed). Only items scored in every cell
    are kept; items where a judge's verdict could not be parsed carry no value and are dropped."""
    per_cell = [store.item_scores(key, bench_key) for key in cell_keys]
    if not per_cell or any(not scores for scores in per_cell):
        return {}
    item_ids = sorted(set.intersection(*(set(scores) for scores in per_cell)))
    values: dict[str, dict[str, np.ndarray]] = {}
    for metric in sorted({m for scores in per_cell for item in scores.values() for m in item}):
        values[metric] = {i: np.array([scores[i][metric] for scores in per_cell]) for i in item_ids
                          if all(metric in scores[i] for scores in per_cell)}
    return values


def _row_metrics(store: Store, cells, plan: Plan) -> tuple[dict[str, Any], dict[str, Any]]:
    metrics, seeds = {}, {}
    for bench in plan.benchmarks:
        definitions = bench.benchmark.metric_definitions()
        values = item_values(store, [c.key for c in cells], bench.key)
        for metric, summary in summarize_metrics(values, definitions).items():
            metrics[f"{bench.name}/{metric}"] = summary
        per_cell = per_cell_values(values, definitions) if len(cells) > 1 else {}
        for metric in definitions.get("set_metrics", ()):  # FID, KID: stored per evaluation, not per item
            stored = [store.metric_summaries(c.key, bench.key).get(metric) for c in cells]
            if stored and all(stored):
                metrics[f"{bench.name}/{metric}"] = set_metric_summary(stored)
                per_cell[metric] = [summary["mean"] for summary in stored]
        if len(cells) > 1:
            for metric, seed_means in per_cell.items():
                seeds[f"{bench.name}/{metric}"] = {"per_seed": {str(c.seed): m for c, m in zip(cells, seed_means)},
                                                   "std": float(np.std(seed_means, ddof=1))}
    return metrics, seeds


def _row_cost(store: Store, cells, plan: Plan) -> dict[str, Any]:
    """Cost of one training run of the row (the mean over its seeds) and of its evaluation."""
    costs = [(store.cell(c.key) or {}).get("cost") or {} for c in cells]
    eval_seconds = [sum((store.evaluation(c.key, b.key) or {}).get("seconds", 0.0) for b in plan.benchmarks)
                    for c in cells]
    cost: dict[str, Any] = {"eval_seconds": round(float(np.mean(eval_seconds)), 2)}
    # The training data's amount and rate, in the kind's unit (train_tokens, train_images, train_rows, ...).
    fields = list(dict.fromkeys(key for c in costs for key in c))
    unit_fields = [field for field in fields if field.startswith("train_") and field != "train_seconds"]
    # A sampler's cost at each step count it was scored at (nfe@<steps>, sampling_seconds_per_image@<steps>).
    per_steps = [field for field in fields if field.startswith(("nfe@", "sampling_seconds_per_image@"))]
    for field in ("train_seconds", "peak_memory_mb", "teacher_forwards", "trained_parameters", "steps",
                  "on_policy_steps", *unit_fields, "nfe", "sampling_seconds_per_image", *per_steps,
                  "distil_seconds"):
        values = [c[field] for c in costs if field in c]
        if values:
            cost[field] = round(float(np.mean(values)), 2)
    # Groups of numbers (tracked measures, the teacher signal cache): each number's mean over seeds.
    for field in ("final_measures", "signal_cache"):
        groups = [c[field] for c in costs if field in c]
        if groups:
            cost[field] = {key: round(float(np.mean([g[key] for g in groups if key in g])), 4) for key in groups[0]}
    return cost


def _declarations(cell, plan: Plan) -> dict[str, Any]:
    """What the claims read of a row's method: the row whose student it continues (its label; None: the init)
    and the cost field that shows its mechanism engaged (`Method.engaged_by`)."""
    return {"starts_from": plan.cell(cell.starts_from).label if cell.starts_from else None,
            "engaged_by": getattr(cell.method, "engaged_by", None)}


def _hyperparameters(cell, plan: Plan) -> dict[str, Any]:
    """A method row's options as trained (its method's, and the learning rate it trained with) and its tuning:
    the trials, the objective chosen on the dev split and their cost (core/tune.py); "untuned" when the
    recipe set its options. Reference rows have neither."""
    if cell.kind != "method":
        return {}
    options = dataclasses.asdict(cell.method) if dataclasses.is_dataclass(cell.method) else {}
    if cell.budget is not None:
        options["learning_rate"] = cell.budget.learning_rate
    return {"hyperparameters": options, "tuning": cell.tuning or "untuned"}


def _commits(records: list[dict[str, Any]]) -> list[str]:
    """The git commits of the checkouts that trained or loaded the row's cells, from their provenance
    ('+dirty': with uncommitted changes); usually one, several when the row's seeds ran from different code."""
    return sorted({(record.get("provenance") or {}).get("git_commit") for record in records} - {None})


def _protocol(bench) -> dict[str, Any]:
    """A planned benchmark's entry in the board: its protocol, key, metric declarations and, for
    no-direction metrics, their ideal values (`Benchmark.ideal_values`)."""
    ideals = bench.benchmark.ideal_values()
    return {**bench.benchmark.protocol(), "key": bench.key, **bench.benchmark.metric_definitions(),
            **({"ideal": ideals} if ideals else {})}


def build_leaderboard(store: Store, plan: Plan, recipe: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for label in plan.rows():
        cells = [c for c in plan.cells if c.label == label]
        records = [store.cell(c.key) or {} for c in cells]
        failed = [r for r in records if r.get("status") == "failed"]
        metrics, seeds = _row_metrics(store, [c for c, r in zip(cells, records) if r.get("status") != "failed"], plan)
        first = cells[0]
        row = {"row": label, "kind": first.kind, "method": first.method_name, "model": first.model_ref,
               **_declarations(first, plan), **_hyperparameters(first, plan),
               "seeds": [c.seed for c in cells if c.seed is not None], "metrics": metrics, "seed_spread": seeds,
               "cost": _row_cost(store, cells, plan), "cells": [c.key for c in cells], "commits": _commits(records),
               "status": "failed" if failed else ("complete" if metrics else "incomplete")}
        if failed:
            row["errors"] = [f"seed {r['seed']}: {r['error']}" + (f" (step {r['failed_step']})" if r["failed_step"]
                                                                  else "") for r in failed]
        rows.append(row)
    protocols = {b.name: _protocol(b) for b in plan.benchmarks}
    return {"schema_version": SCHEMA_VERSION, "recipe": recipe, "protocols": protocols, "rows": rows}


def holm(p_values: list[float], at_floor: list[bool] | None = None) -> tuple[list[float], list[bool]]:
    """Holm–Bonferroni adjusted p-values (same order as given), and whether each is only a bound: the
    running maximum that sets it came from a p-value at its resampling floor (`at_floor`)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    at_floor = at_floor or [False] * len(p_values)
    adjusted, bounds, running, bound = [0.0] * len(p_values), [False] * len(p_values), 0.0, False
    for rank, index in enumerate(order):
        term = min(1.0, (len(p_values) - rank) * p_values[index])
        if term > running:
            running, bound = term, at_floor[index] and term < 1.0
        adjusted[index], bounds[index] = running, bound
    return adjusted, bounds


def paired_test(values_a: dict, values_b: dict, metric: str, protocol: dict, resamples: int
                ) -> dict[str, Any] | None:
    """a − b on `metric` over the items both rows scored (None when they share none), by
    `two_level.two_level_difference`: over seeds and items when a row has several seeds (a t-test of
    the crossed model), else over items: the exact McNemar test for a binary metric, the paired
    permutation test that swaps the rows' (numerator, denominator) per item for a ratio-of-sums or
    macro metric, the paired sign-flip test otherwise, each with `resamples`."""
    if is_pooled(metric, protocol):
        return paired_pooled(values_a, values_b, metric, protocol, resamples)
    shared = sorted(set(values_a.get(metric, {})) & set(values_b.get(metric, {})))
    if not shared:
        return None
    a, b = cells_by_items(values_a, metric, shared), cells_by_items(values_b, metric, shared)
    return two_level_difference(a, b, binary=metric in protocol["binary_metrics"], resamples=resamples)


def head_to_head(store: Store, board: dict[str, Any], versus: str, alpha: float = 0.05) -> list[dict[str, Any]]:
    """Paired differences of every row against row `versus`, per metric, over the items both have
    (`paired_test`). Resampling tests draw 20·m/α resamples for the table's m comparisons, so the
    smallest p they can give stays below Holm's smallest threshold; p-values are Holm-corrected over
    all comparisons of the table.
    """
    rows = {row["row"]: row for row in board["rows"]}
    if versus not in rows:
        raise UserInputError(f"--versus {versus}: no such row; rows: {', '.join(rows)}")
    pairs = []
    for bench, protocol in board["protocols"].items():
        baseline = item_values(store, rows[versus]["cells"], protocol["key"])
        for row in board["rows"]:
            if row["row"] == versus or row["status"] == "failed":
                continue
            other = item_values(store, row["cells"], protocol["key"])
            pairs += [(row["row"], bench, metric, other, baseline, protocol) for metric in metric_names(other, protocol)]
    resamples = resamples_for(len(pairs), alpha)
    comparisons = []
    for label, bench, metric, other, baseline, protocol in pairs:
        result = paired_test(other, baseline, metric, protocol, resamples)
        if result is not None:
            comparisons.append({"row": label, "versus": versus, "metric": f"{bench}/{metric}", **result})
    adjusted, bounds = holm([c["p"] for c in comparisons], [c["p_at_floor"] for c in comparisons])
    for comparison, p_holm, bound in zip(comparisons, adjusted, bounds):
        comparison.update(p_holm=p_holm, p_holm_is_bound=bound, significant=p_holm < alpha)
    return comparisons


def direction(board: dict[str, Any], metric: str) -> str:
    """Which way `<benchmark>/<metric>` is better, as the board's protocol for the benchmark declares it:
    "lower", "none" (a bias measure: see `ideal`) or "higher" (the default)."""
    bench, _, name = metric.partition("/")
    protocol = board.get("protocols", {}).get(bench, {})
    if name in protocol.get("lower_is_better", []):
        return "lower"
    return "none" if name in protocol.get("no_direction", []) else "higher"


def ideal(board: dict[str, Any], metric: str) -> float | None:
    """The value a no-direction metric should have (a perfect model's), or None where none is declared."""
    bench, _, name = metric.partition("/")
    return board.get("protocols", {}).get(bench, {}).get("ideal", {}).get(name)
