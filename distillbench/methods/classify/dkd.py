"""DKD — Decoupled Knowledge Distillation (Zhao et al., CVPR 2022, arXiv:2203.08679).

KD's KL splits into a target-class part and a non-target part; DKD weights them separately:

TCKD = τ² · KL([p_y, 1 − p_y]_teacher ‖ [p_y, 1 − p_y]_student),   p = softmax(z/τ)
NCKD = τ² · KL(p̂_teacher ‖ p̂_student),   p̂ = softmax over the non-target classes of z/τ
L = w_ce · CE(s, y) + min(epoch / warmup, 1) · (α · TCKD + β · NCKD)

both KLs averaged over the batch. Defaults are mdistiller's (``engine/cfg.py``): α = 1, β = 8,
τ = 4, CE weight 1, warm-up 20 epochs (epochs count from 1, so the first epoch has weight 1/20);
its per-pair configs set β = 2 (res56→res20, res110→res32) or 6 (vgg13→vgg8, the WRN pairs,
vgg13→mv2). The arithmetic follows mdistiller's ``dkd_loss``: the binary distributions are sums
of the softmax, and the non-target softmax masks the target logit by subtracting 1000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss

# mdistiller masks the target class by subtracting this from its (temperature-scaled) logit.
TARGET_MASK = 1000.0


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD), each τ²-scaled and averaged over the batch. Logits [B, C], labels [B]."""
    student, teacher = upcast(student_logits) / temperature, upcast(teacher_logits) / temperature
    target = F.one_hot(labels, student.shape[1]).to(student.dtype)
    student_probs, teacher_probs = student.softmax(1), teacher.softmax(1)

    def binary(probs):  # [p_target, p_rest]
        return torch.stack([(probs * target).sum(1), (probs * (1 - target)).sum(1)], dim=1)

    student_binary, teacher_binary = binary(student_probs), binary(teacher_probs)
    tckd = F.kl_div(student_binary.log(), teacher_binary, reduction="sum") / len(labels)
    nckd = F.kl_div(F.log_softmax(student - TARGET_MASK * target, dim=1),
                    F.softmax(teacher - TARGET_MASK * target, dim=1), reduction="sum") / len(labels)
    return temperature**2 * tckd, temperature**2 * nckd


@register_method("dkd", family="classify", paper="Zhao et al. 2022, arXiv:2203.08679",
                 summary="decoupled KD: CE + warm-up × (α·target-class KL + β·non-target KL)")
@dataclass
class DKD(ClassifyMethod):
    """CE plus separately weighted target-class and non-target-class KD, warmed up over epochs."""

    alpha: Annotated[float, Ge(0)] = 1.0
    beta: Annotated[float, Ge(0)] = 8.0
    temperature: Annotated[float, Gt(0)] = 4.0
    ce_weight: Annotated[float, Ge(0)] = 1.0
    warmup: Annotated[int, Ge(0)] = 20  # epochs

    needs = ("teacher_logits",)
    supports_unlabeled = False  # its distillation term needs every example's label

    def loss(self, student, batch):
        logits = student(batch["images"])
        tckd, nckd = dkd_terms(logits, batch["teacher_logits"], batch["labels"], self.temperature)
        warm = min(batch["epoch"] / self.warmup, 1.0) if self.warmup else 1.0
        return {"ce": self.ce_weight * cross_entropy_loss(logits, batch["labels"]),
                "tckd": warm * self.alpha * tckd, "nckd": warm * self.beta * nckd}
