"""DistillNearest — distil from the source model whose task is nearest the target task (Borup, Phoo &
Hariharan, "Distilling from Similar Tasks for Transfer Learning on a Budget", arXiv:2304.12314; ICCV 2023).

Several source models, each trained on another task, and a target task with (few) labels: the paper needs
only the sources' features and pseudo-labels on the target images. Before training, for every source s:

* its task similarity to the target: here the leave-one-out k-nearest-neighbour accuracy of the target
  labels under the source's (standardised, cosine) features, on the labeled training images;
* a target head: a multinomial logistic regression on the source's standardised features, fitted to the
  labeled training images, so the source gives pseudo-label distributions p_s over the target classes.

The sources get weights w (DistillNearest: all on the most similar source; DistillWeighted, its
multi-source variant, `distill_weighted.py`: softmax of the similarities at a temperature), and

L = w_ce · CE(s, y) + w_kd · τ² · KL(Σ_s w_s·p_s^τ ‖ softmax(z/τ)) + w_feat · Σ_s w_s · mean((P_s g − f̂_s)²)

for the student's logits z and penultimate features g, P_s a linear map to source s's feature space (trained
with the student, dropped after) and f̂_s the source's standardised features. Not confirmed from the paper
(only its abstract could be read here): which similarity measure it settles on (it compares several), the
form of the weights, the loss weights and τ. In the pocket world the sources are the zoo's shapes teachers,
each trained on another labelling of the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import torch
from annotated_types import Ge, Gt, MinLen
from torch import nn
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.kinds.image_classifier.classifiers import dataset_features, is_classifier_ref
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss
from distillbench.methods.classify.dhkd import DualHeadStudent

POCKET_SOURCES = ["pocket:shapes-teacher-many", "pocket:shapes-teacher-shape", "pocket:shapes-teacher-binary"]
PROBE_STEPS, PROBE_L2 = 100, 1e-3  # the target heads' L-BFGS iterations and ridge


def standardise(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (upcast(features) - mean) / std


def knn_task_similarity(features: torch.Tensor, labels: torch.Tensor, neighbours: int = 10) -> float:
    """Leave-one-out accuracy of a cosine k-NN majority vote (ties to the lowest label) on rows of `features`
    [N, D] labeled `labels` [N]: how well the features separate the target classes."""
    normalised = F.normalize(features.double(), dim=1)
    similarity = normalised @ normalised.T
    similarity.fill_diagonal_(-torch.inf)
    nearest = similarity.topk(neighbours, dim=1).indices
    votes = F.one_hot(labels[nearest], int(labels.max()) + 1).sum(1)
    return float((votes.argmax(1) == labels).double().mean())


def fit_target_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int = PROBE_STEPS,
                    l2: float = PROBE_L2) -> nn.Linear:
    """A multinomial logistic regression on (standardised) features, from zero weights by L-BFGS: deterministic."""
    head = nn.Linear(features.shape[1], num_classes).double()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    inputs = features.double()
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        value = F.cross_entropy(head(inputs), labels) + l2 * head.weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(objective)
    return head.float().requires_grad_(False)


def multi_source_loss(student_logits: torch.Tensor, labels: torch.Tensor, source_logits: list[torch.Tensor],
                      projected_features: list[torch.Tensor], source_features: list[torch.Tensor],
                      weights: torch.Tensor, temperature: float, ce_weight: float, kd_weight: float,
                      feature_weight: float) -> dict[str, torch.Tensor]:
    """The three terms of the module docstring; sources of weight 0 are skipped. Features are standardised."""
    used = [index for index, weight in enumerate(weights.tolist()) if weight > 0]
    student_logp = F.log_softmax(upcast(student_logits) / temperature, dim=1)
    target = sum(weights[i] * (upcast(source_logits[i]) / temperature).softmax(1) for i in used)
    kd = temperature**2 * (target * (target.clamp_min(1e-30).log() - student_logp)).sum(1).mean()
    features = sum(weights[i] * (upcast(projected_features[i]) - upcast(source_features[i])).pow(2).mean()
                   for i in used)
    return {"ce": ce_weight * cross_entropy_loss(student_logits, labels), "kd": kd_weight * kd,
            "features": feature_weight * features}


@dataclass(frozen=True)
class FittedSource:
    """A source's standardisation of its features, its target head and its similarity to the target task."""

    mean: torch.Tensor
    std: torch.Tensor
    head: nn.Linear
    similarity: float


@register_method("distill-nearest", family="classify", paper="Borup et al. 2023, arXiv:2304.12314",
                 summary="distil the source model most similar to the target task (k-NN accuracy of its "
                         "features): its pseudo-labels and features")
@dataclass
class DistillNearest(ClassifyMethod):
    """KD and feature regression from the source teacher most similar to the target task."""

    sources: Annotated[list[str], MinLen(1)] = field(default_factory=lambda: list(POCKET_SOURCES))
    neighbours: Annotated[int, Ge(1)] = 10  # k of the k-NN similarity
    temperature: Annotated[float, Gt(0)] = 4.0
    ce_weight: Annotated[float, Ge(0)] = 1.0
    kd_weight: Annotated[float, Ge(0)] = 1.0
    feature_weight: Annotated[float, Ge(0)] = 1.0
    similarity_examples: Annotated[int, Ge(2)] = 2000  # labeled images the similarities are measured on

    needs = ("source_features",)

    @property
    def source_teachers(self) -> tuple[str, ...]:
        return tuple(self.sources)

    def check(self) -> list[str]:
        return [f"sources: {ref} is not an image classifier (pocket:shapes-teacher-<task>, or a folder with "
                "classifier.json)" for ref in self.sources if not is_classifier_ref(ref)]

    def source_weights(self, similarities: torch.Tensor) -> torch.Tensor:
        """All the weight on the most similar source (the first of equals)."""
        return F.one_hot(similarities.argmax(), len(similarities)).float()

    def prepare(self, run):
        frozen, examples = run.frozen, run.examples
        labeled = torch.nonzero(examples.labels >= 0).flatten()
        labels = examples.labels[labeled]
        fitted = []
        for ref in self.sources:
            _, features = dataset_features(frozen[f"source:{ref}"], examples)
            features = features[labeled]
            mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
            scaled = standardise(features, mean, std)
            measured = slice(0, self.similarity_examples)
            fitted.append(FittedSource(mean, std, fit_target_head(scaled, labels, examples.num_classes),
                                       knn_task_similarity(scaled[measured], labels[measured], self.neighbours)))
        self._sources = fitted
        self._weights = self.source_weights(torch.tensor([source.similarity for source in fitted]))

    def training_module(self, student):
        projections = nn.ModuleList(nn.Linear(student.feature_dim, len(source.mean)) for source in self._sources)
        return DualHeadStudent(student, projections)

    def trained_model(self, module):
        return module.student

    def loss(self, student, batch):
        logits, features = student.student.forward_features(batch["images"])
        device = logits.device
        source_features = [standardise(raw, source.mean.to(device), source.std.to(device))
                           for raw, source in zip(batch["source_features"], self._sources)]
        source_logits = [source.head.to(device)(scaled) for scaled, source in zip(source_features, self._sources)]
        projected = [projection(features) for projection in student.auxiliary]
        return multi_source_loss(logits, batch["labels"], source_logits, projected, source_features,
                                 self._weights.to(device), self.temperature, self.ce_weight, self.kd_weight,
                                 self.feature_weight)
