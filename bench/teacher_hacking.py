"""Teacher hacking on the pocket world: the student's distance to the oracle (golden) and to the
teacher (proxy) over training, with offline versus online teacher data (Tiapkin et al. 2025).

    .venv/bin/python bench/teacher_hacking.py [--steps 300]

Runs the `teacher-hacking` method both ways from pocket:student-init with pocket:teacher-sft as
the teacher (one seed) in a temporary run directory, reads each cell's train_log.jsonl and
writes bench/results/teacher_hacking.json: both curves, where the golden distance was lowest,
and whether it rose again afterwards (the paper's signature of teacher hacking).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from distillbench.core.provenance import machine, package_versions
from distillbench.core.recipe import load_recipe
from distillbench.core.runner import Runner

RESULTS = Path(__file__).parent / "results" / "teacher_hacking.json"
RECIPE = """
name: teacher-hacking
kind: text-lm
teacher: pocket:teacher-sft
student: pocket:student-init
data: {{source: "pocket:math", size: 4000}}
budget: {{steps: {steps}, batch_size: 32, learning_rate: 3.0e-3, max_length: 256, warmup_steps: 30}}
seeds: [0]
methods:
  - {{name: teacher-hacking, data: offline, every: 25}}
  - {{name: teacher-hacking, data: online, every: 25}}
benchmarks: [{{name: pocket-math, n: 200}}]
"""


def curve(log: Path) -> list[dict]:
    return [{"step": entry["step"], **entry["measures"]} for entry in map(json.loads, log.read_text().splitlines())
            if "measures" in entry]


def summary(points: list[dict]) -> dict:
    best = min(points, key=lambda p: p["golden_distance"])
    final = points[-1]
    return {"curve": points, "golden_min": best, "golden_final": final["golden_distance"],
            "proxy_final": final["proxy_distance"],
            "golden_rose_after_min": final["golden_distance"] > best["golden_distance"],
            "proxy_fell_throughout": all(b["proxy_distance"] <= a["proxy_distance"] for a, b in zip(points, points[1:]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="distillbench-teacher-hacking-"))
    (out / "recipe.yaml").write_text(RECIPE.format(steps=args.steps))
    Runner(load_recipe(out / "recipe.yaml"), out).run()
    result = {"benchmark": "teacher_hacking", "steps": args.steps, "machine": machine(), "packages": package_versions()}
    for mode in ("offline", "online"):
        (log,) = (out / "cells").glob(f"teacher-hacking_data_{mode}_*/train_log.jsonl")
        result[mode] = summary(curve(log))
    result["online_ends_closer_to_oracle"] = result["online"]["golden_final"] < result["offline"]["golden_final"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    for mode in ("offline", "online"):
        s = result[mode]
        print(f"{mode:8s} golden min {s['golden_min']['golden_distance']:.4f} at step {s['golden_min']['step']}, "
              f"final {s['golden_final']:.4f}; proxy final {s['proxy_final']:.4f}")


if __name__ == "__main__":
    main()
