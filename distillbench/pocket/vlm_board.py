"""The pocket VLM leaderboard: the VLM zoo's teacher and student init on the four pocket VLM benchmarks.

The recipe runner trains and loads language models only, so this script does for the VLM zoo what
`distillbench run` does for reference rows: one cell per zoo model (keyed by a hash of its weights),
each benchmark predicted with `kinds.vlm.models.generate_vlm` and scored item by item, everything kept in
the results store (`core.store.Store`, ``<out>/results.sqlite``, per-item outputs in
``<out>/cells/``), then the leaderboard built by `leaderboards.aggregate.build_leaderboard` and
written by `leaderboards.render`, with the paired comparison of every row against the student init
(`head_to_head`). What is already in the store is not recomputed.

    python -m distillbench.pocket.vlm_board            # writes leaderboards/pocket-vlm.{md,json,csv}
    distillbench leaderboard runs/pocket-vlm --versus student-init

The Markdown file opens with a headline table (the figures each benchmark is read by), then the full
table of every metric and the head-to-head comparisons.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ("pocket-vqa", "pocket-pope", "pocket-chair", "pocket-videohallucer")
# The headline: benchmark metric → its column title (↓: lower is better).
HEADLINE = {
    "pocket-vqa/accuracy": "VQA acc",
    "pocket-pope/average/accuracy": "POPE acc",
    "pocket-pope/average/precision": "POPE precision",
    "pocket-pope/average/f1": "POPE F1",
    "pocket-pope/average/yes_ratio": "POPE yes-ratio",
    "pocket-chair/chair_s": "CHAIRs ↓",
    "pocket-chair/chair_i": "CHAIRi ↓",
    "pocket-chair/recall": "CHAIR recall",
    "pocket-videohallucer/overall/accuracy": "VideoHallucer pair acc",
}
EVAL_BATCH_SIZE = 32


def _cells(models: list[str]):
    from distillbench.core.models import fingerprint
    from distillbench.core.plan import Cell
    from distillbench.core.recipe import stable_hash

    from distillbench.pocket import vlm_zoo

    cells = []
    for name in models:
        directory = vlm_zoo.model_dir(name)
        key = stable_hash({"kind": "reference", "model": fingerprint(str(directory))})
        cells.append(Cell(name, "reference", _display(directory), key))
    return cells


def _display(directory: Path) -> str:
    """A model directory as `load_vlm` takes it: relative to the repository when inside it."""
    return str(directory.relative_to(ROOT)) if directory.is_relative_to(ROOT) else str(directory)


def _benchmarks(options: dict[str, dict[str, Any]]):
    from distillbench.core.plan import benchmark_run

    return [benchmark_run(name, options.get(name, {})) for name in BENCHMARKS]


def evaluate(store, cell, bench, model, processor, folder: Path, log=print) -> None:
    """Predict and score one benchmark for one cell, and save it (as the runner does)."""
    from distillbench.core.runner import score_and_save

    started = time.perf_counter()
    items = bench.benchmark.items()
    outputs = bench.benchmark.predict(model, processor, items, batch_size=EVAL_BATCH_SIZE)
    score_and_save(store, cell, bench, items, outputs, time.perf_counter() - started, folder)
    if log:
        log(f"{cell.label} on {bench.name}: {len(items)} items, {time.perf_counter() - started:.0f} s")


def headline_markdown(board: dict[str, Any]) -> str:
    from distillbench.leaderboards.render import format_metric

    header = ["row", *HEADLINE.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board["rows"]:
        cells = [format_metric(row["metrics"].get(metric), with_n=False) for metric in HEADLINE]
        lines.append(f"| {row['row']} | " + " | ".join(cells) + " |")
    counts = {metric: next((row["metrics"][metric]["n"] for row in board["rows"] if metric in row["metrics"]), None)
              for metric in HEADLINE}
    lines += ["", "Mean [95% bootstrap CI over items]; items: "
              + ", ".join(f"{HEADLINE[m]} n={n}" for m, n in counts.items())
              + ". Models: " + ", ".join(f"`{row['row']}` = `{row['model']}`" for row in board["rows"]) + "."]
    return "\n".join(lines) + "\n"


def board_markdown(board: dict[str, Any], comparisons: list[dict[str, Any]] | None, versus: str | None) -> str:
    from distillbench.leaderboards.render import to_markdown, versus_markdown

    full = to_markdown(board).split("\n", 2)[2]  # without its title
    text = (f"# Leaderboard: {board['recipe']['name']}\n\n{board['recipe']['description']}\n\n"
            f"{headline_markdown(board)}\n## Every metric\n\n{full}")
    if comparisons:
        text += "\n" + versus_markdown(comparisons, versus)
    return text


def run(out: Path, models: list[str], options: dict[str, dict[str, Any]], versus: str | None = "student-init",
        log=print) -> dict[str, Any]:
    from distillbench.core.plan import Plan
    from distillbench.core.provenance import run_provenance
    from distillbench.core.recipe import stable_hash
    from distillbench.core.store import Store
    from distillbench.kinds.vlm.models import load_vlm
    from distillbench.leaderboards.aggregate import build_leaderboard, head_to_head
    from distillbench.leaderboards.render import write_all

    from distillbench.pocket import vlm_zoo

    cells, benchmarks = _cells(models), _benchmarks(options)
    recipe = {"name": "pocket-vlm", "description": "The pocket VLM zoo (`distillbench/pocket/vlm_zoo/`) on the "
              "pocket instances of VQAv2, POPE, CHAIR and VideoHallucer; rebuilt by `python -m "
              "distillbench.pocket.vlm_board`.",
              "models": {cell.label: cell.model_ref for cell in cells},
              "benchmarks": [{"name": b.name, **dataclasses.asdict(b.benchmark)} for b in benchmarks],
              "eval_batch_size": EVAL_BATCH_SIZE}
    store = Store(out / "results.sqlite")
    try:
        run_id = f"pocket-vlm-{int(time.time())}"
        provenance = run_provenance(stable_hash(recipe))
        store.start_run(run_id, recipe["name"], stable_hash(recipe), recipe, provenance)
        for cell in cells:
            pending = [b for b in benchmarks if not store.evaluation_complete(cell.key, b.key)]
            if pending:
                model, processor = load_vlm(str(vlm_zoo.model_dir(cell.label)))
                for bench in pending:
                    evaluate(store, cell, bench, model, processor, out / "cells" / cell.folder, log)
            store.mark_cell(cell.key, run_id=run_id, label=cell.label, kind="reference", method=None, params={},
                            seed=None, status="complete", provenance={**provenance, "model": cell.model_ref})
        store.finish_run(run_id)
        board = build_leaderboard(store, Plan(cells, benchmarks), recipe)
        comparisons = head_to_head(store, board, versus) if versus and len(cells) > 1 else None
    finally:
        store.close()
    write_all(board, out)
    (out / "leaderboard.md").write_text(board_markdown(board, comparisons, versus))
    return {"board": board, "comparisons": comparisons}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.pocket.vlm_board", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "pocket-vlm", help="run directory (the store)")
    parser.add_argument("--leaderboards", type=Path, default=ROOT / "leaderboards",
                        help="where pocket-vlm.{md,json,csv} are written")
    parser.add_argument("--models", nargs="+", default=["teacher", "student-init"], help="pocket VLM zoo models")
    parser.add_argument("--dataset", action="append", default=[], metavar="BENCH.KEY=VALUE",
                        help="a benchmark option, e.g. pocket-vqa.n=50 (repeatable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # two shared cores: one thread is faster (see vlm_zoo)
    options: dict[str, dict[str, Any]] = {}
    for pair in args.dataset:
        target, _, value = pair.partition("=")
        bench, _, key = target.partition(".")
        from distillbench.core.score_only import parse_dataset_options

        options.setdefault(bench, {}).update(parse_dataset_options([f"{key}={value}"]))
    result = run(args.out, args.models, options)
    args.leaderboards.mkdir(parents=True, exist_ok=True)
    for suffix in ("json", "md", "csv"):
        (args.leaderboards / f"pocket-vlm.{suffix}").write_text((args.out / f"leaderboard.{suffix}").read_text())
    print(headline_markdown(result["board"]), end="")
    print(f"wrote {args.leaderboards}/pocket-vlm.{{md,json,csv}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
