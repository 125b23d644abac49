"""RewardBench-style accuracy: does a model's reward prefer the chosen response to the rejected one?

RewardBench (Lambert et al. 2024, "RewardBench: Evaluating Reward Models for
Language Modeling", arXiv:2403.13787; code: allenai/reward-bench). The rules
followed here, with where the reference code states them:

- Per pair: correct when ``reward(chosen) > reward(rejected)``; an exact tie is
  wrong (``results = [1 if chosen > rejected else 0]``).
- The reward is either a classifier reward model's score (``reward: classifier``,
  the first logit of a sequence-classification head), or a DPO model's implicit
  reward ``log π(y|x) − log π_ref(y|x)`` summed over the response tokens
  (``reward: implicit``; ``DPOInference``), reference-free when no reference is
  given: the policy's log-probability of the response, averaged over its tokens
  (``ref_free_type: avg``, the default of RewardBench's ``scripts/run_dpo.py``) or summed
  (``sum``, which favours short responses).
  β > 0 scales both sides alike and does not change a comparison.
- Sections (``constants.SUBSET_MAPPING``): each section's score is the mean of
  its subsets' accuracies weighted by ``constants.EXAMPLE_COUNTS``
  (``utils.calculate_scores_per_section``), where math-prm counts 984, not its
  447 pairs, to weigh as much as the six code subsets together. The overall
  ``score`` is the mean of the sections present (the v1 leaderboard's core
  average, without the 0.5-weight prior sets).

Per-item records. ``accuracy`` is each pair's 0/1 result (the plain accuracy
over all pairs). Each section's metric (``chat``, ``chat_hard``, ``safety``,
``reasoning``) and ``score`` carry the pair's result times its official weight,
normalised so that the mean over items equals the official weighted figure
exactly; the bootstrap CI over items is then the CI of that weighted mean.
Subsets outside the mapping count only in ``accuracy``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Gt

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.rewards import classifier_rewards, implicit_rewards
from distillbench.benchmarks.sources import check_source, load_source, source_fingerprint
from distillbench.core.errors import UserInputError
from distillbench.core.models import validate_model_ref

# reward-bench rewardbench/constants.py (v1).
EXAMPLE_COUNTS = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95,
    "mt-bench-easy": 28, "mt-bench-med": 40, "mt-bench-hard": 37,
    "math-prm": 984,  # 447 pairs, upweighted to equal the code subsets (6 × 164)
    "refusals-dangerous": 100, "refusals-offensive": 100,
    "llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154, "xstest-should-respond": 250, "donotanswer": 136,
    "hep-cpp": 164, "hep-go": 164, "hep-java": 164, "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}
SUBSET_MAPPING = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"],
    "Safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}


def pair_correct(chosen: float, rejected: float) -> int:
    """RewardBench's per-pair result: 1 only when the chosen reward is strictly higher."""
    return 1 if chosen > rejected else 0


def scores_per_section(example_counts: dict[str, int], subset_mapping: dict[str, list[str]],
                       accuracies: dict[str, float]) -> dict[str, float]:
    """Each section's subset accuracies averaged with the example-count weights (sections with no subset: 0)."""
    scores = {}
    for section, subsets in subset_mapping.items():
        present = [s for s in subsets if s in accuracies]
        total = sum(example_counts[s] for s in present)
        scores[section] = sum(accuracies[s] * example_counts[s] for s in present) / total if total else 0.0
    return scores


def metric_name(section: str) -> str:
    """"Chat Hard" -> "chat_hard"."""
    return re.sub(r"[^a-z0-9]+", "_", section.lower()).strip("_")


def item_factors(subset_sizes: dict[str, int], example_counts: dict[str, int],
                 subset_mapping: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """subset -> {metric: factor}: a pair's 0/1 result times its factor, averaged over the items that carry
    the metric, gives the official section score, and for ``score`` the mean of the sections present."""
    sections = {section: [s for s in subsets if subset_sizes.get(s)] for section, subsets in subset_mapping.items()}
    sections = {section: subsets for section, subsets in sections.items() if subsets}
    in_sections = sum(subset_sizes[s] for subsets in sections.values() for s in subsets)
    factors: dict[str, dict[str, float]] = {}
    for section, subsets in sections.items():
        size = sum(subset_sizes[s] for s in subsets)
        weight = sum(example_counts[s] for s in subsets)
        for subset in subsets:
            section_factor = example_counts[subset] / subset_sizes[subset] * size / weight
            factors[subset] = {metric_name(section): section_factor,
                               "score": section_factor * in_sections / (len(sections) * size)}
    return factors


@register_benchmark("rewardbench", family="llm", paper="Lambert et al. 2024, arXiv:2403.13787",
                    summary="RewardBench accuracy of a reward model or a DPO model's implicit reward, per section")
@dataclass(frozen=True)
class RewardBench(Benchmark):
    """Chosen-over-rejected accuracy on RewardBench's pairs, section-weighted as RewardBench does."""

    dataset: str | None = None  # reward-bench's `filtered` split: a local JSONL or hf:allenai/reward-bench@<rev>
    reward: Literal["implicit", "classifier"] = "implicit"
    reference: str | None = None  # implicit: the reference model; None = reference-free
    ref_free_type: Literal["avg", "sum"] = "avg"  # reference-free: mean or sum of the response's log-probs
    reward_model: str | None = None  # classifier: a sequence-classification reward model
    max_length: Annotated[int, Gt(0)] = 2048
    n: Annotated[int, Gt(0)] | None = None  # the first n pairs (smoke runs); None = all

    binary_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    example_counts: ClassVar[dict[str, int]] = EXAMPLE_COUNTS
    subset_mapping: ClassVar[dict[str, list[str]]] = SUBSET_MAPPING

    def check(self):
        problems = self._dataset_problems()
        if self.reward == "classifier" and not self.reward_model:
            problems.append("reward_model: reward: classifier needs a reward model (hf:<id>@<rev> or a directory)")
        if self.reward == "implicit" and self.reward_model:
            problems.append("reward_model: only used with reward: classifier")
        for option in ("reference", "reward_model"):
            if getattr(self, option):
                problems += _model_problems(option, getattr(self, option))
        return problems

    def _dataset_problems(self) -> list[str]:
        if not self.dataset:
            return ["dataset: give reward-bench's filtered split (a local JSONL or hf:allenai/reward-bench@<rev>)"]
        return [f"dataset: {p.removeprefix('source: ')}" for p in check_source(self.dataset)]

    def pairs(self) -> list[dict[str, Any]]:
        records = load_source(self.dataset, "filtered", ("prompt", "chosen", "rejected", "subset"))
        return [{**r, "id": str(r.get("id", index))} for index, r in enumerate(records)]

    def items(self):
        pairs = self.pairs()[: self.n]
        sizes: dict[str, int] = {}
        for pair in pairs:
            sizes[pair["subset"]] = sizes.get(pair["subset"], 0) + 1
        factors = item_factors(sizes, self.example_counts, self.subset_mapping)
        return [{**pair, "factors": factors.get(pair["subset"], {})} for pair in pairs]

    def predict(self, model, tokenizer, items, *, batch_size):
        if self.reward == "classifier":
            return classifier_rewards(self.reward_model, items, batch_size=batch_size, max_length=self.max_length)
        return implicit_rewards(model, tokenizer, self.reference, items, batch_size=batch_size,
                                max_length=self.max_length, ref_free_average=self.ref_free_type == "avg")

    def score(self, item, output):
        if not isinstance(output, dict) or not all(isinstance(output.get(k), (int, float)) for k in
                                                   ("chosen", "rejected")):
            raise UserInputError(f"rewardbench item {item['id']}: the output must be "
                                 '{"chosen": <reward>, "rejected": <reward>}')
        correct = pair_correct(output["chosen"], output["rejected"])
        values = {"accuracy": float(correct), **{m: correct * f for m, f in item["factors"].items()}}
        relation = ">" if correct else ("=" if output["chosen"] == output["rejected"] else "<")
        return ItemScore(values, f"{item['subset']}: chosen {output['chosen']:.4g} {relation} "
                                 f"rejected {output['rejected']:.4g}")

    def protocol(self):
        return {"scorer_version": self.scorer_version, "reward": self.reward,
                "reference": self.reference or (f"none (reference-free, log-probs: {self.ref_free_type})"
                                                if self.reward == "implicit" else None),
                "reward_model": self.reward_model, "dataset": source_fingerprint(self.dataset) if self.dataset else None,
                "section_weights": self.weights_protocol(), "max_length": self.max_length, "n": self.n}

    def weights_protocol(self) -> str:
        return "reward-bench v1 EXAMPLE_COUNTS (math-prm 984)"


def _model_problems(option: str, reference: str) -> list[str]:
    try:
        validate_model_ref(reference)
    except ValueError as error:
        return [f"{option}: {error}"]
    return []
