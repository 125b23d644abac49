"""ADPA — Advantage-Guided Distillation for Preference Alignment.

Gao, Wan, Guo, Quan & Wang, "Advantage-Guided Distillation for Preference Alignment in
Small Language Models", ICLR 2025, arXiv:2502.17927.

A(s_t, a) = log π_dpo(a|s_t) − log π_ref(a|s_t)       (the aligned teacher against its reference)
L = w_sft · NLL(y_w) − w_adpa · (1/N) Σ_t Σ_{a ∈ top-k(π_dpo)} πθ(a|s_t) · A(s_t, a)

The advantage term runs on responses the student samples itself (here every step, from
the prompts of the batch, at `temperature`), averaged over their N tokens; πθ is the
student's full-vocabulary probability at the teacher's top-k tokens. NLL covers the
chosen responses. Defaults are the authors' recipe (SLIT-AI/ADPA ``student_adpa.yaml``):
w_sft = 1, w_adpa = 1.6, k = 50. Two differences from the authors' code, both toward the
paper's formula: their samples are generated once, offline, and greedily; and their data
loader clamps the advantage into [1e-8, 1), which drops negative advantages
(``clamp_advantage=True`` reproduces that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt

from distillbench.kinds.text_lm.logps import response_logits, shifted_labels
from distillbench.methods.base import Method, log_probs, register_method, sequence, token_mean
from distillbench.methods.llm.hooks import OnPolicy
from distillbench.methods.llm.sft import sft_loss

# The authors' loader clamps targets into [1e-8, 1 − 1e-8] (compress_logits.py, prob_stabilize).
_CODE_CLAMP = (1e-8, 1 - 1e-8)


def advantage_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, reference_logits: torch.Tensor,
                   labels: torch.Tensor, top_k: int = 50, clamp_advantage: bool = False) -> torch.Tensor:
    """−(1/N) Σ_t Σ_{a∈top-k(teacher)} p_S(a|s_t)·(log p_T(a|s_t) − log p_ref(a|s_t)) over response tokens."""
    teacher_logp, reference_logp = log_probs(teacher_logits), log_probs(reference_logits)
    top_teacher, index = teacher_logp.topk(min(top_k, teacher_logp.size(-1)), dim=-1)
    advantage = top_teacher - reference_logp.gather(-1, index)
    if clamp_advantage:
        advantage = advantage.clamp(*_CODE_CLAMP)
    student_p = log_probs(student_logits).exp().gather(-1, index)
    return -token_mean((student_p * advantage).sum(-1), labels)


@register_method("adpa", family="llm", paper="Gao et al. 2025, arXiv:2502.17927",
                 summary="NLL on chosen + the aligned teacher's token advantage on student samples")
@dataclass
class ADPA(OnPolicy, Method):
    """Advantage-guided distillation: raise the student's probability of tokens the aligned teacher
    prefers more than its reference does, on the student's own samples."""

    sft_weight: Annotated[float, Ge(0)] = 1.0
    adpa_weight: Annotated[float, Ge(0)] = 1.6
    top_k: Annotated[int, Gt(0)] = 50
    temperature: Annotated[float, Gt(0)] = 1.0
    max_new_tokens: Annotated[int, Gt(0)] = 128
    clamp_advantage: bool = False

    needs = ("teacher_logits", "reference_teacher_logits")
    logit_sequences = ("sample",)
    data_kind = "preference"

    def on_policy_probability(self, step):
        return 1.0

    def loss(self, student, batch):
        terms = {}
        if self.sft_weight > 0:
            chosen = sequence(batch, "chosen")
            terms["nll"] = self.sft_weight * sft_loss(response_logits(student, chosen), shifted_labels(chosen))
        sample = sequence(batch, "sample")
        terms["advantage"] = self.adpa_weight * advantage_loss(
            response_logits(student, sample), sample["teacher_logits"], sample["reference_teacher_logits"],
            shifted_labels(sample), self.top_k, self.clamp_advantage)
        return terms
