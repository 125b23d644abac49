"""Does DisWOT's training-free score rank pocket students the way distillation does? (the ``diswot`` report)

For a small space of pocket-shapes student CNNs (stage widths around ``shapes-cnn-small``, registered as
architectures: `shapes_cnn.SEARCH_SPACE`), this computes DisWOT's score of each candidate against the
teacher's architecture (both Gaussian-initialised, one batch of `search_batch_size` training images,
`diswot.score_candidate`); each candidate is distilled from the trained zoo teacher by
recipes/pocket/diswot.yaml with its student replaced (a short KD run, method ``diswot`` = Hinton KD), and
its top-1 on the test split is read from that run's store. The report gives Spearman's ρ
(scipy.stats.spearmanr) between score and distilled accuracy and, as a yardstick any search score should
beat, ρ between the candidates' parameter counts and their accuracy.

    distillbench report diswot --out leaderboards/pocket-diswot.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from distillbench.core.errors import UserInputError
from distillbench.core.models import parse_model_ref
from distillbench.kinds.image_classifier.classifiers import classifier_spec, initialised
from distillbench.kinds.image_classifier.images import load_image_dataset
from distillbench.methods.classify.diswot import score_candidate
from distillbench.leaderboards.reports import Report, Run, register_report, vary_recipe
from distillbench.pocket.shapes_cnn import SEARCH_SPACE

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "pocket" / "diswot.yaml"
CANDIDATES: tuple[str, ...] = tuple(SEARCH_SPACE)  # architecture names, the order of the report's rows


@register_report("diswot", summary="Spearman ρ of DisWOT's training-free score against the distilled top-1 of "
                 "eight pocket CNN students")
class DisWOTReport(Report):
    threads = 1  # as the committed result was made; on two shared cores one thread is also faster for these CNNs

    def recipes(self):
        return [vary_recipe(RECIPE, lambda raw, name=name: {**raw, "name": f"{raw['name']}-{name}",
                                                            "student": f"arch:{name}"})
                for name in CANDIDATES]

    def summarise(self, runs: list[Run]) -> dict[str, Any]:
        from scipy.stats import spearmanr

        rows = [candidate_row(run) for run in runs]
        accuracy = [row["distilled_top1"] for row in rows]
        by_score = spearmanr([row["diswot_score"] for row in rows], accuracy)
        by_size = spearmanr([row["parameters"] for row in rows], accuracy)
        recipe, (cell, stored) = runs[0].recipe, distilled(runs[0])
        return {"teacher": recipe.teacher, "kd": {"temperature": cell.method.temperature,
                                                  "ce_weight": cell.method.ce_weight,
                                                  "kd_weight": cell.method.kd_weight},
                "budget": recipe.budget.model_dump(), "train_size": recipe.data.size, "test_size": stored["top1"]["n"],
                "seed": cell.seed, "candidates": rows,
                "spearman_score_vs_top1": {"rho": float(by_score.statistic), "p": float(by_score.pvalue)},
                "spearman_parameters_vs_top1": {"rho": float(by_size.statistic), "p": float(by_size.pvalue)}}


def distilled(run: Run) -> tuple[Any, dict[str, Any]]:
    """(the plan's one method cell, what the store holds of it, with "top1" its top-1 summary): the report
    distils each candidate once."""
    cells = [cell for cell in run.plan.cells if cell.kind == "method"]
    if len(cells) != 1:
        raise UserInputError(f"report diswot: {run.recipe.name} has {len(cells)} method cells; each candidate's "
                             "recipe needs one method and one seed")
    stored = next(stored for stored in run.cells() if stored["cell"] == cells[0].key)
    return cells[0], {**stored, "top1": stored["metrics"][f"{run.plan.benchmarks[0].name}/accuracy"]}


def candidate_row(run: Run) -> dict[str, Any]:
    """A candidate's DisWOT score (computed here: it needs no training), parameters and stored top-1."""
    recipe = run.recipe
    cell, stored = distilled(run)
    architecture = parse_model_ref(recipe.student).name
    data = load_image_dataset(recipe.data.source, recipe.data.split, recipe.data.size)
    search = torch.arange(cell.method.search_batch_size) % len(data)
    images, labels = data.batch(search.tolist()), data.labels[search]
    # The score reads fresh Gaussian-initialised networks: the teacher's architecture, not its weights.
    teacher = initialised(classifier_spec(recipe.teacher).architecture, data.num_classes, cell.seed)
    student = initialised(architecture, data.num_classes, cell.seed)
    parameters = sum(p.numel() for p in student.parameters())
    return {"architecture": architecture, "stages": [list(stage) for stage in SEARCH_SPACE.get(architecture, ())],
            "parameters": parameters, "diswot_score": score_candidate(teacher, student, images, labels, cell.seed),
            "distilled_top1": round(stored["top1"]["mean"], 4),
            "train_seconds": round(stored["cost"].get("train_seconds", 0.0), 1)}
