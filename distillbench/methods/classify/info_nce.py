"""InfoNCE — a dual encoder trained alone on image–caption pairs: the baseline of `cprd`, and what every
retrieval method shares.

L = ½ [CE(s/τ, diagonal) over rows + CE(sᵀ/τ, diagonal) over columns]

CLIP's symmetric contrastive loss (Radford et al. 2021, arXiv:2103.00020) with a fixed temperature
τ = 0.07 (CLIP's and ALBEF's initial value). Pairs that share a caption (pocket captions repeat) are
not each other's negatives: they are dropped from the denominators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import torch
from annotated_types import Gt
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.methods.base import Method, register_method


class RetrievalMethod(Method):
    """Methods that train a dual encoder on image–caption pairs (the retrieval kind, kinds/retrieval/). A
    batch holds ``images`` [B, 3, H, W], ``captions`` [B, L] token ids, ``positives`` [B, B] (True where
    two pairs share a caption, diagonal included) and, when asked for, ``teacher_scores`` [B, B]: the
    cross-encoder's score of every image with every caption of the batch."""

    data_kind: ClassVar[str] = "retrieval"
    normalize_by: ClassVar[str] = "examples"


def info_nce_loss(scores: torch.Tensor, positives: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE on an image × text score matrix [B, B] whose diagonal holds the pairs. Other
    entries marked in `positives` (same caption) are left out of the denominators, not counted as negatives."""
    logits = upcast(scores) / temperature
    eye = torch.eye(len(scores), dtype=torch.bool, device=scores.device)
    masked = logits.masked_fill(positives & ~eye, float("-inf"))
    image_to_text = F.cross_entropy(masked, torch.arange(len(scores), device=scores.device))
    text_to_image = F.cross_entropy(masked.T, torch.arange(len(scores), device=scores.device))
    return (image_to_text + text_to_image) / 2


@register_method("info-nce", family="classify", paper="baseline (no teacher; CLIP's symmetric InfoNCE)",
                 summary="dual encoder trained alone with symmetric InfoNCE: the baseline of cprd")
@dataclass
class InfoNCE(RetrievalMethod):
    """Symmetric InfoNCE on the batch's image–caption pairs, no teacher."""

    temperature: Annotated[float, Gt(0)] = 0.07

    def loss(self, student, batch):
        scores = student.similarities(batch["images"], batch["captions"])
        return {"info_nce": info_nce_loss(scores, batch["positives"], self.temperature)}
