"""The 2-D pocket diffusion world's calibration: the teacher at 1 to 50 DDIM steps against the world itself.

    .venv/bin/python bench/points_world.py

Builds `pocket:gaussians2d-teacher` into the user cache when it is missing (about three minutes on one thread),
samples 2,000 unconditional points per row (sampler seed 3) and scores them against 2,000 real points (seed 1)
with the world's metrics (`distillbench.benchmarks.sample_metrics`). It writes bench/results/points_world.json
and prints the Markdown table of docs/pocket-worlds.md ("The 2-D pocket diffusion world").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from distillbench.benchmarks import sample_metrics
from distillbench.core.provenance import machine, package_versions
from distillbench.kinds.diffusion.points import sample_points
from distillbench.pocket import gaussians2d

RESULTS = Path(__file__).parent / "results" / "points_world.json"
STEPS = (1, 2, 4, 8, 50)


def scores(real: np.ndarray, points: np.ndarray, world: gaussians2d.Mixture) -> dict[str, float]:
    means, weights = np.asarray(world.means), np.asarray(world.weights)
    precision, recall = sample_metrics.precision_recall(real, points)
    coverage = sample_metrics.mode_coverage(points, means, weights, world.std)
    return {"precision": precision, "recall": recall, "modes": coverage["modes"],
            "high_quality": coverage["high_quality"], "nll": sample_metrics.true_nll(points, means, weights, world.std),
            "sliced_w2": sample_metrics.sliced_wasserstein(real, points)}


def main() -> None:
    torch.set_num_threads(1)
    directory = gaussians2d.model_dir()
    model, scheduler, world = gaussians2d.load(directory)
    real, _ = world.sample(2000, seed=1)
    rows = {"the world (a second sample)": world.sample(2000, seed=2)[0]}
    for steps in STEPS:
        rows[f"teacher, {steps} step{'s' if steps > 1 else ''}"] = (
            sample_points(model, scheduler, 2000, steps, seed=3).numpy() * world.scale)
    results = {name: scores(real, points, world) for name, points in rows.items()}
    manifest = json.loads((directory / gaussians2d.MANIFEST).read_text())
    RESULTS.write_text(json.dumps({"machine": machine(), "packages": package_versions(),
                                   "teacher": {key: manifest[key] for key in ("spec", "spec_hash", "train_seconds")},
                                   "rows": results}, indent=1) + "\n")
    print("| sampler | precision | recall | modes covered | high quality | NLL (true density) | sliced W₂ |")
    print("|---|---|---|---|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['modes']:.3f} | "
              f"{row['high_quality']:.3f} | {row['nll']:.2f} | {row['sliced_w2']:.3f} |")


if __name__ == "__main__":
    main()
