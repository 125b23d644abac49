"""Distiller's AutoDistiller as a pocket report: do the outcomes of KD pipelines on some tasks recommend the
pipeline for a new one?

He et al., "Distiller: A Systematic Study of Model Distillation Methods in Natural Language Processing"
(arXiv:2109.11105), search a space of KD pipelines (the intermediate objective, MI-α's α, ...) over many
NLP tasks and train AutoDistiller, a model that predicts from a task's meta-features which pipeline will
do best. Their search results are not available here, so this report makes a small search of its own
and asks it the same question. For each task setting (a pocket-shapes task × a training-set size) every
pipeline of the space distils the small CNN student from the task's zoo teacher (the harness's train
loop, the budget of recipes/pocket/classify.yaml), and its gain in test top-1 over the student trained
alone (``ce``) is measured. Then, leaving each setting out, the pipeline recommended for it from the
others (the best pipeline of the nearest setting by meta-features: log classes and log training size,
standardised) is compared with the best pipeline in hindsight and with always using Hinton KD.
AutoDistiller's own predictor (a model trained on the paper's search) is not reproduced: nearest-setting
is the simplest recommender the same data supports, and with six settings a learned one would overfit.

    python -m distillbench.pocket.autodistiller_report      # seeds 0 1 2; writes leaderboards/pocket-autodistiller.{json,md}

Each trained cell's result is kept in <out>/cells.json as it finishes, so an interrupted report resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from distillbench.core.recipe import Budget, validate_options
from distillbench.core.registry import METHODS
from distillbench.core.train import train
from distillbench.kinds.image_classifier.classifiers import initialised, load_classifier
from distillbench.kinds.image_classifier.images import ImageBatching
from distillbench.pocket.shapes_classifiers import TASKS as CLASSES, pocket_dataset, test_accuracy
from distillbench.pocket.vlm_board import ROOT

TASKS = ("many", "shape", "binary")
TRAIN_SIZES = (250, 1000)
# name -> (registered method, its options); "ce" is the baseline every gain is measured against.
PIPELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "ce": ("ce", {}),
    "hinton-kd": ("hinton-kd", {}),
    "distiller-mi[alpha=0]": ("distiller-mi", {"alpha": 0.0}),
    "distiller-mi[alpha=0.5]": ("distiller-mi", {"alpha": 0.5}),
    "distiller-mi[alpha=1]": ("distiller-mi", {"alpha": 1.0}),
}
DEFAULT_PIPELINE = "hinton-kd"
STUDENT = "shapes-cnn-small"


def loss_version(pipeline: str) -> int:
    """The pipeline's method's loss version: cells trained with an older loss are trained again."""
    return METHODS.get(PIPELINES[pipeline][0]).loss_version


def _cell_key(cell: dict) -> dict:
    """What identifies a stored cell; cells stored before loss versions existed were trained with version 1."""
    return {"task": cell["task"], "train_size": cell["train_size"], "pipeline": cell["pipeline"], "seed": cell["seed"],
            "loss_version": cell.get("loss_version", 1)}


def budget(steps: int):
    """recipes/pocket/classify.yaml's budget, scaled to `steps` (the step decays at the same fractions)."""
    return Budget(steps=steps, batch_size=64, optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
                  lr_schedule="multistep", lr_decay=0.1,
                  lr_milestones=sorted({max(1, round(steps * fraction)) for fraction in (0.625, 0.75, 0.875)}
                                       - {steps}),  # a milestone at the last step would never apply (tiny runs)
                  max_grad_norm=None)


def meta_features(task: str, train_size: int) -> list[float]:
    return [math.log(len(CLASSES[task])), math.log(train_size)]


def train_cell(task: str, train_size: int, pipeline: str, steps: int, seed: int, test_size: int, work: Path) -> dict:
    """Distil (or, for ce, train alone) the student on one setting with one pipeline; its test top-1."""
    name, options = PIPELINES[pipeline]
    method, problems = validate_options(METHODS.get(name), options, pipeline)
    assert not problems, problems
    data = pocket_dataset(f"pocket:shapes-{task}", "train", train_size)
    student = initialised(STUDENT, data.num_classes, seed)
    frozen = {"teacher": load_classifier(f"pocket:shapes-teacher-{task}")} if method.uses_teacher else {}
    plan = budget(steps)
    folder = work / f"{task}-{train_size}-{pipeline}-{seed}"
    started = time.perf_counter()
    result = train(method, student, data, plan, seed, folder / "checkpoint", frozen=frozen,
                   batching=ImageBatching(data, "flip", plan.batch_size), description=f"{task}/{train_size} {pipeline}")
    shutil.rmtree(folder, ignore_errors=True)
    return {"task": task, "train_size": train_size, "pipeline": pipeline, "seed": seed,
            "top1": test_accuracy(result.model, task, test_size),
            "train_seconds": round(time.perf_counter() - started, 1)}


def recommend(gains: dict[str, dict[str, float]], features: dict[str, list[float]], left_out: str) -> str:
    """The best pipeline of the setting nearest to `left_out` (standardised Euclidean distance over the other
    settings' meta-features); `gains` maps setting -> pipeline -> gain over ce."""
    others = [s for s in gains if s != left_out]
    matrix = torch.tensor([features[s] for s in gains], dtype=torch.float64)
    scale = matrix.std(0).clamp(min=1e-12)
    target = torch.tensor(features[left_out], dtype=torch.float64)
    nearest = min(others, key=lambda s: float((((torch.tensor(features[s], dtype=torch.float64) - target) / scale) ** 2)
                                                .sum()))
    return max(gains[nearest], key=gains[nearest].get)


def summarise(cells: list[dict]) -> dict:
    """Gains over ce per setting and pipeline (seeds averaged), and the leave-one-setting-out recommendations."""
    top1: dict[str, dict[str, list[float]]] = {}
    for cell in cells:
        top1.setdefault(f"{cell['task']}/{cell['train_size']}", {}).setdefault(cell["pipeline"], []).append(cell["top1"])
    means = {s: {p: sum(v) / len(v) for p, v in by.items()} for s, by in top1.items()}
    gains = {s: {p: round(m - by["ce"], 4) for p, m in by.items() if p != "ce"} for s, by in means.items()}
    features = {s: meta_features(s.split("/")[0], int(s.split("/")[1])) for s in gains}
    rows = []
    for setting in gains:
        chosen = recommend(gains, features, setting)
        best = max(gains[setting], key=gains[setting].get)
        rows.append({"setting": setting, "ce_top1": round(means[setting]["ce"], 4), "gains": gains[setting],
                     "recommended": chosen, "recommended_gain": gains[setting][chosen], "best": best,
                     "best_gain": gains[setting][best], "default_gain": gains[setting][DEFAULT_PIPELINE]})
    count = len(rows)
    return {"settings": rows,
            "mean_regret_recommended": round(sum(r["best_gain"] - r["recommended_gain"] for r in rows) / count, 4),
            "mean_regret_default": round(sum(r["best_gain"] - r["default_gain"] for r in rows) / count, 4),
            "recommended_is_best": sum(r["recommended"] == r["best"] for r in rows), "settings_count": count}


def per_seed_regrets(cells: list[dict]) -> dict[str, dict]:
    """The leave-one-setting-out comparison on each seed's cells alone: how much the seeds agree."""
    fields = ("mean_regret_recommended", "mean_regret_default", "recommended_is_best")
    seeds = sorted({cell["seed"] for cell in cells})
    return {str(seed): {key: value for key, value in summarise([c for c in cells if c["seed"] == seed]).items()
                        if key in fields} for seed in seeds} if len(seeds) > 1 else {}


def markdown(report: dict, command: str) -> str:
    pipelines = [p for p in report["pipelines"] if p != "ce"]
    lines = ["# Pocket AutoDistiller report", "", f"Generated by `{command}`", "",
             "Gain in test top-1 over the student trained alone (ce), per task setting and pipeline; the pipeline "
             "recommended from the other settings (best of the nearest setting by log classes and log training "
             "size), the best in hindsight, and Hinton KD as the fixed default.", "",
             "| setting | ce top-1 | " + " | ".join(pipelines) + " | recommended | regret | best | default regret |",
             "|" + "---|" * (len(pipelines) + 6)]
    for row in report["settings"]:
        gains = " | ".join(f"{row['gains'][p]:+.3f}" for p in pipelines)
        lines.append(f"| {row['setting']} | {row['ce_top1']:.3f} | {gains} | {row['recommended']} | "
                     f"{row['best_gain'] - row['recommended_gain']:.3f} | {row['best']} | "
                     f"{row['best_gain'] - row['default_gain']:.3f} |")
    lines += ["", f"Mean regret: recommended {report['mean_regret_recommended']:.4f}, always {DEFAULT_PIPELINE} "
              f"{report['mean_regret_default']:.4f}; the recommendation is the best pipeline in "
              f"{report['recommended_is_best']} of {report['settings_count']} settings. Seeds: "
              f"{', '.join(map(str, report['seeds']))}; {report['steps']} steps; test images: {report['test_size']}."]
    if report.get("per_seed"):
        lines += ["", "Each seed alone (the same comparison on that seed's cells):", "",
                  f"| seed | recommended regret | always {DEFAULT_PIPELINE} regret | recommendation is the best |",
                  "|---|---|---|---|"]
        lines += [f"| {seed} | {row['mean_regret_recommended']:.4f} | {row['mean_regret_default']:.4f} | "
                  f"{row['recommended_is_best']} of {report['settings_count']} |" for seed, row in report["per_seed"].items()]
    return "\n".join(lines) + "\n"


def run(out: Path, steps: int, seeds: list[int], test_size: int, tasks=TASKS, train_sizes=TRAIN_SIZES,
        pipelines=tuple(PIPELINES)) -> dict:
    store = out / "cells.json"
    cells = json.loads(store.read_text()) if store.exists() else []
    for task in tasks:
        for size in train_sizes:
            for pipeline in pipelines:
                for seed in seeds:
                    key = {"task": task, "train_size": size, "pipeline": pipeline, "seed": seed,
                           "loss_version": loss_version(pipeline)}
                    done = [c for c in cells if _cell_key(c) == key and c.get("steps") == steps
                            and c.get("test_size") == test_size]
                    if done:
                        continue
                    cell = train_cell(task, size, pipeline, steps, seed, test_size, out / "work")
                    cells.append({**cell, "steps": steps, "test_size": test_size,
                                  "loss_version": loss_version(pipeline)})
                    out.mkdir(parents=True, exist_ok=True)
                    store.write_text(json.dumps(cells, indent=1) + "\n")
    chosen = [c for c in cells if c["steps"] == steps and c["test_size"] == test_size and c["seed"] in seeds
              and c["task"] in tasks and c["train_size"] in train_sizes and c["pipeline"] in pipelines
              and _cell_key(c)["loss_version"] == loss_version(c["pipeline"])]
    return {**summarise(chosen), "per_seed": per_seed_regrets(chosen), "seeds": seeds, "steps": steps,
            "test_size": test_size, "student": STUDENT,
            "budget": budget(steps).model_dump(mode="json"), "pipelines": {p: PIPELINES[p] for p in pipelines},
            "cells": chosen}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.pocket.autodistiller_report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "autodistiller", help="cells.json and work files")
    parser.add_argument("--leaderboards", type=Path, default=ROOT / "leaderboards")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-size", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # two shared cores: one thread is faster for these small CNNs
    report = run(args.out, args.steps, args.seeds, args.test_size)
    command = "python -m distillbench.pocket.autodistiller_report " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    args.leaderboards.mkdir(parents=True, exist_ok=True)
    (args.leaderboards / "pocket-autodistiller.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.leaderboards / "pocket-autodistiller.md").write_text(markdown(report, command.strip()))
    print(markdown(report, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
