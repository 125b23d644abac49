"""A run's leaderboard, built from its results store and written beside it (JSON, Markdown, CSV, HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from distillbench.core.plan import Plan
from distillbench.core.recipe import Recipe
from distillbench.core.store import Store
from distillbench.leaderboards.aggregate import build_leaderboard
from distillbench.leaderboards.render import print_table, write_all


def publish(out: Path, plan: Plan, recipe: Recipe, console: Console | None = None) -> dict[str, Any]:
    """Build the leaderboard of `plan` from <out>/results.sqlite, write it into `out` and print it."""
    store = Store(out / "results.sqlite")
    try:
        board = build_leaderboard(store, plan, recipe.canonical())
    finally:
        store.close()
    write_all(board, out)
    print_table(board)
    (console or Console(stderr=True)).print(f"results: {out / 'leaderboard.json'}, {out / 'leaderboard.md'}")
    return board
