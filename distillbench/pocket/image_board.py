"""The pocket image leaderboard: the pocket text-to-image teacher at several step counts on the pocket image benchmarks.

The recipe runner trains and loads language models and classifiers only, so this script does for
a text-to-image model what `distillbench run` does for reference rows: one cell per (model,
sampler, steps, guidance, seed), keyed by a hash of those and the model's weights; for each
benchmark the images of its prompts are generated (`kinds.text_to_image.sampling`; benchmarks with the
same prompts share one set of images) and scored item by item, set metrics (FID, KID) by
`Benchmark.score_set`; everything goes into the results store (``<out>/results.sqlite``), the
leaderboard is built by `leaderboards.aggregate.build_leaderboard` and written by
`leaderboards.render`. The cost columns carry NFE per image and sampling seconds per image.

    python -m distillbench.pocket.image_board      # writes leaderboards/pocket-image.{md,json,csv}
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from distillbench.pocket.vlm_board import ROOT

BENCHMARKS = ("pocket-geneval", "pocket-fid", "pocket-kid", "pocket-clip-score")
HEADLINE = {"pocket-geneval/overall": "GenEval overall", "pocket-geneval/single_object": "single object",
            "pocket-geneval/colors": "colours", "pocket-fid/fid": "FID ↓", "pocket-kid/kid": "KID ↓",
            "pocket-clip-score/clip_score": "CLIP score"}


@dataclasses.dataclass(frozen=True)
class Sampling:
    steps: int
    guidance: float
    sampler: str = "ddim"
    seed: int = 0

    @property
    def label(self) -> str:
        return f"teacher@{self.steps}"


def _cells(model: str, samplings: list[Sampling]):
    from distillbench.core.plan import Cell
    from distillbench.core.recipe import stable_hash
    from distillbench.kinds.text_to_image.sampling import fingerprint, resolve

    weights = fingerprint(resolve(model))
    return [(Cell(sampling.label, "reference", model,
                  stable_hash({"kind": "text-to-image", "model": weights, **dataclasses.asdict(sampling)})), sampling)
            for sampling in samplings]


def _benchmarks(options: dict[str, dict[str, Any]]):
    from distillbench.core.plan import benchmark_run

    return [benchmark_run(name, options.get(name, {})) for name in BENCHMARKS]


def _evaluate_cell(store, pipeline, cell, sampling: Sampling, benchmarks, folder: Path, log) -> dict[str, Any]:
    """Generate each distinct prompt list once, score every pending benchmark; the sampling cost."""
    from distillbench.kinds.text_to_image.sampling import generate_for_benchmark, item_prompt

    generated: dict[tuple, tuple] = {}
    from distillbench.core.runner import score_and_save

    cost = None
    for bench in benchmarks:
        items = bench.benchmark.items()
        prompts = tuple((item["id"], item_prompt(item)) for item in items)
        if prompts not in generated:
            started = time.perf_counter()
            predictions, cost = generate_for_benchmark(pipeline, bench.benchmark, folder / bench.name, sampling.steps,
                                                       sampling.guidance, sampling.sampler, sampling.seed)
            outputs = [json.loads(line)["response"] for line in predictions.read_text().splitlines()]
            generated[prompts] = (outputs, time.perf_counter() - started)
        outputs, seconds = generated[prompts]
        metrics = score_and_save(store, cell, bench, items, outputs, seconds, folder)
        if log:
            log(f"{cell.label} on {bench.name}: " + ", ".join(f"{k}={v['mean']:.4g}" for k, v in metrics.items()))
    return {"nfe": cost.nfe, "sampling_seconds_per_image": round(cost.seconds_per_image, 4)} if cost else {}


def headline_markdown(board: dict[str, Any]) -> str:
    from distillbench.leaderboards.render import format_metric

    header = ["row", *HEADLINE.values(), "NFE", "s / image"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board["rows"]:
        cells = [format_metric(row["metrics"].get(metric), with_n=False) for metric in HEADLINE]
        cost = row["cost"]
        lines.append(f"| {row['row']} | " + " | ".join(cells)
                     + f" | {cost.get('nfe', 0):.0f} | {cost.get('sampling_seconds_per_image', 0):.3f} |")
    counts = {metric: next((row["metrics"][metric]["n"] for row in board["rows"] if metric in row["metrics"]), None)
              for metric in HEADLINE}
    lines += ["", "GenEval and CLIP score: mean [95% bootstrap CI over images]; FID and KID: the value over the whole "
              "set [95% percentile bootstrap over generated images, reference fixed]. Images: "
              + ", ".join(f"{HEADLINE[m]} n={n}" for m, n in counts.items())
              + ". NFE: UNet evaluations per image (classifier-free guidance doubles them); s / image: wall "
              "seconds per image, batched, one CPU thread, on a shared machine."]
    return "\n".join(lines) + "\n"


def board_markdown(board: dict[str, Any], command: str) -> str:
    from distillbench.leaderboards.render import to_markdown

    full = to_markdown(board).split("\n", 2)[2]  # without its title
    return (f"# Leaderboard: {board['recipe']['name']}\n\nGenerated by `{command}`\n\n"
            f"{board['recipe']['description']}\n\n{headline_markdown(board)}\n## Every metric\n\n{full}")


def run(out: Path, model: str, samplings: list[Sampling], options: dict[str, dict[str, Any]], command: str,
        log=print) -> dict[str, Any]:
    from distillbench.core.plan import Plan
    from distillbench.core.provenance import run_provenance
    from distillbench.core.recipe import stable_hash
    from distillbench.core.store import Store
    from distillbench.kinds.text_to_image.sampling import TextToImage
    from distillbench.leaderboards.aggregate import build_leaderboard
    from distillbench.leaderboards.render import write_all

    cells, benchmarks = _cells(model, samplings), _benchmarks(options)
    recipe = {"name": "pocket-image", "description": f"The pocket text-to-image teacher (`{model}`, "
              "`distillbench/pocket/t2i_zoo.py`) sampled with DDIM (trailing timesteps, classifier-free guidance) at "
              "several step counts, on the pocket image benchmarks.",
              "model": model, "samplings": {cell.label: dataclasses.asdict(s) for cell, s in cells},
              "benchmarks": [{"name": b.name, **dataclasses.asdict(b.benchmark)} for b in benchmarks]}
    store = Store(out / "results.sqlite")
    pipeline = None
    try:
        run_id = f"pocket-image-{int(time.time())}"
        provenance = run_provenance(stable_hash(recipe))
        store.start_run(run_id, recipe["name"], stable_hash(recipe), recipe, provenance)
        for cell, sampling in cells:
            pending = [b for b in benchmarks if not store.evaluation_complete(cell.key, b.key)]
            cost = (store.cell(cell.key) or {}).get("cost") or {}
            if pending:
                pipeline = pipeline or TextToImage(model)
                cost = _evaluate_cell(store, pipeline, cell, sampling, pending, out / "cells" / cell.folder, log) or cost
            store.mark_cell(cell.key, run_id=run_id, label=cell.label, kind="reference", method=None,
                            params=dataclasses.asdict(sampling), seed=sampling.seed, status="complete", cost=cost,
                            provenance={**provenance, "model": model})
        store.finish_run(run_id)
        board = build_leaderboard(store, Plan([cell for cell, _ in cells], benchmarks), recipe)
    finally:
        store.close()
    write_all(board, out)
    (out / "leaderboard.md").write_text(board_markdown(board, command))
    return board


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.pocket.image_board", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "pocket-image", help="run directory (the store)")
    parser.add_argument("--leaderboards", type=Path, default=ROOT / "leaderboards",
                        help="where pocket-image.{md,json,csv} are written")
    parser.add_argument("--model", default="pocket:t2i-teacher", help="pocket:<name> or a pipeline folder")
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 2, 1], help="one row per step count")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--sampler", choices=["ddim", "euler"], default="ddim")
    parser.add_argument("--dataset", action="append", default=[], metavar="BENCH.KEY=VALUE",
                        help="a benchmark option, e.g. pocket-fid.samples=200 (repeatable)")
    args = parser.parse_args(argv)
    from distillbench.core.score_only import parse_dataset_options

    torch.set_num_threads(1)  # two shared cores: one thread is faster
    options: dict[str, dict[str, Any]] = {}
    for pair in args.dataset:
        target, _, value = pair.partition("=")
        bench, _, key = target.partition(".")
        options.setdefault(bench, {}).update(parse_dataset_options([f"{key}={value}"]))
    command = "python -m distillbench.pocket.image_board " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    samplings = [Sampling(steps, args.guidance, args.sampler) for steps in args.steps]
    board = run(args.out, args.model, samplings, options, command.strip())
    args.leaderboards.mkdir(parents=True, exist_ok=True)
    for suffix in ("json", "md", "csv"):
        (args.leaderboards / f"pocket-image.{suffix}").write_text((args.out / f"leaderboard.{suffix}").read_text())
    print(headline_markdown(board), end="")
    print(f"wrote {args.leaderboards}/pocket-image.{{md,json,csv}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
