"""Does DisWOT's training-free score rank pocket students the way distillation does?

For a small space of pocket-shapes student CNNs (widths and depths around ``shapes-cnn-small``), this
computes DisWOT's score of each candidate against the teacher architecture (both Gaussian-initialised,
one batch of `search_batch_size` training images, `diswot.score_candidate`), then distils each candidate
from the trained zoo teacher with a short KD run (the harness's train loop, method `diswot` = Hinton KD)
and measures its top-1 on the test split. The report gives Spearman's ρ (scipy.stats.spearmanr)
between score and distilled accuracy, and, as a yardstick any search score should beat, ρ between the
candidates' parameter counts and their accuracy.

    python -m distillbench.pocket.diswot_report --out runs/diswot/report.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from distillbench.kinds.image_classifier.classifiers import ClassifierSpec, ImageClassifier, initialised, load_classifier
from distillbench.kinds.image_classifier.images import ImageBatching
from distillbench.core.recipe import Budget
from distillbench.core.train import train
from distillbench.methods.classify.diswot import DisWOT, score_candidate

from distillbench.pocket.shapes_classifiers import pocket_dataset, test_accuracy
from distillbench.pocket.shapes_cnn import ShapesCNN

# Stage widths of the candidate students (shapes-cnn-small is (8,), (16,), (32,)).
CANDIDATES: tuple[tuple[tuple[int, ...], ...], ...] = (
    ((4,), (8,), (8,)), ((4,), (8,), (16,)), ((8,), (8,), (16,)), ((8,), (16,), (32,)), ((8,), (16, 16), (32,)),
    ((16,), (16,), (32,)), ((8, 8), (16,), (32, 32)), ((16,), (32,), (64,)),
)
TEACHER = "pocket:shapes-teacher-many"


def candidate(stages: tuple[tuple[int, ...], ...], num_classes: int, seed: int) -> ImageClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = ShapesCNN(stages, num_classes)
    return ImageClassifier(network, ClassifierSpec("shapes-cnn", num_classes, extra={"stages": stages}), "fc")


def report(steps: int, train_size: int, test_size: int, seed: int, work: Path, teacher_ref: str = TEACHER) -> dict:
    method = DisWOT()
    data = pocket_dataset("pocket:shapes-many", "train", train_size)
    search = torch.arange(method.search_batch_size) % len(data)
    images, labels = data.batch(search.tolist()), data.labels[search]
    teacher = load_classifier(teacher_ref)
    budget = Budget(steps=steps, batch_size=64, learning_rate=2e-3, weight_decay=5e-4, warmup_steps=steps // 10)
    rows = []
    for stages in CANDIDATES:
        # The score reads fresh Gaussian-initialised copies (the teacher's architecture, not its weights).
        score = score_candidate(initialised("shapes-cnn", data.num_classes, seed),
                                candidate(stages, data.num_classes, seed), images, labels, seed)
        student = candidate(stages, data.num_classes, seed)
        started = time.perf_counter()
        folder = work / "x".join("-".join(map(str, stage)) for stage in stages)
        train(method, student, data, budget, seed, folder / "checkpoint", frozen={"teacher": teacher},
              batching=ImageBatching(data, "flip", budget.batch_size), description=f"diswot {folder.name}")
        shutil.rmtree(folder, ignore_errors=True)
        rows.append({"stages": [list(s) for s in stages], "parameters": sum(p.numel() for p in student.parameters()),
                     "diswot_score": score, "distilled_top1": test_accuracy(student, "many", test_size),
                     "train_seconds": round(time.perf_counter() - started, 1)})
    accuracy = [r["distilled_top1"] for r in rows]
    by_score = spearmanr([r["diswot_score"] for r in rows], accuracy)
    by_size = spearmanr([r["parameters"] for r in rows], accuracy)
    return {"teacher": teacher_ref, "kd": {"temperature": method.temperature, "ce_weight": method.ce_weight,
                                       "kd_weight": method.kd_weight},
            "budget": budget.model_dump(), "train_size": train_size, "test_size": test_size, "seed": seed,
            "candidates": rows,
            "spearman_score_vs_top1": {"rho": float(by_score.statistic), "p": float(by_score.pvalue)},
            "spearman_parameters_vs_top1": {"rho": float(by_size.statistic), "p": float(by_size.pvalue)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.pocket.diswot_report",
                                     description="Rank correlation of DisWOT's score with distilled top-1 on pocket-shapes.")
    parser.add_argument("--out", type=Path, default=Path("runs/diswot/report.json"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = report(args.steps, args.train_size, args.test_size, args.seed, args.out.parent / "work")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("spearman_score_vs_top1", "spearman_parameters_vs_top1")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
