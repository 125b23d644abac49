"""Chunked fused-linear distillation losses: the divergence from the student's hidden states
and LM head, without ever holding the full [tokens × vocab] student logits.

The losses equal the naive ones on full logits (same values, same gradients, same
reductions: mean over the tokens whose label is not -100):

    chunked_forward_kl_loss        == kd.forward_kl_loss          τ²·KL(p_T^τ ‖ p_S^τ)
    chunked_reverse_kl_loss        == rkl.reverse_kl_loss         τ²·KL(p_S^τ ‖ p_T^τ)
    chunked_generalized_jsd_loss   == gkd.generalized_jsd_loss    JSD_β/(β(1−β)); FKL at β=0, RKL at β=1
    chunked_skew_forward_kl        == distillm.skew_forward_kl    KL(p_T ‖ α·p_T + (1−α)·p_S)
    chunked_skew_reverse_kl        == distillm.skew_reverse_kl    KL(p_S ‖ α·p_S + (1−α)·p_T)
    chunked_tvd_loss               == tvd.tvd_loss                ½·Σ|p_T^τ − p_S^τ|

Each divergence here is a per-chunk function: its per-token values and their analytic gradient
with respect to the student's (temperature-scaled) logits. The chunk loop that runs it over the
LM head, and the memory and time it saves, are the text-lm kind's (kinds/text_lm/chunked.py).

Why by hand: Liger-Kernel (PyPI liger-kernel, 0.8.5 checked) has a chunked fused-linear
generalized JSD (`chunked_loss.LigerFusedLinearJSDLoss`) written in plain PyTorch that does
run on CPU, but it is the only divergence there (Liger's fused-linear KL and its TVD are
Triton kernels that need a GPU), it uses TRL's JSD scale (not JSD_β/(β(1−β)) as gkd.py),
adds a hard-label cross-entropy by default (weight_hard_loss = 0.5), takes teacher hidden
states only (no cached teacher logits), and installing it pulls in Triton as a hard
dependency (its chunked losses themselves do not use it). Nothing maintained offers
forward/reverse KL with τ², skew KL or TVD in this form on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from distillbench.core.tensors import upcast
from distillbench.kinds.text_lm.chunked import (DEFAULT_CHUNK_SIZE, IGNORE_INDEX, ChunkFn, chunked_divergence_loss,
                                                chunked_token_logps, lm_head_inputs)
from distillbench.kinds.text_lm.logps import response_logits, shifted_labels
from distillbench.methods.base import mixture_logp


def _through_softmax(student_p: torch.Tensor, grad_p: torch.Tensor) -> torch.Tensor:
    """d value / d logits from d value / d p_S: the softmax Jacobian, p ⊙ (g − Σ p·g). Overwrites grad_p."""
    return grad_p.sub_((student_p * grad_p).sum(-1, keepdim=True)).mul_(student_p)


def forward_kl_chunk(student_logp, teacher_logp, labels, with_grad):
    teacher_p = teacher_logp.exp()
    values = (teacher_logp - student_logp).mul_(teacher_p).sum(-1)
    return values, (student_logp.exp_().sub_(teacher_p) if with_grad else None)


def reverse_kl_chunk(student_logp, teacher_logp, labels, with_grad):
    student_p = student_logp.exp()
    log_ratio = student_logp - teacher_logp
    values = (student_p * log_ratio).sum(-1)
    # d/dz Σ q·(log q − log p) = q ⊙ (log q − log p − KL)
    return values, (log_ratio.sub_(values.unsqueeze(-1)).mul_(student_p) if with_grad else None)


def jsd_chunk(beta: float) -> ChunkFn:
    """Generalized JSD_β / (β(1−β)) (gkd.py), forward KL at β = 0 and reverse KL at β = 1."""
    if beta == 0:
        return forward_kl_chunk
    if beta == 1:
        return reverse_kl_chunk

    def jsd(student_logp, teacher_logp, labels, with_grad):
        mixture_logp = torch.logaddexp(teacher_logp + math.log(beta), student_logp + math.log1p(-beta))
        student_p = student_logp.exp()
        kl_teacher = (teacher_logp - mixture_logp).mul_(teacher_logp.exp()).sum(-1)
        student_log_ratio = student_logp - mixture_logp
        kl_student = (student_p * student_log_ratio).sum(-1)
        values = (beta * kl_teacher + (1 - beta) * kl_student) / (beta * (1 - beta))
        # d JSD_β / d q = (1−β)·(log q − log m): the terms through log m cancel.
        return values, (_through_softmax(student_p, student_log_ratio.div_(beta)) if with_grad else None)

    return jsd


def skew_forward_chunk(alpha: float) -> ChunkFn:
    """KL(p_T ‖ m), m = α·p_T + (1−α)·p_S (distillm.py)."""

    def skew_forward(student_logp, teacher_logp, labels, with_grad):
        mixture = mixture_logp(teacher_logp, student_logp, alpha)
        values = (teacher_logp - mixture).mul_(teacher_logp.exp()).sum(-1)
        if not with_grad:
            return values, None
        # d/dq = −(1−α)·p/m, so d/dz = −r + q·Σr with r = (1−α)·q·p/m
        pulled = (student_logp + teacher_logp).sub_(mixture).exp_().mul_(1 - alpha)
        return values, pulled.sum(-1, keepdim=True).mul(student_logp.exp()).sub_(pulled)

    return skew_forward


def skew_reverse_chunk(alpha: float) -> ChunkFn:
    """KL(p_S ‖ m), m = α·p_S + (1−α)·p_T (distillm.py)."""

    def skew_reverse(student_logp, teacher_logp, labels, with_grad):
        mixture = mixture_logp(student_logp, teacher_logp, alpha)
        student_p = student_logp.exp()
        log_ratio = student_logp - mixture
        values = (student_p * log_ratio).sum(-1)
        if not with_grad:
            return values, None
        # d/dq = log q − log m + 1 − α·q/m (the constant 1 vanishes through the softmax)
        grad_p = log_ratio.sub_(log_ratio.exp().mul_(alpha))
        return values, _through_softmax(student_p, grad_p)

    return skew_reverse


def tvd_chunk(student_logp, teacher_logp, labels, with_grad):
    student_p = student_logp.exp()
    difference = student_p - teacher_logp.exp()
    values = 0.5 * difference.abs().sum(-1)
    # sign(0) = 0, as autograd's subgradient of |x| at 0
    return values, (_through_softmax(student_p, difference.sign_().mul_(0.5)) if with_grad else None)


def chunked_forward_kl_loss(student_hidden, student_weight, teacher, labels, temperature: float = 1.0, *,
                            student_bias=None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """kd.forward_kl_loss from hidden states: τ²-scaled mean of KL(p_T^τ ‖ p_S^τ)."""
    return chunked_divergence_loss(forward_kl_chunk, student_hidden, student_weight, teacher, labels, temperature,
                                   scale=temperature**2, student_bias=student_bias, chunk_size=chunk_size)


def chunked_reverse_kl_loss(student_hidden, student_weight, teacher, labels, temperature: float = 1.0, *,
                            student_bias=None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """rkl.reverse_kl_loss from hidden states: τ²-scaled mean of KL(p_S^τ ‖ p_T^τ)."""
    return chunked_divergence_loss(reverse_kl_chunk, student_hidden, student_weight, teacher, labels, temperature,
                                   scale=temperature**2, student_bias=student_bias, chunk_size=chunk_size)


def chunked_generalized_jsd_loss(student_hidden, student_weight, teacher, labels, beta: float = 0.5,
                                 temperature: float = 1.0, *, student_bias=None,
                                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """gkd.generalized_jsd_loss from hidden states: JSD_β/(β(1−β)), forward KL at β = 0, reverse KL at β = 1."""
    return chunked_divergence_loss(jsd_chunk(beta), student_hidden, student_weight, teacher, labels, temperature,
                                   student_bias=student_bias, chunk_size=chunk_size)


def chunked_skew_forward_kl(student_hidden, student_weight, teacher, labels, alpha: float = 0.1, *,
                            student_bias=None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """distillm.skew_forward_kl from hidden states (no temperature, as there)."""
    return chunked_divergence_loss(skew_forward_chunk(alpha), student_hidden, student_weight, teacher, labels,
                                   student_bias=student_bias, chunk_size=chunk_size)


def chunked_skew_reverse_kl(student_hidden, student_weight, teacher, labels, alpha: float = 0.1, *,
                            student_bias=None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """distillm.skew_reverse_kl from hidden states (no temperature, as there)."""
    return chunked_divergence_loss(skew_reverse_chunk(alpha), student_hidden, student_weight, teacher, labels,
                                   student_bias=student_bias, chunk_size=chunk_size)


def chunked_tvd_loss(student_hidden, student_weight, teacher, labels, temperature: float = 1.0, *,
                     student_bias=None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """tvd.tvd_loss from hidden states: mean of ½·Σ_v |p_T^τ − p_S^τ|."""
    return chunked_divergence_loss(tvd_chunk, student_hidden, student_weight, teacher, labels, temperature,
                                   student_bias=student_bias, chunk_size=chunk_size)


# --- one forward pass of the student for either path (the naive or the chunked loss) -------
def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy over positions whose label is not -100 (SFT's loss, unchunked).

    logits: [B, T, V] next-token logits; labels: [B, T] target ids aligned with them.
    """
    return F.cross_entropy(upcast(logits.reshape(-1, logits.size(-1))), labels.reshape(-1), ignore_index=IGNORE_INDEX)


class StudentOutputs:
    """One forward pass of the student on an SFT-style batch, for token-level losses: the full
    next-token logits, or with batch["chunk_size"] the LM head's inputs; `divergence` and `nll`
    then use the naive or the chunked loss accordingly (equal values and gradients, tested)."""

    def __init__(self, student: torch.nn.Module, batch: dict):
        self.labels = shifted_labels(batch)
        self.chunk_size = batch.get("chunk_size")
        if self.chunk_size:
            self.hidden, self.weight, self.bias = lm_head_inputs(student, batch)
        else:
            self.logits = response_logits(student, batch)

    def divergence(self, naive: Callable, chunked: Callable, teacher_logits: torch.Tensor, *args) -> torch.Tensor:
        """naive(logits, teacher_logits, labels, *args), or chunked(hidden, weight, teacher_logits, labels, *args)."""
        if self.chunk_size:
            return chunked(self.hidden, self.weight, teacher_logits, self.labels, *args, student_bias=self.bias,
                           chunk_size=self.chunk_size)
        return naive(self.logits, teacher_logits, self.labels, *args)

    def nll(self) -> torch.Tensor:
        """Mean token cross-entropy over the response tokens (sft_loss)."""
        if self.chunk_size:
            logps = chunked_token_logps(self.hidden, self.weight, self.labels, self.bias, chunk_size=self.chunk_size)
            mask = self.labels != IGNORE_INDEX
            return -(logps * mask).sum() / mask.sum().clamp(min=1)
        return sft_loss(self.logits, self.labels)
