"""Distiller's AutoDistiller as a pocket report (``autodistiller``): do the outcomes of KD pipelines on some
tasks recommend the pipeline for a new one?

He et al., "Distiller: A Systematic Study of Model Distillation Methods in Natural Language Processing"
(arXiv:2109.11105), search a space of KD pipelines (the intermediate objective, MI-α's α, ...) over many
NLP tasks and train AutoDistiller, a model that predicts from a task's meta-features which pipeline will
do best. Their search results are not available here, so this report makes a small search of its own
and asks it the same question. For each task setting (a pocket-shapes task × a training-set size)
recipes/pocket/autodistiller.yaml, switched to that task and size, distils the small CNN student from the
task's zoo teacher with every pipeline of the space (its methods; the budget of recipes/pocket/classify.yaml),
and each pipeline's gain in test top-1 over the student trained alone (``ce``) is read from the run's
store. Then, leaving each setting out, the pipeline recommended for it from the others (the best pipeline
of the nearest setting by meta-features: log classes and log training size, standardised) is compared with
the best pipeline in hindsight and with always using Hinton KD. AutoDistiller's own predictor (a model
trained on the paper's search) is not reproduced: nearest-setting is the simplest recommender the same data
supports, and with six settings a learned one would overfit.

    distillbench report autodistiller --out leaderboards/pocket-autodistiller.json   # and .md beside it

Each setting is an ordinary run (runs/pocket-autodistiller-<task>-<size>/, with its leaderboard): cells are
keyed and resumable, so an interrupted report resumes, and a method whose loss changed trains again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from distillbench.leaderboards.reports import Report, Run, register_report, vary_recipe
from distillbench.pocket.shapes_classifiers import TASKS as CLASSES

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "pocket" / "autodistiller.yaml"
TASKS = ("many", "shape", "binary")
TRAIN_SIZES = (250, 1000)
BASELINE = "ce"  # the pipeline every gain is measured against (a row label of the recipe)
DEFAULT_PIPELINE = "hinton-kd"


@register_report("autodistiller", summary="regret of a nearest-setting KD pipeline recommender (Distiller's "
                 "AutoDistiller question) over six pocket task settings")
class AutoDistillerReport(Report):
    threads = 1  # as the committed result was made; on two shared cores one thread is also faster for these CNNs

    def recipes(self):
        return [vary_recipe(RECIPE, lambda raw, task=task, size=size: setting(raw, task, size))
                for task in TASKS for size in TRAIN_SIZES]

    def summarise(self, runs: list[Run]) -> dict[str, Any]:
        cells = [cell for run in runs for cell in setting_cells(run)]
        recipe = runs[0].recipe
        return {**summarise(cells), "per_seed": per_seed_regrets(cells), "seeds": recipe.seeds,
                "steps": recipe.budget.steps, "test_size": cells[0]["test_size"],
                "student": recipe.student, "budget": recipe.budget.model_dump(mode="json"),
                "pipelines": {spec.label: [spec.name, spec.params] for spec in recipe.methods}, "cells": cells}

    def markdown(self, result: dict[str, Any]) -> str:
        return markdown(result)


def setting(raw: dict[str, Any], task: str, size: int) -> dict[str, Any]:
    """The base recipe's YAML switched to a task (teacher, training data, test set) and a training-set size."""
    source = f"pocket:shapes-{task}"
    benchmarks = [{**bench, "dataset": source} for bench in raw["benchmarks"]]
    return {**raw, "name": f"{raw['name']}-{task}-{size}", "teacher": f"pocket:shapes-teacher-{task}",
            "data": {**raw["data"], "source": source, "size": size}, "benchmarks": benchmarks}


def setting_cells(run: Run) -> list[dict[str, Any]]:
    """The run's method cells as the report's cells: setting, pipeline (the row label), seed, stored top-1 (and
    the number of test images it is over)."""
    task, size = run.recipe.data.source.removeprefix("pocket:shapes-"), run.recipe.data.size
    benchmark = run.plan.benchmarks[0].name
    return [{"task": task, "train_size": size, "pipeline": cell["label"], "seed": cell["seed"],
             "top1": round(cell["metrics"][f"{benchmark}/accuracy"]["mean"], 4),
             "test_size": cell["metrics"][f"{benchmark}/accuracy"]["n"],
             "train_seconds": round(cell["cost"].get("train_seconds", 0.0), 1), "cell": cell["cell"]}
            for cell in run.cells() if cell["kind"] == "method"]


def meta_features(task: str, train_size: int) -> list[float]:
    return [math.log(len(CLASSES[task])), math.log(train_size)]


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
    """Gains over the baseline (ce) per setting and pipeline (seeds averaged), and the leave-one-setting-out recommendations."""
    top1: dict[str, dict[str, list[float]]] = {}
    for cell in cells:
        top1.setdefault(f"{cell['task']}/{cell['train_size']}", {}).setdefault(cell["pipeline"], []).append(cell["top1"])
    means = {s: {p: sum(v) / len(v) for p, v in by.items()} for s, by in top1.items()}
    gains = {s: {p: round(m - by[BASELINE], 4) for p, m in by.items() if p != BASELINE} for s, by in means.items()}
    features = {s: meta_features(s.split("/")[0], int(s.split("/")[1])) for s in gains}
    rows = []
    for setting in gains:
        chosen = recommend(gains, features, setting)
        best = max(gains[setting], key=gains[setting].get)
        rows.append({"setting": setting, "ce_top1": round(means[setting][BASELINE], 4), "gains": gains[setting],
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


def markdown(report: dict) -> str:
    pipelines = [p for p in report["pipelines"] if p != BASELINE]
    lines = ["# Pocket AutoDistiller report", "",
             "Generated by `distillbench report autodistiller` (recipes/pocket/autodistiller.yaml, run once per task "
             "setting)", "",
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
