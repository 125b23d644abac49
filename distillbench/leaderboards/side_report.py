"""Leaderboard rows for the side paths that do not run through the recipe runner (dataset distillation,
dual-encoder retrieval, tabular generators): per-item 0/1 values of each (method, seed), summarised as
the main leaderboard does — each item averaged over the seeds, then the mean over items with a bootstrap
CI (n = items: the items are the sample, not items × seeds) — plus each seed's own mean and a paired test
against a baseline row on the same items. The boards they write are
in results-schema 1 (`schema_rows`), so `distillbench compare` and the regression gate read them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from distillbench.core.stats import paired_difference, summarize


def method_rows(values: dict[str, dict[int, list[float]]], baseline: str | None = None) -> dict[str, dict]:
    """values[method][seed] = per-item values (same items, same order, for every method and seed)."""
    rows = {}
    for method, by_seed in values.items():
        row = {**summarize(_seed_mean(by_seed)), "seeds": {str(seed): float(np.mean(v)) for seed, v in sorted(by_seed.items())}}
        if baseline is not None and method != baseline and baseline in values:
            row["versus_" + baseline] = paired_difference(_seed_mean(by_seed), _seed_mean(values[baseline]))
        rows[method] = row
    return rows


def _seed_mean(by_seed: dict[int, list[float]]) -> np.ndarray:
    """Each item's value averaged over the seeds (the pairing unit of the test is the item)."""
    return np.mean([by_seed[seed] for seed in sorted(by_seed)], axis=0)


def markdown(title: str, metrics: dict[str, dict[str, dict]], baseline: str | None = None) -> str:
    """metrics[metric][method] = a row from `method_rows`, as one Markdown table."""
    lines = [f"# {title}", "", "| metric | method | mean | 95% CI | per seed | vs " + (baseline or "-") + " (p) |",
             "|---|---|---|---|---|---|"]
    for metric, rows in metrics.items():
        for method, row in rows.items():
            versus = row.get("versus_" + str(baseline))
            paired = f"{versus['diff']:+.3f} (p={versus['p']:.3g})" if versus else ""
            seeds = ", ".join(f"{v:.3f}" for v in row["seeds"].values())
            lines.append(f"| {metric} | {method} | {row['mean']:.3f} | [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}] "
                         f"| {seeds} | {paired} |")
    return "\n".join(lines) + "\n"


def schema_rows(metrics: dict[str, dict[str, dict]], seeds: list[int], benchmark: str | None = None,
                references: tuple[str, ...] = (), methods: dict[str, str] | None = None,
                costs: dict[str, dict] | None = None) -> list[dict]:
    """The rows of results-schema 1 from metrics[metric][row] (rows as `method_rows` makes them, with
    `seeds` {seed: mean}, or a set metric's `per_seed` list in the order of `seeds`). Metric keys
    become ``<benchmark>/<metric>`` (kept as they are without a `benchmark`); the per-seed values
    become `seed_spread`. Method rows ran `seeds`; `references` are rows scored as they are (a
    teacher); `methods` names a row's registered method where its label does not; `costs` holds a
    row's cost fields."""
    rows: dict[str, dict] = {}
    for metric, by_row in metrics.items():
        key = f"{benchmark}/{metric}" if benchmark else metric
        for name, summary in by_row.items():
            reference = name in references
            row = rows.setdefault(name, {
                "row": name, "kind": "reference" if reference else "method",
                "method": None if reference else (methods or {}).get(name, name.split("[")[0]),
                "seeds": [] if reference else list(seeds),
                "status": "complete", "metrics": {}, "seed_spread": {}, "cost": (costs or {}).get(name, {})})
            row["metrics"][key] = {field: summary[field] for field in ("mean", "ci95", "n")}
            per_seed = _per_seed(summary, seeds)
            if not reference and len(per_seed) > 1:
                row["seed_spread"][key] = {"per_seed": per_seed, "std": float(np.std(list(per_seed.values()), ddof=1))}
    return list(rows.values())


def _per_seed(summary: dict, seeds: list[int]) -> dict[str, float]:
    if "seeds" in summary:
        return dict(summary["seeds"])
    return {str(seed): value for seed, value in zip(seeds, summary.get("per_seed", []))}


def write_board(out: Path, board: dict, baseline: str | None, benchmark: str, **rows) -> dict:
    """A driver's `leaderboard.json` and `leaderboard.md` in `out` (the Markdown also printed). The JSON
    is `board` with the fields of results-schema 1 added (`rows` from `schema_rows(..., **rows)`)."""
    board = {"schema_version": 1, **board, "protocols": {benchmark: board["protocol"]},
             "rows": schema_rows(board["metrics"], board["recipe"]["seeds"], benchmark, **rows)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(json.dumps(board, indent=1) + "\n")
    (out / "leaderboard.md").write_text(markdown(board["name"], board["metrics"], baseline))
    print((out / "leaderboard.md").read_text())
    return board


def driver_main(prog: str, description: str, run: Callable[[Path, Path | None], dict],
                argv: list[str] | None = None) -> int:
    """The command line of a driver: `python -m <prog> RECIPE [--out DIR]`, single-threaded torch."""
    import torch

    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # deterministic, and on two shared cores more threads are slower
    run(args.recipe, args.out)
    return 0
