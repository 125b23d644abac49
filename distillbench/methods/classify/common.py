"""What every classify method shares: its data kind, and the two losses most of them build on.

A classify batch (kinds/image_classifier/images.py) holds ``images`` [B, 3, H, W], ``labels`` [B], ``epoch``
(1-based) and, when asked for, ``teacher_logits`` [B, C] and ``teacher_features`` [B, D]. Losses
are means over the images of the batch.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.methods.base import Method


class ClassifyMethod(Method):
    data_kind = "images"
    normalize_by = "examples"
    # Whether the method can train on semi-supervised data (unlabeled examples carry label −1): methods
    # whose distillation term needs the label (DKD's target class, PLD's ranking) cannot.
    supports_unlabeled: ClassVar[bool] = True


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the labeled examples of −log softmax(logits)[label]; unlabeled ones (label −1) are left out
    (0 when the batch has none)."""
    labeled = labels >= 0
    if not bool(labeled.any()):
        return upcast(logits).sum() * 0.0
    return F.cross_entropy(upcast(logits)[labeled], labels[labeled])


def soft_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """τ² · (1/B) Σ_i KL(softmax(t_i/τ) ‖ softmax(s_i/τ)): Hinton's soft-target term, as mdistiller's ``kd_loss``."""
    teacher_logp = F.log_softmax(upcast(teacher_logits) / temperature, dim=1)
    return soft_kl_to_log_probs(student_logits, teacher_logp, temperature)


def soft_kl_to_log_probs(student_logits: torch.Tensor, target_logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """τ² · (1/B) Σ_i KL(p_i ‖ softmax(s_i/τ)) for targets given as log-probabilities (already tempered)."""
    student_logp = F.log_softmax(upcast(student_logits) / temperature, dim=1)
    return temperature**2 * (target_logp.exp() * (target_logp - student_logp)).sum(1).mean()
