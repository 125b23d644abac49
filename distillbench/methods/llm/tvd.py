"""TVD — token-level total variation distance to the teacher (as in DistiLLM's and DistillKit's loss sets;
Wen et al., "f-Divergence Minimization for Sequence-Level Knowledge Distillation", arXiv:2307.15190).

L = (1/N) Σ_t ½ Σ_v |p_T(v|s_t) − p_S(v|s_t)|,   averaged over the N response tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt

from distillbench.methods.base import Method, log_probs, register_method, token_mean
from distillbench.methods.llm.chunked import StudentOutputs, chunked_tvd_loss


def tvd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
             temperature: float = 1.0) -> torch.Tensor:
    student_p = log_probs(student_logits, temperature).exp()
    teacher_p = log_probs(teacher_logits, temperature).exp()
    return token_mean(0.5 * (teacher_p - student_p).abs().sum(-1), labels)


@register_method("tvd", family="llm", paper="Wen et al. 2023, arXiv:2307.15190",
                 summary="token-level total variation distance to the teacher")
@dataclass
class TVD(Method):
    """Token-level total-variation distillation."""

    temperature: Annotated[float, Gt(0)] = 1.0

    needs = ("teacher_logits",)

    supports_chunked_loss = True

    def loss(self, student, batch):
        return {"tvd": StudentOutputs(student, batch).divergence(tvd_loss, chunked_tvd_loss, batch["teacher_logits"],
                                                                 self.temperature)}
