"""One pocket training cell in fp32 and in bf16 on the device torch finds (a lent GPU).

    .venv/bin/python bench/gpu_cell.py [--recipe recipes/bench/gpu-cell.yaml]

Runs the recipe twice into temporary directories, identical but for `budget.precision`, and
records for each: training tokens/s, training seconds, peak memory, evaluation seconds and the
pocket-math accuracy, with bf16's ratios against fp32 measured in the same run. Writes
bench/results/gpu_cell.json (with the machine). On a CPU-only machine it runs too (slowly) and
says so: the figures are then CPU figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from distillbench.core.provenance import machine, package_versions
from distillbench.core.recipe import load_recipe
from distillbench.cli.main import run_recipe

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "gpu_cell.json"


def run(recipe_path: Path, precision: str) -> dict:
    recipe = load_recipe(recipe_path)
    recipe = recipe.model_copy(update={"budget": recipe.budget.model_copy(update={"precision": precision})})
    with tempfile.TemporaryDirectory(prefix=f"distillbench-gpu-{precision}-") as out:
        board = run_recipe(recipe, Path(out))
    row = next(r for r in board["rows"] if r["kind"] == "method")
    cost = row["cost"]
    return {"precision": precision, "train_tokens_per_second": cost.get("train_tokens_per_second"),
            "train_seconds": cost.get("train_seconds"), "peak_memory_mb": cost.get("peak_memory_mb"),
            "eval_seconds": cost.get("eval_seconds"),
            "accuracy": row["metrics"].get("pocket-math/accuracy", {}).get("mean")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "bench" / "gpu-cell.yaml")
    args = parser.parse_args()
    runs = {precision: run(args.recipe, precision) for precision in ("fp32", "bf16")}
    fp32, bf16 = runs["fp32"], runs["bf16"]
    result = {"benchmark": "gpu_cell", "recipe": str(args.recipe.relative_to(ROOT)), "runs": runs,
              "bf16_vs_fp32": {"throughput_ratio": round(bf16["train_tokens_per_second"] / fp32["train_tokens_per_second"], 3),
                               "peak_memory_ratio": round(bf16["peak_memory_mb"] / max(fp32["peak_memory_mb"], 1e-9), 3)},
              "machine": machine(), "packages": package_versions()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    for precision, figures in runs.items():
        print(f"{precision}: {figures}")
    print(f"bf16 / fp32: {result['bf16_vs_fp32']}")


if __name__ == "__main__":
    main()
