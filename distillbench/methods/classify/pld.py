"""PLD — Plackett-Luce Distillation (Bassam, Zhu & Bian, "PLD: A Choice-Theoretic List-Wise Knowledge
Distillation", arXiv:2506.12542).

The teacher-optimal ranking π* puts the true label first, then the other classes by descending
teacher logit; each step k of the Plackett-Luce likelihood of π* under the student's logits s is
weighted by the teacher's confidence in the class chosen there:

L = (1/B) Σ_i Σ_k q_{π*_k} · [log Σ_{l ≥ k} exp(s_{π*_l}) − s_{π*_k}],   q = softmax(t / τ)

There is no separate CE term: weights (1, 0, …, 0) give CE, so the first step is a CE on the label
weighted by the teacher's probability of it. The student's logits enter unscaled: the paper imposes
the ranking with the "unsoftened Plackett-Luce likelihood" and its reference code (Appendix C,
``plackett_luce_loss``) tempers only the teacher, ``softmax(t_perm / temperature)``, against
``logcumsumexp`` of the raw student logits (read in a stored copy of the full text, checked on
2026-11-29). τ = 4 is the paper's CIFAR-100 setting; its ImageNet sweep is best at τ = 1, which is
also the code's default argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt

from distillbench.core.tensors import upcast
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod


def teacher_optimal_order(teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, C] class indices: the label first, then the rest by descending teacher logit."""
    keys = upcast(teacher_logits).detach().clone()
    keys.scatter_(1, labels.unsqueeze(1), float("inf"))
    return keys.argsort(dim=1, descending=True, stable=True)


def pld_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
             temperature: float = 4.0) -> torch.Tensor:
    order = teacher_optimal_order(teacher_logits, labels)
    student = upcast(student_logits).gather(1, order)
    weights = (upcast(teacher_logits) / temperature).softmax(1).gather(1, order)
    tail = torch.logcumsumexp(student.flip(1), dim=1).flip(1)  # log Σ_{l ≥ k} exp(s_{π_l})
    return (weights * (tail - student)).sum(1).mean()


@register_method("pld", family="classify", paper="Bassam et al. 2025, arXiv:2506.12542",
                 summary="Plackett-Luce list-wise loss on the teacher-optimal ranking, steps weighted by "
                         "teacher confidence (no separate CE)")
@dataclass
class PLD(ClassifyMethod):
    """Teacher-confidence-weighted ListMLE on (label, then classes by teacher logit)."""

    temperature: Annotated[float, Gt(0)] = 4.0

    needs = ("teacher_logits",)
    supports_unlabeled = False  # its distillation term needs every example's label

    def loss(self, student, batch):
        logits = student(batch["images"])
        return {"pld": pld_loss(logits, batch["teacher_logits"], batch["labels"], self.temperature)}
