"""LELP — Learning Embedding Linear Projections (Loo, Iliopoulos, Hu & Vee, "Linear Projections of Teacher
Embeddings for Few-Class Distillation", arXiv:2409.20449).

With few classes the teacher's probabilities say little; LELP splits every class into S pseudo-subclasses
read off linear projections of the teacher's final-layer embedding h, and the student learns the S·C
subclass distribution (Subclass Distillation's student, with the subclasses found after training instead
of learned by the teacher). Before training, for every class c:

1. project the class's training embeddings onto the null space of the teacher's classifier weights W
   (P = I − W⁺W), so the directions carry what the class logits do not;
2. take the top-S principal directions of the projected embeddings (centred at their mean μ_c);
3. rotate them by a random S×S orthogonal matrix, which spreads the variance evenly over the S directions;
   v_cs are the rotated directions and σ_c the RMS of the class's coordinates along them.

Each class's teacher probability is split over its pseudo-subclasses by a softmax of the projections,

p_cs = softmax(t/τ)_c · softmax_s(z_cs/β),  z_cs = ⟨h − μ_c, v_cs⟩ / σ_c,

so the subclass probabilities of class c sum to the teacher's class probability (the paper's factorisation
as two automated reviews of its ICLR 2025 submission quote it: p_{c,s} = p_c · e^{z_{c,s}/β} / Σ_j e^{z_{c,j}/β}),
and

L = (1 − α) · τ² · (1/B) Σ_i KL(p_i ‖ softmax(s_i / τ)) + α · CE(log Σ_s exp(s_ics), y)

for the student's S·C subclass logits s. The student predicts the class with the largest summed subclass
probability (``SubclassClassifier``). α = 0 (no ground-truth term), as in all the paper's experiments (its
Sec. 4.1, quoted by the reviews). Not confirmed from the paper (its full text could not be read here, only
reviews that quote it): the default S, β and τ (the paper grid-searches them, Appendix H), the scaling by
σ_c (ours: it makes β independent of the embeddings' scale), the centring by μ_c, and whether the student's
softmax is tempered by τ; the three steps above follow its description. τ matters: on the pocket 3-class
board LELP is below KD at τ = 1 and above it at τ = 4, KD's own temperature there (README, *What it says*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le

from distillbench.core.tensors import upcast
from distillbench.kinds.image_classifier.classifiers import class_logits_of_subclasses, dataset_features, with_subclass_head
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss, soft_kl_to_log_probs


@dataclass(frozen=True)
class SubclassProjection:
    """What LELP fits before training: per class c, S directions v_cs [C, S, D], offsets ⟨μ_c, v_cs⟩ [C, S]
    and scales σ_c [C]."""

    directions: torch.Tensor
    offsets: torch.Tensor
    scales: torch.Tensor

    def to(self, device) -> "SubclassProjection":
        return SubclassProjection(self.directions.to(device), self.offsets.to(device), self.scales.to(device))


def fit_subclass_projection(features: torch.Tensor, labels: torch.Tensor, classifier_weight: torch.Tensor,
                            per_class: int, generator: torch.Generator) -> SubclassProjection:
    """LELP's three steps on the teacher's training embeddings [N, D] and labels [N] (−1: unlabeled, left out)."""
    features = features.double()
    weight = classifier_weight.detach().double().cpu()
    null_space = torch.eye(features.shape[1], dtype=torch.float64) - torch.linalg.pinv(weight) @ weight
    directions, offsets, scales = [], [], []
    for label in range(weight.shape[0]):
        projected = features[labels == label] @ null_space
        if len(projected) <= per_class:
            raise ValueError(f"class {label} has {len(projected)} training examples; LELP needs more than "
                             f"{per_class} (its subclasses per class) to find that many directions")
        mean = projected.mean(0)
        principal = torch.linalg.svd(projected - mean, full_matrices=False).Vh[:per_class]  # [S, D]
        rotation, _ = torch.linalg.qr(torch.randn(per_class, per_class, generator=generator, dtype=torch.float64))
        rotated = rotation @ principal
        coordinates = (projected - mean) @ rotated.T
        directions.append(rotated)
        offsets.append(rotated @ mean)
        scales.append(coordinates.pow(2).mean().sqrt())
    return SubclassProjection(torch.stack(directions).float(), torch.stack(offsets).float(),
                              torch.stack(scales).float())


def pseudo_subclass_log_probs(teacher_logits: torch.Tensor, teacher_features: torch.Tensor,
                              projection: SubclassProjection, class_temperature: float = 1.0,
                              subclass_temperature: float = 1.0) -> torch.Tensor:
    """[B, C·S] class-major log p_cs = log softmax(t/τ)_c + log softmax_s(z_cs/β), with
    z_cs = (⟨h, v_cs⟩ − ⟨μ_c, v_cs⟩) / σ_c: each class's probability split over its S pseudo-subclasses."""
    projections = torch.einsum("bd,csd->bcs", upcast(teacher_features), projection.directions)
    spread = (projections - projection.offsets) / projection.scales[:, None]
    class_logp = torch.log_softmax(upcast(teacher_logits) / class_temperature, dim=1)
    return (class_logp[:, :, None] + torch.log_softmax(spread / subclass_temperature, dim=2)).flatten(1)


def lelp_loss(student_subclass_logits: torch.Tensor, target_subclass_logp: torch.Tensor, labels: torch.Tensor,
              per_class: int, temperature: float = 1.0, ce_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """{"subclass_kd": (1 − α)·τ²·KL(p ‖ softmax(s/τ)) over the S·C subclasses, "ce": α·CE on the summed
    class probabilities}; p given as log-probabilities (`pseudo_subclass_log_probs`)."""
    terms = {"subclass_kd": (1 - ce_weight) * soft_kl_to_log_probs(student_subclass_logits, target_subclass_logp,
                                                                   temperature)}
    if ce_weight:
        class_logits = class_logits_of_subclasses(upcast(student_subclass_logits), per_class)
        terms["ce"] = ce_weight * cross_entropy_loss(class_logits, labels)
    return terms


@register_method("lelp", family="classify", paper="Loo et al. 2024, arXiv:2409.20449",
                 summary="few-class KD: S pseudo-subclasses per class from null-space PCA of the teacher's "
                         "embeddings; the student's S·C head learns their distribution")
@dataclass
class LELP(ClassifyMethod):
    """The student's head scores S pseudo-subclasses per class, trained on the teacher's projected embeddings."""

    subclasses: Annotated[int, Ge(1)] = 10  # S, per class
    temperature: Annotated[float, Gt(0)] = 1.0  # β, the pseudo-subclass temperature
    class_temperature: Annotated[float, Gt(0)] = 1.0  # τ, of the teacher's class probabilities and the student
    ce_weight: Annotated[float, Ge(0), Le(1)] = 0.0  # α: the paper uses no ground-truth term

    needs = ("teacher_logits", "teacher_features")

    def prepare(self, run):
        teacher, examples, seed = run.frozen["teacher"], run.examples, run.seed
        _, features = dataset_features(teacher, examples)
        generator = torch.Generator().manual_seed(seed)  # the rotations; the global RNG is left alone
        self._projection = fit_subclass_projection(features, examples.labels, teacher.head.weight,
                                                   self.subclasses, generator)

    def training_module(self, student):
        return with_subclass_head(student, self.subclasses)

    def loss(self, student, batch):
        subclass_logits, _ = student.subclass_logits(batch["images"])
        targets = pseudo_subclass_log_probs(batch["teacher_logits"], batch["teacher_features"],
                                            self._projection.to(subclass_logits.device), self.class_temperature,
                                            self.temperature)
        return lelp_loss(subclass_logits, targets, batch["labels"], self.subclasses, self.class_temperature,
                         self.ce_weight)
