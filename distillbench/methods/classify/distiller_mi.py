"""Distiller's MI-α intermediate-representation objective (He, Shi, Mueller, Zha, Li & Karypis, "Distiller: A
Systematic Study of Model Distillation Methods in Natural Language Processing", arXiv:2109.11105).

Distiller casts intermediate-layer distillation as maximising a lower bound on the mutual information
between the teacher's and the student's representations, and proposes the MI-α family: Poole et al.'s
interpolated bound (arXiv:1905.06922), which runs from InfoNCE's baseline (α = 1: low variance, biased) to
a learned single-sample baseline (α = 0: TUBA, unbiased, high variance). For a batch of K pairs, scores
s_ij = f(t_i, s_j) of a critic (row i a teacher representation, column j a student's) and a learned log
baseline log q(t_i):

I_α = 1 + mean_{i≠j} [s_ii − log d_ij] − mean_{i≠j} e^{s_ij} / d_ii,
d_ij = α · (1/(K−1)) Σ_{k≠j} e^{s_ik} + (1 − α) · q(t_i)

(the mean of d_ij leaves column j out: sample j plays the independent draw the bound needs). This is the
estimator of the authors' code (Cli212/Distiller@a6a48f7, ``textbrewer/losses.py``: ``mi_loss``,
``interpolated_lower_bound``, ``compute_log_loomean``; α is their ``--alpha``, default 0.5, and the
intermediate loss weight 1), checked on 2026-11-29. Adapted to classifiers' penultimate vectors, where the
authors' critic and baseline are 2-layer Transformer encoders over a layer's token states: the critic is
f(t, s) = cos(t, W s) / τ_c, W a linear map from the student's features to the teacher's, and log q(t) is a
linear function of the teacher's unit feature t/‖t‖ (the critic sees only that direction), initialised at 0
(q = 1); both are trained with the student and dropped after training. The loss adds the intermediate
term to Hinton's KD on the outputs:

L = w_ce · CE(s, y) + w_kd · τ² · KL(softmax(t/τ) ‖ softmax(s/τ)) − w_mi · I_α

The KD part uses this harness's Hinton KD defaults (τ = 4, 0.1 / 0.9; the authors' scripts use MSE on the
logits at T = 1), so the ``hinton-kd`` row is this method's ablation without the intermediate term.
Distiller's AutoDistiller (a model that recommends a KD pipeline from a dataset's meta-features, trained on
the paper's search results) is not reproduced, those results being unavailable here;
`distillbench.pocket.autodistiller_report` asks its question of a small pocket search instead
(leaderboards/pocket-autodistiller.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le
from torch import nn
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss, soft_kl_loss
from distillbench.methods.classify.dhkd import DualHeadStudent


def cosine_critic(teacher_features: torch.Tensor, projected_student: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """[B, B] scores f(t_i, s_j) = cos(t_i, W s_j) / τ_c: row i a teacher representation, column j a student's."""
    return F.normalize(upcast(teacher_features), dim=1) @ F.normalize(upcast(projected_student), dim=1).T / temperature


def mi_alpha_bound(scores: torch.Tensor, alpha: float, log_baseline: torch.Tensor) -> torch.Tensor:
    """I_α (see the module docstring) of a [K, K] critic matrix whose diagonal holds the positive pairs, with
    the [K] log baselines log q(t_i) of its rows."""
    scores, log_baseline = upcast(scores), upcast(log_baseline)
    count = scores.shape[0]
    eye = torch.eye(count, dtype=torch.bool, device=scores.device)
    # log (1/(K−1)) Σ_{k≠j} e^{s_ik} for every (i, j): row i's scores with column j masked, [K, K, K].
    # Cubic in the batch, but exact and stable where subtracting e^{s_ij} from the row's sum is not.
    held_out = scores[:, None, :].masked_fill(eye[None, :, :], float("-inf"))
    log_mean = torch.logsumexp(held_out, dim=2) - math.log(count - 1)
    parts = []  # log(α·m_ij) and log((1 − α)·q_i), each left out when its weight is 0
    if alpha > 0:
        parts.append(log_mean + math.log(alpha))
    if alpha < 1:
        parts.append(log_baseline[:, None].expand(count, count) + math.log(1 - alpha))
    log_denominator = torch.logsumexp(torch.stack(parts), dim=0)
    joint = (scores.diagonal()[:, None] - log_denominator)[~eye].mean()
    marginal = (scores - log_denominator.diagonal()[:, None]).exp()[~eye].mean()
    return 1 + joint - marginal


class CriticAndBaseline(nn.Module):
    """The critic's map W (student features → teacher features) and the linear log baseline log q(t)."""

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.projection = nn.Linear(student_dim, teacher_dim)
        self.log_baseline = nn.Linear(teacher_dim, 1)
        nn.init.zeros_(self.log_baseline.weight)
        nn.init.zeros_(self.log_baseline.bias)


@register_method("distiller-mi", family="classify", paper="He et al. 2021, arXiv:2109.11105",
                 summary="Hinton KD + Distiller's MI-α bound between the teacher's and the student's penultimate "
                         "features (InfoNCE-TUBA interpolation)")
@dataclass
class DistillerMI(ClassifyMethod):
    """KD on the outputs plus maximising the MI-α bound between intermediate representations."""

    alpha: Annotated[float, Ge(0), Le(1)] = 0.5  # MI-α's interpolation: 1 InfoNCE's baseline, 0 the learned one
    mi_weight: Annotated[float, Ge(0)] = 1.0
    critic_temperature: Annotated[float, Gt(0)] = 0.1
    temperature: Annotated[float, Gt(0)] = 4.0  # KD on the outputs, as hinton-kd
    ce_weight: Annotated[float, Ge(0)] = 0.1
    kd_weight: Annotated[float, Ge(0)] = 0.9

    needs = ("teacher_logits", "teacher_features")
    # 1: InfoNCE mean over all K, q = 1; 2: the authors' estimator (leave-one-out mean, learned baseline);
    # 3: the baseline reads the teacher features' direction (version 2's diverged at α = 0)
    loss_version = 3

    def prepare(self, run):
        self._teacher_dim = run.frozen["teacher"].feature_dim

    def training_module(self, student):
        return DualHeadStudent(student, CriticAndBaseline(student.feature_dim, self._teacher_dim))

    def trained_model(self, module):
        return module.student

    def loss(self, student, batch):
        logits, features = student.student.forward_features(batch["images"])
        teacher_features = batch["teacher_features"]
        scores = cosine_critic(teacher_features, student.auxiliary.projection(features), self.critic_temperature)
        # The critic sees t only through its direction, so the best baseline log E_s e^{f(t, s)} is a function
        # of t/‖t‖ too; fed the raw features (norms in the tens) the linear baseline diverged under SGD.
        log_baseline = student.auxiliary.log_baseline(F.normalize(upcast(teacher_features), dim=1)).squeeze(1)
        return {"ce": self.ce_weight * cross_entropy_loss(logits, batch["labels"]),
                "kd": self.kd_weight * soft_kl_loss(logits, batch["teacher_logits"], self.temperature),
                "mi": -self.mi_weight * mi_alpha_bound(scores, self.alpha, log_baseline)}
