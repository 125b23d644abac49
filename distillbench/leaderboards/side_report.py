"""Leaderboard rows for the side paths that do not run through the recipe runner (dataset distillation,
dual-encoder retrieval): per-item 0/1 values of each (method, seed), summarised as the main leaderboard
does — the mean over items pooled across seeds with a bootstrap CI — plus each seed's own mean and a
paired test against a baseline row on the same items."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .stats import paired_difference, summarize


def method_rows(values: dict[str, dict[int, list[float]]], baseline: str | None = None) -> dict[str, dict]:
    """values[method][seed] = per-item values (same items, same order, for every method and seed)."""
    rows = {}
    for method, by_seed in values.items():
        pooled = [value for seed in sorted(by_seed) for value in by_seed[seed]]
        row = {**summarize(pooled), "seeds": {str(seed): float(np.mean(v)) for seed, v in sorted(by_seed.items())}}
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


def write_board(out: Path, board: dict, baseline: str | None) -> dict:
    """A driver's `leaderboard.json` and `leaderboard.md` in `out` (the Markdown also printed)."""
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
