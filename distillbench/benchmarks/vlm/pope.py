"""POPE scoring as the official evaluation script does it.

Source: AoiDragon/POPE, ``evaluate.py`` (Li et al., EMNLP 2023, arXiv:2305.10355).

* Parsing (`parse_yes_no`): keep the text before the first ``.`` (when there is one), delete commas,
  split on single spaces; the answer is "no" when one of the words is exactly ``No``, ``not`` or
  ``no``, else "yes". The test is case-sensitive and the split is on " " only, so "NO", "Not" and
  "no\\nthere" all parse as yes; anything without a negation word (a refusal too) counts as yes.
* Metrics with "yes" as the positive class: accuracy, precision = TP/(TP+FP), recall = TP/(TP+FN),
  F1, and the yes-ratio = the share of *predictions* that are yes (lmms-eval counts gold yes there).
* The COCO benchmark has three files, ``coco_pope_{random,popular,adversarial}.json`` (jsonl: one
  ``{"question_id", "image", "text", "label"}`` a line), scored separately; LLaVA-1.5 and later papers
  also report the mean over the three (`evaluate_splits` gives both).

Two deliberate differences from the script, which change no number on well-formed input: the script
pairs answers with labels by position (``zip``, silently truncating a short answer file, POPE issue
#17); here answers are matched by ``question_id`` when they carry one and a length mismatch is an
error. Where the script divides by zero (no yes predictions, no yes labels) the figure here is 0.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from distillbench.core.jsonl import read_jsonl
from distillbench.core.errors import UserInputError

SPLITS = ("random", "popular", "adversarial")
NEGATION_WORDS = ("No", "not", "no")
METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def parse_yes_no(text: str) -> str:
    """The official reading of one free-form answer: "yes" or "no"."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(word in NEGATION_WORDS for word in words) else "yes"


def score_item(answer: str, label: str) -> dict[str, int]:
    """Per-item numbers (0 or 1): ``correct`` and ``predicted_yes`` (its mean is the yes-ratio)."""
    predicted = parse_yes_no(answer)
    return {"correct": int(predicted == _gold(label)), "predicted_yes": int(predicted == "yes")}


def _gold(label: str) -> str:
    # The script maps "no" to negative and every other label to positive.
    return "no" if label == "no" else "yes"


def score(answers: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and yes-ratio (0..1) plus the confusion counts, for one split."""
    if len(answers) != len(labels):
        raise ValueError(f"{len(answers)} answers for {len(labels)} labels")
    if not labels:
        raise ValueError("no answers to score")
    predicted_yes = [parse_yes_no(answer) == "yes" for answer in answers]
    gold_yes = [_gold(label) == "yes" for label in labels]
    tp = sum(p and g for p, g in zip(predicted_yes, gold_yes))
    fp = sum(p and not g for p, g in zip(predicted_yes, gold_yes))
    tn = sum(not p and not g for p, g in zip(predicted_yes, gold_yes))
    fn = sum(not p and g for p, g in zip(predicted_yes, gold_yes))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / len(labels), "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": sum(predicted_yes) / len(predicted_yes), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def evaluate_splits(per_split: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> dict[str, dict[str, float]]:
    """`score` for each split (name → (answers, labels)), plus ``average``: the plain mean of each
    metric over the splits (LLaVA-1.5's reported POPE number is the average F1)."""
    if not per_split:
        raise ValueError("no splits to score")
    results = {name: score(answers, labels) for name, (answers, labels) in per_split.items()}
    results["average"] = {metric: sum(r[metric] for r in results.values()) / len(per_split) for metric in METRICS}
    return results


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """The official question file: one ``{"question_id", "image", "text", "label"}`` a line."""
    records = read_jsonl(path, ("question_id", "image", "text", "label"))
    for number, record in enumerate(records, start=1):
        if record["label"] not in ("yes", "no"):
            raise UserInputError(f"{path}: record {number}: label must be 'yes' or 'no', not {record['label']!r}")
    return records


def load_answers(path: str | Path) -> list[dict[str, Any]]:
    """A model's answers, one JSON object a line, the text under ``answer`` (the POPE README's
    ``{"question", "answer"}``) or ``text`` (LLaVA's ``{"question_id", "prompt", "text"}``)."""
    records = read_jsonl(path)
    for number, record in enumerate(records, start=1):
        if "answer" not in record and "text" not in record:
            raise UserInputError(f"{path}: record {number}: missing field 'answer' (or 'text')")
    return records


def align(questions: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(answer texts, labels) in question order: by ``question_id`` when every answer has one,
    else by position, which needs as many answers as questions."""
    texts = [answer.get("answer", answer.get("text")) for answer in answers]
    if all("question_id" in answer for answer in answers):
        by_id = {str(answer["question_id"]): text for answer, text in zip(answers, texts)}
        missing = [q["question_id"] for q in questions if str(q["question_id"]) not in by_id]
        if missing:
            raise UserInputError(f"{len(missing)} POPE questions have no answer (e.g. question_id {missing[0]})")
        return [by_id[str(q["question_id"])] for q in questions], [q["label"] for q in questions]
    if len(answers) != len(questions):
        raise UserInputError(f"{len(answers)} answers for {len(questions)} POPE questions; answers without "
                             "question_id are paired by position and must match one to one")
    return texts, [q["label"] for q in questions]


def split_files(folder: str | Path, dataset: str = "coco", splits: Iterable[str] = SPLITS) -> dict[str, Path]:
    """The official question files of `dataset` in `folder`: ``<dataset>_pope_<split>.json``."""
    files = {split: Path(folder) / f"{dataset}_pope_{split}.json" for split in splits}
    for path in files.values():
        if not path.is_file():
            raise UserInputError(f"{path}: file not found")
    return files
