"""A run's leaderboard, built from its results store and written beside it (JSON, Markdown, CSV, HTML), with
the per-item records its paired tests read (`records`), so a copy of the board reruns them without the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from distillbench.core.plan import Plan
from distillbench.core.recipe import Recipe
from distillbench.core.store import Store
from distillbench.leaderboards.aggregate import build_leaderboard, head_to_head
from distillbench.leaderboards.records import records_path, write_records
from distillbench.leaderboards.render import print_table, versus_markdown, write_all


def publish(out: Path, plan: Plan, recipe: Recipe, console: Console | None = None) -> dict[str, Any]:
    """Build the leaderboard of `plan` from <out>/results.sqlite, write it and its per-item records into `out`
    and print it; the Markdown carries the head-to-head against the recipe's `leaderboard.versus` row, when it
    names one."""
    versus = recipe.leaderboard.versus if recipe.leaderboard else None
    store = Store(out / "results.sqlite")
    try:
        board = build_leaderboard(store, plan, recipe.canonical())
        comparisons = head_to_head(store, board, versus) if versus else None
        write_records(store, board, records_path(out / "leaderboard.json"))
    finally:
        store.close()
    write_all(board, out, versus_markdown(comparisons, versus) if comparisons is not None else "")
    print_table(board)
    (console or Console(stderr=True)).print(f"results: {out / 'leaderboard.json'}, {out / 'leaderboard.md'}, "
                                           f"per-item records {records_path(out / 'leaderboard.json')}")
    return board
