"""DCKD — Dual-Constrained Knowledge Distillation.

Gao, Wan, Guo, Quan & Wang, "Advantage-Guided Distillation for Preference Alignment in
Small Language Models", ICLR 2025, arXiv:2502.17927 (the baseline it proposes).

L = w_sft · NLL(y_w) + w_d · [w_w · KL_k(π_T ‖ πθ) on y_w + w_l · KL_k(π_T ‖ πθ) on y_l]

π_T is the preference-aligned teacher. KL_k is the forward KL over k + 1 bins: the
teacher's top-k tokens and one bin holding the remaining probability mass, the
student's probabilities gathered at the same tokens (not renormalised); it is averaged
over the response tokens of each side, and NLL over the chosen response tokens. The
defaults are the authors' recipe (SLIT-AI/ADPA ``student_dckd.yaml``): w_sft = 1,
w_d = 1, w_w = w_l = 0.1, k = 50.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt

from distillbench.core.tensors import upcast
from distillbench.kinds.text_lm.logps import response_logits, shifted_labels
from distillbench.methods.base import Method, register_method, sequence, token_mean
from distillbench.methods.llm.sft import sft_loss

# Probabilities are floored here before the log, as the authors' code does (1e-7 there):
# a student probability of 0 in a bin the teacher uses would make the KL infinite.
PROBABILITY_FLOOR = 1e-8


def topk_forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    top_k: int = 50) -> torch.Tensor:
    """Mean over response tokens of KL(p_T ‖ p_S) on the teacher's top-k tokens plus a remainder bin.

    student_logits, teacher_logits: [B, T, V]; labels: [B, T], -100 where no loss applies.
    """
    teacher_p = torch.softmax(upcast(teacher_logits), dim=-1)
    student_p = torch.softmax(upcast(student_logits), dim=-1)
    teacher_top, index = teacher_p.topk(min(top_k, teacher_p.size(-1)), dim=-1)
    student_top = student_p.gather(-1, index)
    teacher_bins = torch.cat([teacher_top, (1 - teacher_top.sum(-1, keepdim=True)).clamp(min=0)], dim=-1)
    student_bins = torch.cat([student_top, (1 - student_top.sum(-1, keepdim=True)).clamp(min=0)], dim=-1)
    per_token = (torch.special.xlogy(teacher_bins, teacher_bins)
                 - teacher_bins * student_bins.clamp(min=PROBABILITY_FLOOR).log()).sum(-1)
    return token_mean(per_token, labels)


@register_method("dckd", family="llm", paper="Gao et al. 2025, arXiv:2502.17927",
                 summary="NLL on chosen + top-k KL to the aligned teacher on chosen and rejected")
@dataclass
class DCKD(Method):
    """Dual-constrained KD: SFT on the chosen response plus KL to the aligned teacher on both responses."""

    sft_weight: Annotated[float, Ge(0)] = 1.0
    distillation_weight: Annotated[float, Ge(0)] = 1.0
    chosen_weight: Annotated[float, Ge(0)] = 0.1
    rejected_weight: Annotated[float, Ge(0)] = 0.1
    top_k: Annotated[int, Gt(0)] = 50

    needs = ("teacher_logits",)
    data_kind = "preference"

    def loss(self, student, batch):
        terms = {}
        for side, weight in (("chosen", self.chosen_weight), ("rejected", self.rejected_weight)):
            part = sequence(batch, side)
            logits, labels = response_logits(student, part), shifted_labels(part)
            if side == "chosen" and self.sft_weight > 0:
                terms["nll"] = self.sft_weight * sft_loss(logits, labels)
            terms[f"{side}_kl"] = self.distillation_weight * weight * topk_forward_kl(
                logits, part["teacher_logits"], labels, self.top_k)
        return terms
