"""DHO — Dual-Head Optimization (Kang, Lee, Jang & Hwang, "Simple yet Effective Semi-supervised Knowledge
Distillation from Vision-Language Models via Dual-Head Optimization", arXiv:2505.07675).

The student gets two linear heads on its features: one learns the labels, the other the teacher, so
the supervised and distillation gradients stop fighting over a single head. On a labeled batch x_l and
an unlabeled batch x_u:

L = w_ce · CE(h_ce(x_l), y) + w_kd · τ² · [KL(p_t^τ(x_l) ‖ p_kd^τ(x_l)) + KL(p_t^τ(x_u) ‖ p_kd^τ(x_u))]

and predictions mix the heads: p = α·softmax(z_ce) + (1 − α)·softmax(z_kd / β). Defaults are the
authors' few-shot script (erjui/DHO@846de75 ``train_others.py``: τ = 2, w_ce = w_kd = 0.5) and their
ImageNet inference setting α = β = 0.5 (the few-shot runs instead search α ∈ {0, 0.05, …, 1} and
β ∈ {0.5, …, 4} on validation data; here they are fixed fields). The paper's teacher is CLIP's
zero-shot classifier (100 · normalised image features · class text embeddings); here the teacher is any
classifier of the recipe, CLIP's kind included (`pocket:shapes-clip-zeroshot-<task>`,
`distillbench.kinds.image_classifier.clip_zeroshot`). The student's own head is the CE head; the KD head starts at random, as in
``train_others.py`` (the ImageNet script starts both from CLIP's text weights). The student saved is
the two-headed classifier, predicting with the mixture.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from annotated_types import Ge, Gt, Le

from distillbench.kinds.image_classifier.classifiers import DualHeadClassifier

from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss, soft_kl_loss


def dual_head(student, alpha: float, beta: float) -> DualHeadClassifier:
    """The student with a second (KD) head of the same shape as its own, mixing with (α, β)."""
    spec = replace(student.spec, combine={"kind": "dual-head", "alpha": alpha, "beta": beta})
    return DualHeadClassifier(student.network, spec, spec.head or _head_path(student))


def _head_path(student) -> str:
    return next(name for name, module in student.network.named_modules() if module is student.head)


@register_method("dho", family="classify", paper="Kang et al. 2025, arXiv:2505.07675",
                 summary="dual heads: CE on labeled images, KL to the teacher on labeled and unlabeled images; "
                         "predictions mix the heads")
@dataclass
class DHO(ClassifyMethod):
    """A CE head and a KD head on the student's features; semi-supervised (labeled and unlabeled batches)."""

    temperature: Annotated[float, Gt(0)] = 2.0
    ce_weight: Annotated[float, Ge(0)] = 0.5
    kd_weight: Annotated[float, Ge(0)] = 0.5
    alpha: Annotated[float, Ge(0), Le(1)] = 0.5  # inference: weight of the CE head's probabilities
    beta: Annotated[float, Gt(0)] = 0.5  # inference: temperature of the KD head's logits

    needs = ("teacher_logits",)

    def training_module(self, student):
        return dual_head(student, self.alpha, self.beta)

    def loss(self, student, batch):
        ce_logits, kd_logits, _ = student.both(batch["images"])
        labels, teacher = batch["labels"], batch["teacher_logits"]
        labeled = labels >= 0
        terms = {"ce": self.ce_weight * cross_entropy_loss(ce_logits, labels)}
        for name, rows in (("kd_labeled", labeled), ("kd_unlabeled", ~labeled)):
            if bool(rows.any()):
                terms[name] = self.kd_weight * soft_kl_loss(kd_logits[rows], teacher[rows], self.temperature)
        return terms
