"""`distillbench score BENCHMARK --predictions FILE`: score predictions made elsewhere, without a model."""

from __future__ import annotations

from pathlib import Path

from distillbench.cli.tables import add_plain_row, new_table, print_wide
from distillbench.core.score_only import parse_dataset_options, score_predictions, write_results


def score_command(args) -> int:
    options = parse_dataset_options(args.dataset)
    if args.grader:
        options["grader"] = args.grader
    results = score_predictions(args.benchmark, args.predictions, options)
    table = new_table(f"{args.benchmark} on {args.predictions}", ("metric", "mean", "95% CI", "n"))
    for name, metric in results["metrics"].items():
        interval = "none" if metric["ci95"] is None else "[{:.4f}, {:.4f}]".format(*metric["ci95"])
        add_plain_row(table, name, f"{metric['mean']:.4f}", interval, str(metric["n"]))
    print_wide(table)
    if args.out:
        print(f"results: {write_results(results, Path(args.out))}")
    return 0
