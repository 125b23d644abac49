"""GKD — Generalized Knowledge Distillation (Agarwal et al., 2024, arXiv:2306.13649).

With probability λ a step trains on the student's own samples (on-policy), otherwise on
the dataset responses; the per-token loss is the generalized Jensen–Shannon divergence

JSD_β(p_T ‖ p_S) = β·KL(p_T ‖ M) + (1−β)·KL(p_S ‖ M),   M = β·p_T + (1−β)·p_S,

on the raw distributions (TRL's trainer calls ``generalized_jsd_loss`` without a temperature;
GKDConfig's `temperature` is the sampling temperature), averaged over response tokens. JSD_β vanishes
at both ends (≈ β·KL(p_T‖p_S) near β = 0, ≈ (1−β)·KL(p_S‖p_T) near β = 1), so codebases
that special-case β ∈ {0, 1} as forward / reverse KL are discontinuous there (trl #6780).
We report JSD_β / (β(1−β)), which tends to forward KL as β → 0 and to reverse KL as
β → 1 and equals them exactly at the endpoints: continuous on [0, 1]. In the interior it
is TRL's ``generalized_jsd_loss`` divided by β(1−β) (a constant per run, so the optimum
and the gradient direction are the same; with the harness's gradient clipping, not the step
size). Defaults are TRL's ``GKDConfig``: β = 0.5, λ = 0.5, sampling temperature 0.9, 128 new
tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le

from distillbench.methods.base import Method, log_probs, register_method, token_mean
from distillbench.methods.llm.chunked import StudentOutputs, chunked_generalized_jsd_loss
from distillbench.methods.llm.hooks import OnPolicy
from distillbench.methods.llm.kd import forward_kl_loss
from distillbench.methods.llm.rkl import reverse_kl_loss


def generalized_jsd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                         beta: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """JSD_β / (β(1−β)) averaged over response tokens; forward KL at β = 0, reverse KL at β = 1."""
    if beta == 0:
        return forward_kl_loss(student_logits, teacher_logits, labels, temperature) / temperature**2
    if beta == 1:
        return reverse_kl_loss(student_logits, teacher_logits, labels, temperature) / temperature**2
    student_logp, teacher_logp = log_probs(student_logits, temperature), log_probs(teacher_logits, temperature)
    mixture_logp = torch.logsumexp(torch.stack([teacher_logp + torch.log(torch.tensor(beta, dtype=teacher_logp.dtype)),
                                                student_logp + torch.log1p(torch.tensor(-beta, dtype=student_logp.dtype))]),
                                   dim=0)
    kl_teacher = (teacher_logp.exp() * (teacher_logp - mixture_logp)).sum(-1)
    kl_student = (student_logp.exp() * (student_logp - mixture_logp)).sum(-1)
    jsd = beta * kl_teacher + (1 - beta) * kl_student
    return token_mean(jsd, labels) / (beta * (1 - beta))


@register_method("gkd", family="llm", paper="Agarwal et al. 2024, arXiv:2306.13649",
                 summary="generalized JSD to the teacher, on student samples with probability λ")
@dataclass
class GKD(OnPolicy, Method):
    """Generalized knowledge distillation: JSD_β on a λ-mixture of dataset and on-policy responses."""

    beta: Annotated[float, Ge(0), Le(1)] = 0.5
    lmbda: Annotated[float, Ge(0), Le(1)] = 0.5
    temperature: Annotated[float, Gt(0)] = 0.9  # of the on-policy samples only, as TRL's GKDConfig
    max_new_tokens: Annotated[int, Gt(0)] = 128

    needs = ("teacher_logits",)
    engaged_by = "on_policy_steps"  # each step is on-policy with probability λ: with a small λ, maybe none

    def on_policy_probability(self, step):
        return self.lmbda

    supports_chunked_loss = True

    def loss(self, student, batch):
        return {"jsd": StudentOutputs(student, batch).divergence(
            generalized_jsd_loss, chunked_generalized_jsd_loss, batch["teacher_logits"], self.beta, 1.0)}
