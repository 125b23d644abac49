"""VideoHallucer (Wang et al., 2024, arXiv:2406.16338) scoring as its evaluation scripts do it.

Source: patrick-tssn/VideoHallucer, ``evaluations/evaluation_utils.py`` (``evaluate``, ``cal_score``),
``evaluations/evaluation.py`` (the overall score) and ``evaluations/evaluation_bias.py`` (yes/no bias).

Each item is a pair: a basic question whose answer is "yes" and a hallucinated question whose answer
is "no", each asked with ``"\\nAnswer the question using 'yes' or 'no'."`` appended (`prompt`).

* A prediction hits when ``re.search(r"\\b(" + answer + r")\\b", prediction, re.IGNORECASE)`` finds the
  gold word anywhere in it (`hit`): an output holding both "yes" and "no" hits either question.
* Per category: ``basic_accuracy``, ``halluc_accuracy`` and ``accuracy``, the share of pairs with
  both hits (the leaderboard's number).
* Overall: the plain mean of each figure over the five categories of `CATEGORIES` that were scored,
  the leaderboard's overall (e.g. GPT-4o 53.3 = mean(66, 48.5, 55.5, 26, 70.5)). ``evaluation.py``'s
  ``all`` averages over whichever categories it was asked to score, so with the extra categories
  (interaction, factdet) selected it includes them and `overall` does not.
* Bias (`bias`, over the pairs of all categories pooled, as ``evaluation_bias.py`` does for the five):
  with B = basic hit and H = hallucinated hit per pair, N pairs, that script counts
  yes answers = #B + #(B and not H), no answers = #H + #(H and not B), misses = #(not B) + #(not H),
  false positives = #(B and not H), and reports
  ``yes_difference`` = (yes answers − N) / 2N, ``no_difference`` = (no answers − N) / 2N,
  ``false_positive_ratio`` = false positives / misses, ``hallucination_score`` = #(B and not H) / #B,
  and the basic, hallucinated and pair accuracies over all pairs. These are its counts as written
  (a pair counts a "yes" twice when the model says yes to the basic question and misses the
  hallucinated one), kept so that figures compare with the paper's. Where it divides by zero the
  figure here is 0.0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from distillbench.core.errors import UserInputError

from distillbench.benchmarks.vlm import read_json

INSTRUCTION = "\nAnswer the question using 'yes' or 'no'."
# Category name (as the scripts name results) → the official data file, relative to the data folder.
CATEGORIES = {
    "obj_rel": "object_relation/object_relation.json",
    "temporal": "temporal/temporal.json",
    "semantic": "semantic_detail/semantic_detail.json",
    "fact": "external_factual/external_factual.json",
    "nonfact": "external_nonfactual/external_nonfactual.json",
}
# Scored by the scripts on request, outside the leaderboard's overall.
EXTRA_CATEGORIES = {
    "interaction": "interaction/interaction.json",
    "factdet": "fact_detect/fact_detect.json",
}
METRICS = ("basic_accuracy", "halluc_accuracy", "accuracy")


def prompt(question: str) -> str:
    return question + INSTRUCTION


def hit(answer: str, prediction: str) -> bool:
    """The official rule: the gold word (inserted into the pattern as is) anywhere, as a whole word."""
    return re.search(r"\b(" + answer + r")\b", prediction, re.IGNORECASE) is not None


def score_pair(pair: Mapping[str, Any], basic_prediction: str, hallucinated_prediction: str) -> dict[str, int]:
    """``basic``, ``hallucinated`` and ``pair`` (both) hits, 0 or 1, for one pair."""
    basic = int(hit(pair["basic"]["answer"], basic_prediction))
    hallucinated = int(hit(pair["hallucination"]["answer"], hallucinated_prediction))
    return {"basic": basic, "hallucinated": hallucinated, "pair": basic * hallucinated}


def _predictions(pair: Mapping[str, Any]) -> tuple[str, str]:
    try:
        return pair["basic"]["predict"], pair["hallucination"]["predict"]
    except KeyError:
        raise UserInputError("a VideoHallucer result pair lacks 'predict' under 'basic' or 'hallucination'") from None


def category_scores(pairs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """``cal_score`` over result pairs (the data records with ``predict`` filled in under both questions)."""
    if not pairs:
        raise ValueError("no pairs to score")
    hits = [score_pair(pair, *_predictions(pair)) for pair in pairs]
    return {"basic_accuracy": sum(h["basic"] for h in hits) / len(hits),
            "halluc_accuracy": sum(h["hallucinated"] for h in hits) / len(hits),
            "accuracy": sum(h["pair"] for h in hits) / len(hits)}


def overall(per_category: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each figure over the given categories (``evaluation.py``'s ``all``)."""
    if not per_category:
        raise ValueError("no categories to average")
    return {metric: sum(scores[metric] for scores in per_category.values()) / len(per_category) for metric in METRICS}


def evaluate(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per-category scores and ``all`` (their mean), for result pairs by category name."""
    per_category = {name: category_scores(pairs) for name, pairs in results.items()}
    return {**per_category, "all": overall(per_category)}


def bias(pairs: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """``evaluation_bias.py``'s figures over result pairs (pool the categories before calling)."""
    n = basic_hits = halluc_hits = both = yes_answers = no_answers = misses = false_positives = 0
    for pair in pairs:
        if (pair["basic"]["answer"], pair["hallucination"]["answer"]) != ("yes", "no"):
            raise UserInputError("the bias figures need basic answer 'yes' and hallucinated answer 'no' "
                                 f"(the script asserts it), not {pair['basic']['answer']!r}/"
                                 f"{pair['hallucination']['answer']!r}")
        basic_prediction, hallucinated_prediction = _predictions(pair)
        basic, hallucinated = hit("yes", basic_prediction), hit("no", hallucinated_prediction)
        n += 1
        basic_hits += basic
        halluc_hits += hallucinated
        both += basic and hallucinated
        yes_answers += basic + (basic and not hallucinated)
        no_answers += hallucinated + (hallucinated and not basic)
        misses += (not basic) + (not hallucinated)
        false_positives += basic and not hallucinated
    if not n:
        raise ValueError("no pairs to score")
    return {"yes_difference": (yes_answers - n) / (2 * n), "no_difference": (no_answers - n) / (2 * n),
            "false_positive_ratio": false_positives / misses if misses else 0.0,
            "hallucination_score": false_positives / basic_hits if basic_hits else 0.0,
            "basic_accuracy": basic_hits / n, "halluc_accuracy": halluc_hits / n, "accuracy": both / n}


def load_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Pairs from an official data file, or from a result file (the same records with ``predict``)."""
    pairs = read_json(path)
    if not isinstance(pairs, list):
        raise UserInputError(f"{path}: expected a JSON list of {{basic, hallucination}} pairs")
    for number, pair in enumerate(pairs):
        for side in ("basic", "hallucination"):
            if not isinstance(pair, dict) or not isinstance(pair.get(side), dict) or "answer" not in pair[side]:
                raise UserInputError(f"{path}: pair {number}: needs {side!r} with 'question' and 'answer'")
    return pairs


def load_results(folder: str | Path, model: str, categories: Iterable[str] = CATEGORIES) -> dict[str, list[dict[str, Any]]]:
    """Result pairs by category from ``evaluate``'s output files, ``<folder>/<category>_<model>.json``."""
    return {category: load_pairs(Path(folder) / f"{category}_{model}.json") for category in categories}
