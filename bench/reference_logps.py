"""DPO's fixed reference scored once per training sequence, against once per step.

    .venv/bin/python bench/reference_logps.py [--steps 60] [--repeats 2]

Trains the default recipe's `dpo` cell (pocket:student-init against itself as reference, the zoo's
preference pairs, the default recipe's budget) for `--steps` steps two ways, alternately,
`--repeats` times each (the minimum is kept, so a busy machine penalises neither side more):

* ``per_step`` (the baseline): the reference scores chosen and rejected of every step's pairs;
* ``precomputed``: the reference scores every pair once before the first step
  (`kinds/text_lm/topk_cache.py` `ReferenceLogps`), what the harness does when the run covers its data.

The precomputed run pays its one pass up front, so its advantage grows with the steps: at `--steps`
≥ pairs / batch size it has done all the reference work a run of any length will need. Also
checks that both ways end at nearly the same weights. Writes bench/results/reference_logps.json
with the seconds, the ratio, the reference passes and the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from distillbench.kinds.text_lm.models import load_causal_lm
from distillbench.core.provenance import machine, package_versions
from distillbench.core.recipe import load_recipe
from distillbench.core.train import train
from distillbench.kinds.text_lm import batching as batching_module
from distillbench.kinds.text_lm.data import load_preferences, tokenize_preferences
from distillbench.methods.llm.dpo import DPO

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "reference_logps.json"


def run(examples, tokenizer, budget, precompute: bool) -> tuple[float, int, dict]:
    original = batching_module.reference_is_fixed
    if not precompute:
        batching_module.reference_is_fixed = lambda *args: False
    try:
        student, _ = load_causal_lm("pocket:student-init")
        reference, _ = load_causal_lm("pocket:student-init")
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            result = train(DPO(), student, examples, budget, seed=0, checkpoint_dir=Path(scratch),
                           batching=batching_module.TokenBatching(tokenizer), frozen={"reference": reference})
            seconds = time.perf_counter() - started
    finally:
        batching_module.reference_is_fixed = original
    return seconds, result.teacher_forwards, student.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    recipe = load_recipe(ROOT / "recipes" / "pocket" / "llm.yaml")
    budget = recipe.budget.model_copy(update={"steps": args.steps, "checkpoint_every": 10 ** 9})
    _, tokenizer = load_causal_lm("pocket:student-init")
    examples = tokenize_preferences(tokenizer, load_preferences(recipe.data.preferences), budget.max_length)
    # Covering the data once is the precomputation's condition; below it the harness scores per step.
    budget = budget.model_copy(update={"steps": max(args.steps, -(-len(examples) // budget.batch_size))})
    times: dict[str, list[float]] = {"per_step": [], "precomputed": []}
    passes, weights = {}, {}
    for _ in range(args.repeats):
        for name in times:
            seconds, passes[name], weights[name] = run(examples, tokenizer, budget, name == "precomputed")
            times[name].append(seconds)
    drift = max(float((weights["per_step"][k] - weights["precomputed"][k]).abs().max()) for k in weights["per_step"])
    best = {name: min(values) for name, values in times.items()}
    result = {"benchmark": "reference_logps", "steps": budget.steps, "batch_size": budget.batch_size,
              "gradient_accumulation": budget.gradient_accumulation, "pairs": len(examples),
              "seconds": {name: round(value, 2) for name, value in best.items()},
              "all_seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
              "time_ratio_vs_per_step": round(best["precomputed"] / best["per_step"], 3),
              "reference_passes": passes, "max_weight_difference": drift,
              "machine": machine(), "packages": package_versions(),
              "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'way':12s} {'seconds':>8s} {'reference passes':>17s}")
    for name in times:
        print(f"{name:12s} {best[name]:8.1f} {passes[name]:17d}")
    print(f"precomputed / per_step time: {result['time_ratio_vs_per_step']:.2f}; max weight difference {drift:.2e}")


if __name__ == "__main__":
    main()
