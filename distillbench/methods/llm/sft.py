"""SFT — supervised fine-tuning on the reference responses (maximum likelihood).

L = −(1/N) Σ_t log πθ(y_t | x, y_<t), averaged over the N response tokens of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distillbench.methods.base import Method, register_method, upcast
from distillbench.methods.llm.chunked import StudentOutputs


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy over positions whose label is not -100.

    logits: [B, T, V] next-token logits; labels: [B, T] target ids aligned with them.
    """
    return F.cross_entropy(upcast(logits.reshape(-1, logits.size(-1))), labels.reshape(-1), ignore_index=-100)


@register_method("sft", family="llm", paper="supervised fine-tuning (baseline)",
                 summary="maximum likelihood on the reference responses")
@dataclass
class SFT(Method):
    """Supervised fine-tuning on the training responses."""

    supports_chunked_loss = True

    def loss(self, student, batch):
        return {"nll": StudentOutputs(student, batch).nll()}
