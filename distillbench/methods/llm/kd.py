"""KD — token-level knowledge distillation with forward KL and a temperature.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531,
applied per token as in word-level KD (Kim & Rush, arXiv:1606.07947):

L = τ² · (1/N) Σ_t KL(p_T^τ(·|s_t) ‖ p_S^τ(·|s_t)) + w_ce · NLL,   p^τ = softmax(logits / τ)

summed over the vocabulary and averaged over the N response tokens. The value is the
true KL (teacher entropy included), not the cross-entropy some codebases log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt

from distillbench.methods.base import Method, log_probs, register_method, token_mean
from distillbench.methods.llm.chunked import StudentOutputs, chunked_forward_kl_loss


def forward_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """τ²-scaled mean over response tokens of KL(softmax(t/τ) ‖ softmax(s/τ)).

    student_logits, teacher_logits: [B, T, V]; labels: [B, T], -100 where no loss applies.
    """
    student_logp, teacher_logp = log_probs(student_logits, temperature), log_probs(teacher_logits, temperature)
    per_token = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
    return temperature**2 * token_mean(per_token, labels)


@register_method("kd", family="llm", paper="Hinton et al. 2015, arXiv:1503.02531",
                 summary="token-level forward KL to the teacher with a temperature")
@dataclass
class KD(Method):
    """Token-level forward-KL distillation from the teacher's logits."""

    temperature: Annotated[float, Gt(0)] = 1.0
    ce_weight: Annotated[float, Ge(0)] = 0.0

    needs = ("teacher_logits",)

    supports_chunked_loss = True

    def loss(self, student, batch):
        outputs = StudentOutputs(student, batch)
        terms = {"forward_kl": outputs.divergence(forward_kl_loss, chunked_forward_kl_loss, batch["teacher_logits"],
                                                  self.temperature)}
        if self.ce_weight > 0:
            terms["nll"] = self.ce_weight * outputs.nll()
        return terms
