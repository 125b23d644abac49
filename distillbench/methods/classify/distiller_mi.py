"""Distiller's MI-α intermediate-representation objective (He, Shi, Mueller, Zha, Li & Karypis, "Distiller: A
Systematic Study of Model Distillation Methods in Natural Language Processing", arXiv:2109.11105).

Distiller casts intermediate-layer distillation as maximising a lower bound on the mutual information
between the teacher's and the student's representations, and proposes the MI-α family: Poole et al.'s
interpolated bound (arXiv:1905.06922), which runs from InfoNCE (α = 1: low variance, biased) to NWJ (α = 0:
unbiased, high variance). With a critic f(t, s) and, for the student representation s_j, the mean
m_j = (1/K) Σ_k e^{f(t_k, s_j)} over the batch's K teacher representations:

I_α = 1 + (1/B) Σ_j log[e^{f(t_j, s_j)} / d_j] − (1/(B(B−1))) Σ_{i≠j} e^{f(t_i, s_j)} / d_j,   d_j = α·m_j + (1 − α)·q

with the baseline q = 1 here (a constant; Poole et al. allow a learned one); pairs (t_i, s_j), i ≠ j, are
the samples of the product of marginals. The critic is f(t, s) = cos(t, W s) / τ_c, W a linear map from the
student's penultimate features to the teacher's (trained with the student, dropped after training). The
loss adds the intermediate term to Hinton's KD on the outputs:

L = w_ce · CE(s, y) + w_kd · τ² · KL(softmax(t/τ) ‖ softmax(s/τ)) − w_mi · I_α

Not confirmed from the paper (only its abstract could be read here): the exact form of its MI-α, the critic,
α's default and the weights. The KD part uses this harness's Hinton KD defaults (τ = 4, 0.1 / 0.9), so the
``hinton-kd`` row is this method's ablation without the intermediate term. Distiller's AutoDistiller (a
model that recommends a KD pipeline from a dataset's meta-features, trained on the paper's search results)
is not reproduced, those results being unavailable here; `distillbench.pocket.autodistiller_report` asks its
question of a small pocket search instead (leaderboards/pocket-autodistiller.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le
from torch import nn
from torch.nn import functional as F

from ..base import register_method, upcast
from .common import ClassifyMethod, cross_entropy_loss, soft_kl_loss
from .dhkd import DualHeadStudent


def cosine_critic(teacher_features: torch.Tensor, projected_student: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """[B, B] scores f(t_i, s_j) = cos(t_i, W s_j) / τ_c: row i a teacher representation, column j a student's."""
    return F.normalize(upcast(teacher_features), dim=1) @ F.normalize(upcast(projected_student), dim=1).T / temperature


def mi_alpha_bound(scores: torch.Tensor, alpha: float, log_baseline: float = 0.0) -> torch.Tensor:
    """I_α of a [B, B] critic matrix whose diagonal holds the positive pairs (see the module docstring)."""
    scores = upcast(scores)
    count = scores.shape[0]
    log_mean = torch.logsumexp(scores, dim=0) - math.log(count)  # log m_j, over the teacher rows
    parts = []  # log(α·m_j) and log((1 − α)·q), each left out when its weight is 0
    if alpha > 0:
        parts.append(log_mean + math.log(alpha))
    if alpha < 1:
        parts.append(torch.full_like(log_mean, log_baseline + math.log(1 - alpha)))
    log_denominator = torch.logsumexp(torch.stack(parts), dim=0)
    joint = (scores.diagonal() - log_denominator).mean()
    off_diagonal = ~torch.eye(count, dtype=torch.bool, device=scores.device)
    marginal = (scores - log_denominator[None, :]).exp()[off_diagonal].mean()
    return 1 + joint - marginal


@register_method("distiller-mi", family="classify", paper="He et al. 2021, arXiv:2109.11105",
                 summary="Hinton KD + Distiller's MI-α bound between the teacher's and the student's penultimate "
                         "features (InfoNCE-NWJ interpolation)")
@dataclass
class DistillerMI(ClassifyMethod):
    """KD on the outputs plus maximising the MI-α bound between intermediate representations."""

    alpha: Annotated[float, Ge(0), Le(1)] = 0.5  # MI-α's interpolation: 1 InfoNCE, 0 NWJ
    mi_weight: Annotated[float, Ge(0)] = 1.0
    critic_temperature: Annotated[float, Gt(0)] = 0.1
    temperature: Annotated[float, Gt(0)] = 4.0  # KD on the outputs, as hinton-kd
    ce_weight: Annotated[float, Ge(0)] = 0.1
    kd_weight: Annotated[float, Ge(0)] = 0.9

    needs = ("teacher_logits", "teacher_features")

    def prepare(self, frozen, examples, seed, tokenizer=None):
        self._teacher_dim = frozen["teacher"].feature_dim

    def training_module(self, student):
        return DualHeadStudent(student, nn.Linear(student.feature_dim, self._teacher_dim))

    def trained_model(self, module):
        return module.student

    def loss(self, student, batch):
        logits, features = student.student.forward_features(batch["images"])
        scores = cosine_critic(batch["teacher_features"], student.auxiliary(features), self.critic_temperature)
        return {"ce": self.ce_weight * cross_entropy_loss(logits, batch["labels"]),
                "kd": self.kd_weight * soft_kl_loss(logits, batch["teacher_logits"], self.temperature),
                "mi": -self.mi_weight * mi_alpha_bound(scores, self.alpha)}
