"""Hinton KD — soft targets at a temperature, for classifiers.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531:

L = w_ce · CE(s, y) + w_kd · τ² · (1/B) Σ_i KL(softmax(t_i/τ) ‖ softmax(s_i/τ))

Defaults are the CIFAR-100 benchmark's (RepDistiller ``-r 0.1 -a 0.9``, ``kd_T 4``; mdistiller
``KD.TEMPERATURE 4``, ``CE_WEIGHT 0.1``, ``KD_WEIGHT 0.9``). Named ``hinton-kd``: ``kd`` is the
token-level LLM method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt

from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss, soft_kl_loss


@register_method("hinton-kd", family="classify", paper="Hinton et al. 2015, arXiv:1503.02531",
                 summary="CE + temperature-scaled KL to the teacher's soft targets (CIFAR defaults T=4, 0.1/0.9)")
@dataclass
class HintonKD(ClassifyMethod):
    """Cross-entropy on the labels plus the KL to the teacher's softened distribution."""

    temperature: Annotated[float, Gt(0)] = 4.0
    ce_weight: Annotated[float, Ge(0)] = 0.1
    kd_weight: Annotated[float, Ge(0)] = 0.9

    needs = ("teacher_logits",)

    def loss(self, student, batch):
        logits = student(batch["images"])
        return {"ce": self.ce_weight * cross_entropy_loss(logits, batch["labels"]),
                "kd": self.kd_weight * soft_kl_loss(logits, batch["teacher_logits"], self.temperature)}
