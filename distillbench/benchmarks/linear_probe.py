"""Linear probe: the linear-evaluation protocol of self-supervised and distilled encoders.

The encoder is frozen (eval mode, no gradients); its penultimate features (what the classifier's final
linear layer receives: the pooled patch tokens of a ViT, the pooled map of a CNN) of the unaugmented
training images are standardised with the training mean and std, and a multinomial logistic regression
with an L2 penalty is fitted on them by full-batch L-BFGS from zero weights (deterministic: no sampling, no
random init). Test images are classified by the probe; items, outputs (top-5 class indices, best first) and
scores (per-item 0/1 top-1 and top-5) are those of `top1`, so leaderboard CIs and McNemar tests apply.

``class_weight: balanced`` weights each training example by N / (classes present · its class's count),
as scikit-learn's ``class_weight="balanced"``, so a rare class is not drowned by frequent ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

import torch
from annotated_types import Ge, Gt

from distillbench.benchmarks.base import Benchmark, register_benchmark
from distillbench.benchmarks.top1 import _Top1
from distillbench.core.classes import top_classes
from distillbench.kinds.image_classifier.classifiers import dataset_features
from distillbench.kinds.image_classifier.images import image_source_problem, load_image_dataset

STANDARDISE_EPS = 1e-6


@dataclass(frozen=True)
class LinearModel:
    """A fitted logistic regression: logits = ((x − mean) / std) · weight + bias."""

    weight: torch.Tensor  # [D, C]
    bias: torch.Tensor  # [C]
    mean: torch.Tensor  # [D]
    std: torch.Tensor  # [D]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return ((features.double() - self.mean) / self.std) @ self.weight + self.bias


def balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-example weights N / (classes present · count of the example's class)."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    present = int((counts > 0).sum())
    return len(labels) / (present * counts[labels])


def fit_logistic_regression(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float = 1e-3,
                            class_weight: str = "none", max_iter: int = 500) -> LinearModel:
    """Multinomial logistic regression on frozen features: minimises
    Σ_i w_i · CE_i / Σ_i w_i + (l2 / 2)·‖W‖² (bias not penalised) with L-BFGS from zeros, in float64.

    Raises ValueError for features that still carry a gradient (the encoder is not frozen: fitting the probe
    would train it) and for labels outside [0, num_classes)."""
    if features.requires_grad:
        raise ValueError("linear probe: the features require grad; extract them from a frozen encoder "
                         "(eval mode, torch.no_grad, or .detach())")
    if features.ndim != 2 or len(features) != len(labels) or len(labels) == 0:
        raise ValueError(f"linear probe: expected features [N, D] and N labels, got {tuple(features.shape)} "
                         f"and {len(labels)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"linear probe: labels must lie in [0, {num_classes})")
    if class_weight not in ("none", "balanced"):
        raise ValueError(f"linear probe: class_weight {class_weight!r}: expected 'none' or 'balanced'")
    x = features.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(STANDARDISE_EPS)
    x = (x - mean) / std
    weights = balanced_weights(labels, num_classes) if class_weight == "balanced" else torch.ones(len(labels),
                                                                                                  dtype=x.dtype)
    weights = weights / weights.sum()
    weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(x @ weight + bias, labels, reduction="none")
        loss = (weights * losses).sum() + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return LinearModel(weight.detach(), bias.detach(), mean, std)


@register_benchmark("linear-probe", family="classify", paper="linear evaluation protocol (frozen encoder)",
                    summary="top-1 of a logistic-regression probe fitted on a frozen encoder's features of the "
                            "training images, on the test images (pocket-shapes or CIFAR-100)")
@dataclass(frozen=True)
class LinearProbe(_Top1, Benchmark):
    """Logistic regression on frozen penultimate features: fitted on the train split, scored on the test split."""

    dataset: str = "pocket:shapes-many"
    train_n: Annotated[int, Gt(0)] | None = 2000  # pocket: generated; files: the first train_n
    n: Annotated[int, Gt(0)] | None = 1000  # test items
    l2: Annotated[float, Ge(0)] = 1e-3
    class_weight: Literal["none", "balanced"] = "none"
    max_iter: Annotated[int, Gt(0)] = 500

    scorer_version = "1"

    def check(self):
        problem = image_source_problem(self.dataset)
        return [f"dataset: {problem}"] if problem else []

    def _source(self):
        return self.dataset

    def _limit(self):
        return self.n

    @cached_property
    def _train_data(self):
        return load_image_dataset(self.dataset, "train", self.train_n)

    def fit(self, model) -> LinearModel:
        """The probe on `model`'s frozen features of the training images."""
        train = self._train_data
        return fit_logistic_regression(dataset_features(model, train)[1], train.labels, train.num_classes,
                                       self.l2, self.class_weight, self.max_iter)

    @torch.no_grad()
    def predict(self, model, tokenizer, items, *, batch_size):
        was_training = model.training
        probe = self.fit(model)
        features = dataset_features(model, self.data(), batch_size)[1]
        model.train(was_training)
        k = min(5, self.num_classes())
        logits = probe.logits(features[[item["index"] for item in items]])
        return top_classes(logits, k)

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "train_items": len(self._train_data),
                "probe": f"multinomial logistic regression on standardised frozen penultimate features, L-BFGS "
                         f"from zeros (float64, max_iter {self.max_iter}), l2 {self.l2}, class_weight "
                         f"{self.class_weight}"}
