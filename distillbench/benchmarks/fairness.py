"""Fairness, utility and fidelity of synthetic tabular data (``fair-synthetic``, on the pocket-fair world).

The model scored is a generator with ``sample(count, seed) -> TabularData`` (`fair-latent`'s). It draws as
many synthetic rows as there are real test rows; a logistic regression (`linear_probe.fit_logistic_regression`,
L2 1e-3, on numeric columns and one-hot categoricals, the sensitive attribute left out) is trained on the
synthetic rows and their synthetic labels, and classifies the real test rows. Each item is one real test row;
its output is the classifier's prediction and one synthetic row (so the whole synthetic set travels with the
outputs, and score-only files can be re-scored). Metrics:

* ``accuracy`` (utility): per item, prediction == real label;
* ``demographic_parity_difference`` (a set metric): |P(ŷ = 1 | group 0) − P(ŷ = 1 | group 1)| over the real
  test rows, with a 95% percentile-bootstrap CI (1,000 resamples of the rows, seed 0);
* ``fidelity_distance`` (a set metric): the mean over the seven columns of a per-column distance between the
  synthetic and the real test rows: the 1-Wasserstein distance divided by the real column's standard
  deviation for numeric columns, the total-variation distance for categorical ones (group and label
  included). 0 means identical marginals; it says nothing about joint structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge, Gt

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.linear_probe import fit_logistic_regression
from distillbench.kinds.tabular.data import CATEGORICAL, LABEL, NUMERIC, SENSITIVE, TabularData, world_rows

BOOTSTRAP_RESAMPLES = 1000
COLUMNS = (*NUMERIC, *CATEGORICAL, SENSITIVE, LABEL)


def demographic_parity_difference(predictions, groups) -> float:
    """|P(ŷ = 1 | g = 0) − P(ŷ = 1 | g = 1)| of 0/1 predictions; ValueError when a group has no rows (the
    rate of an empty group is undefined) or when predictions or groups are not 0/1."""
    predictions, groups = np.asarray(predictions), np.asarray(groups)
    if len(predictions) != len(groups):
        raise ValueError(f"{len(predictions)} predictions for {len(groups)} group labels")
    for name, values in (("predictions", predictions), ("groups", groups)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"demographic parity: {name} must be 0 or 1")
    rates = []
    for group in (0, 1):
        members = groups == group
        if not members.any():
            raise ValueError(f"demographic parity: group {group} has no rows, its positive rate is undefined")
        rates.append(predictions[members].mean())
    return float(abs(rates[0] - rates[1]))


def wasserstein_1d(a, b) -> float:
    """The 1-Wasserstein distance between two samples' empirical distributions: ∫ |F_a − F_b| (exact)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, values[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, values[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(values)))


def total_variation(a, b, categories: int) -> float:
    """½ Σ_c |p_a(c) − p_b(c)| of two samples of a categorical column."""
    p = np.bincount(np.asarray(a), minlength=categories) / len(a)
    q = np.bincount(np.asarray(b), minlength=categories) / len(b)
    return float(0.5 * np.abs(p - q).sum())


def column_values(data: TabularData) -> dict[str, np.ndarray]:
    values = {name: data.numeric[:, i].numpy() for i, name in enumerate(NUMERIC)}
    values.update({name: data.categorical[:, i].numpy() for i, name in enumerate(CATEGORICAL)})
    return {**values, SENSITIVE: data.group.numpy(), LABEL: data.label.numpy()}


def fidelity_distances(synthetic: TabularData, real: TabularData) -> dict[str, float]:
    """Per column: W1 / std(real) (numeric) or total variation (categorical); ``mean`` over the columns."""
    fake, true = column_values(synthetic), column_values(real)
    sizes = {**CATEGORICAL, SENSITIVE: 2, LABEL: 2}
    distances = {name: (wasserstein_1d(fake[name], true[name]) / max(float(true[name].std()), 1e-12)
                        if name in NUMERIC else total_variation(fake[name], true[name], sizes[name]))
                 for name in COLUMNS}
    return {**distances, "mean": float(np.mean(list(distances.values())))}


def rows_to_records(data: TabularData) -> list[dict[str, float | int]]:
    values = column_values(data)
    return [{name: (float(values[name][i]) if name in NUMERIC else int(values[name][i])) for name in COLUMNS}
            for i in range(len(data))]


def records_to_rows(records: list[dict[str, Any]]) -> TabularData:
    return TabularData(torch.tensor([[r[name] for name in NUMERIC] for r in records], dtype=torch.float32),
                       torch.tensor([[int(r[name]) for name in CATEGORICAL] for r in records], dtype=torch.long),
                       torch.tensor([int(r[SENSITIVE]) for r in records]), torch.tensor([int(r[LABEL]) for r in records]))


@register_benchmark("fair-synthetic", family="tabular", paper="demographic parity, utility and fidelity of "
                    "synthetic data (pocket-fair)", summary="a classifier trained on a generator's synthetic rows, "
                    "on real test rows: accuracy, demographic parity difference; marginal fidelity distance")
@dataclass(frozen=True)
class FairSynthetic(Benchmark):
    """Train on synthetic rows, test on real ones: utility, demographic parity, and marginal fidelity."""

    world_seed: Annotated[int, Ge(0)] = 0
    n: Annotated[int, Gt(0)] = 2000  # real test rows (and synthetic rows drawn)
    sample_seed: Annotated[int, Ge(0)] = 0
    l2: Annotated[float, Ge(0)] = 1e-3

    scorer_version = "1"
    binary_metrics = ("accuracy",)
    set_metrics = ("demographic_parity_difference", "fidelity_distance")
    lower_is_better = ("demographic_parity_difference", "fidelity_distance")

    @cached_property
    def _test(self) -> TabularData:
        return world_rows("test", self.n, self.world_seed)

    def items(self) -> list[dict[str, Any]]:
        test = self._test
        return [{"id": f"test/{i:05d}", "index": i, SENSITIVE: int(test.group[i]), "label": int(test.label[i])}
                for i in range(len(test))]

    def predict(self, model, tokenizer, items, *, batch_size):
        synthetic = model.sample(len(items), self.sample_seed)
        classifier = fit_logistic_regression(synthetic.features(), synthetic.label, 2, self.l2)
        real = self._test.subset(torch.tensor([item["index"] for item in items]))
        predictions = classifier.logits(real.features()).argmax(1).tolist()
        return [{"prediction": int(p), "synthetic": row} for p, row in zip(predictions, rows_to_records(synthetic))]

    def score(self, item, output) -> ItemScore:
        correct = float(output["prediction"] == item["label"])
        reason = "correct" if correct else f"predicted {output['prediction']}, label {item['label']}"
        return ItemScore({"accuracy": correct}, reason)

    def score_set(self, items, outputs) -> dict[str, dict[str, Any]]:
        predictions = np.array([output["prediction"] for output in outputs])
        groups = np.array([item[SENSITIVE] for item in items])
        rng = np.random.default_rng(0)
        resampled = []
        for _ in range(BOOTSTRAP_RESAMPLES):
            rows = rng.integers(len(items), size=len(items))
            if len(set(groups[rows].tolist())) == 2:  # a resample missing a group has no parity gap
                resampled.append(demographic_parity_difference(predictions[rows], groups[rows]))
        synthetic = records_to_rows([output["synthetic"] for output in outputs])
        real = self._test.subset(torch.tensor([item["index"] for item in items]))
        return {"demographic_parity_difference": {
                    "mean": demographic_parity_difference(predictions, groups),
                    "ci95": [float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))],
                    "n": len(items)},
                "fidelity_distance": {"mean": fidelity_distances(synthetic, real)["mean"], "ci95": None,
                                      "n": len(items)}}

    def protocol(self) -> dict[str, Any]:
        return {"scorer_version": self.scorer_version, "world": f"pocket-fair test split, seed {self.world_seed}",
                "items": self.n, "classifier": f"logistic regression (L-BFGS, l2 {self.l2}) on synthetic rows, "
                "sensitive attribute excluded from its features", "parity": "|P(ŷ=1|g=0) − P(ŷ=1|g=1)| on real test "
                "rows, 95% percentile bootstrap over rows (1,000, seed 0)", "fidelity": "mean over columns of "
                "W1/std(real) (numeric) or total variation (categorical), synthetic vs real test rows"}
