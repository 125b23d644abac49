"""RKL — token-level reverse-KL distillation (the objective MiniLLM optimises; Gu et al., arXiv:2306.08543).

L = τ² · (1/N) Σ_t KL(p_S^τ(·|s_t) ‖ p_T^τ(·|s_t)),   averaged over the N response tokens.

Computed exactly over the vocabulary on the training sequences (no policy gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt

from distillbench.methods.base import Method, log_probs, register_method, token_mean
from distillbench.methods.llm.chunked import StudentOutputs, chunked_reverse_kl_loss


def reverse_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    student_logp, teacher_logp = log_probs(student_logits, temperature), log_probs(teacher_logits, temperature)
    per_token = (student_logp.exp() * (student_logp - teacher_logp)).sum(-1)
    return temperature**2 * token_mean(per_token, labels)


@register_method("rkl", family="llm", paper="Gu et al. 2023 (MiniLLM), arXiv:2306.08543",
                 summary="token-level reverse KL to the teacher")
@dataclass
class RKL(Method):
    """Token-level reverse-KL distillation from the teacher's logits."""

    temperature: Annotated[float, Gt(0)] = 1.0

    needs = ("teacher_logits",)

    supports_chunked_loss = True

    def loss(self, student, batch):
        return {"reverse_kl": StudentOutputs(student, batch).divergence(
            reverse_kl_loss, chunked_reverse_kl_loss, batch["teacher_logits"], self.temperature)}
