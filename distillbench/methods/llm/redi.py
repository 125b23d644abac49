"""REDI — Reinforcement Distillation from positive and negative teacher traces.

Xu et al., "Harnessing Negative Signals: Reinforcement Distillation from Teacher Data
for LLM Reasoning", arXiv:2505.24850.

L = −c_w · log πθ(y⁺|x) / |y⁺| + c_l · log πθ(y⁻|x) / |y⁻|

averaged over pairs: reference-free, length-normalised per sequence, and asymmetric
(c_l < c_w keeps the push-down on negative traces from destabilising training). The
defaults are the authors' recipe (Tim-Siu/reinforcement-distillation, ``redi_1_08``):
c_w = 1.0, c_l = 0.8. As in the paper it runs after SFT: it starts from the recipe's
``sft`` student of the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge

from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.base import Method, register_method


def redi_loss(chosen_mean_logps: torch.Tensor, rejected_mean_logps: torch.Tensor, chosen_coef: float = 1.0,
              rejected_coef: float = 0.8) -> torch.Tensor:
    """Mean over pairs of −c_w·mean log p(y⁺) + c_l·mean log p(y⁻); inputs are [B] per-token mean log-probs."""
    return (-chosen_coef * chosen_mean_logps + rejected_coef * rejected_mean_logps).mean()


@register_method("redi", family="llm", paper="Xu et al. 2025, arXiv:2505.24850",
                 summary="asymmetric reference-free loss on positive and negative traces, after SFT")
@dataclass
class REDI(Method):
    """Reinforcement distillation: raise positive traces, lower negative ones less strongly."""

    supports_chunked_loss = True  # its log-probs come from sequence_logps

    chosen_coef: Annotated[float, Ge(0)] = 1.0
    rejected_coef: Annotated[float, Ge(0)] = 0.8

    data_kind = "preference"
    normalize_by = "examples"
    starts_from = "sft"

    def loss(self, student, batch):
        chosen = sequence_logps(student, batch, "chosen", average=True)
        rejected = sequence_logps(student, batch, "rejected", average=True)
        return {"redi": redi_loss(chosen, rejected, self.chosen_coef, self.rejected_coef)}
