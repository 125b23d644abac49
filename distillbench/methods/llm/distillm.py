"""DistiLLM — skew KL divergences with adaptive off-policy student samples.

Ko, Kim, Chen & Yun, "DistiLLM: Towards Streamlined Distillation for Large Language
Models", ICML 2024, arXiv:2402.03898.

SKL_α  = KL(p_T ‖ α·p_T + (1−α)·p_S)        (skew forward KL)
SRKL_α = KL(p_S ‖ α·p_S + (1−α)·p_T)        (skew reverse KL)

per token over the vocabulary, averaged over response tokens, without a temperature (as
in jongwooko/distillm ``losses.py``). We report the true KL; the authors' code drops the
teacher-entropy constant of SKL (same gradient). α = 0.1 (``--skew-alpha``). Training
data follow the adaptive off-policy schedule (`AdaptiveOffPolicy`): the probability of
student samples starts at 0 and rises by 0.1 whenever the validation NLL rises by
``loss_eps`` = 0.1; a replay buffer of 1000 samples, replay ratio "decreasing"; samples at
temperature 1. The validation loss is measured before the first step and once per epoch of the
training data, as in the authors' ``finetune.py`` (``--eval-interval -1``: every epoch; their GPT-2
runs train 20 epochs, so the loss has 19 chances to rise). A run of under two epochs compares one
measure with the first (the pocket sweep: 5,000 examples, batch 32, 300 steps, so step 156 only),
and a student still learning lowers its validation loss: the schedule never fires there, and
`engaged_by` (on_policy_steps 0) marks its claim "mechanism inactive".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Le, Lt

from distillbench.kinds.text_lm.onpolicy import AdaptiveOffPolicy

from distillbench.methods.base import Method, log_probs, mixture_logp, register_method, token_mean
from distillbench.methods.llm.chunked import StudentOutputs, chunked_skew_forward_kl, chunked_skew_reverse_kl
from distillbench.methods.llm.hooks import AdaptiveSampling


def skew_forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    alpha: float = 0.1) -> torch.Tensor:
    """Mean over response tokens of KL(p_T ‖ α·p_T + (1−α)·p_S)."""
    student_logp, teacher_logp = log_probs(student_logits), log_probs(teacher_logits)
    mixture = mixture_logp(teacher_logp, student_logp, alpha)
    return token_mean((teacher_logp.exp() * (teacher_logp - mixture)).sum(-1), labels)


def skew_reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    alpha: float = 0.1) -> torch.Tensor:
    """Mean over response tokens of KL(p_S ‖ α·p_S + (1−α)·p_T)."""
    student_logp, teacher_logp = log_probs(student_logits), log_probs(teacher_logits)
    mixture = mixture_logp(student_logp, teacher_logp, alpha)
    return token_mean((student_logp.exp() * (student_logp - mixture)).sum(-1), labels)


# Each divergence as (the naive loss on logits, its chunked twin on the LM head's inputs).
DIVERGENCES = {"skew_forward": (skew_forward_kl, chunked_skew_forward_kl),
               "skew_reverse": (skew_reverse_kl, chunked_skew_reverse_kl)}


@register_method("distillm", family="llm", paper="Ko et al. 2024, arXiv:2402.03898",
                 summary="skew forward / reverse KL with adaptive off-policy student samples")
@dataclass
class DistiLLM(AdaptiveSampling, Method):
    """Skew-KL distillation on a mix of data and (replayed) student samples that grows when
    the validation loss rises."""

    divergence: Literal["skew_forward", "skew_reverse"] = "skew_forward"
    skew_alpha: Annotated[float, Ge(0), Lt(1)] = 0.1
    initial_probability: Annotated[float, Ge(0), Le(1)] = 0.0
    loss_eps: Annotated[float, Ge(0)] = 0.1
    capacity: Annotated[int, Gt(0)] = 1000
    replay_ratio: Literal["decreasing", "constant", "increasing"] = "decreasing"
    temperature: Annotated[float, Gt(0)] = 1.0
    max_new_tokens: Annotated[int, Gt(0)] = 128

    needs = ("teacher_logits", "validation")
    engaged_by = "on_policy_steps"  # the schedule fires only once the validation loss rises: it may never

    def off_policy_schedule(self):
        return AdaptiveOffPolicy(self.initial_probability, self.loss_eps, capacity=self.capacity,
                                 replay_ratio=self.replay_ratio)

    supports_chunked_loss = True

    def loss(self, student, batch):
        naive, chunked = DIVERGENCES[self.divergence]
        return {self.divergence: StudentOutputs(student, batch).divergence(naive, chunked, batch["teacher_logits"],
                                                                           self.skew_alpha)}
